#!/usr/bin/env python3
"""Writes the scenario files of this directory: NAME.ndjson (replay input) and
NAME.expected.ndjson (the answers the rules demand, written here by hand next to each line).

Run it after editing a scenario: python3 tests/scenarios/make.py
Each scenario names the rule ids it covers; tests/tests/scenarios.rs replays them all through
the built `waguard` binary on every store.
"""
import json
import os
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
BIZ = "100000001"


def ts(text):
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def envelope(field, value):
    value = {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550000001", "phone_number_id": BIZ}, **value}
    return {"object": "whatsapp_business_account",
            "entry": [{"id": "900000001", "changes": [{"field": field, "value": value}]}]}


def inbound(at, wa_id, text="hello", mtype="text", **extra):
    msg = {"from": wa_id, "id": f"wamid.in.{wa_id}.{ts(at)}", "timestamp": str(ts(at)), "type": mtype}
    if mtype == "text":
        msg["text"] = {"body": text}
    elif mtype == "button":
        msg["button"] = {"text": text, "payload": text}
    else:
        msg[mtype] = extra.pop("body", {})
    msg.update(extra)
    return envelope("messages", {"contacts": [{"profile": {"name": "X"}, "wa_id": wa_id}], "messages": [msg]})


def status(at, wa_id, state, wamid, category=None, errors=None):
    st = {"id": wamid, "status": state, "timestamp": str(ts(at)), "recipient_id": wa_id}
    if category:
        st["pricing"] = {"billable": True, "pricing_model": "PMP", "category": category, "type": "regular"}
    if errors:
        st["errors"] = [{"code": c, "title": "error", "message": "error"} for c in errors]
    return envelope("messages", {"statuses": [st]})


def preference(at, wa_id, value):
    return envelope("user_preferences", {"user_preferences": [
        {"wa_id": wa_id, "detail": "marketing preference", "category": "marketing_messages",
         "value": value, "timestamp": ts(at)}]})


def contact(to=None, user_id=None, group_id=None):
    c = {"from": BIZ}
    if to:
        c["to"] = to
    if user_id:
        c["user_id"] = user_id
    if group_id:
        c["group_id"] = group_id
    return c


class Scenario:
    def __init__(self, name, rules):
        self.name, self.rules, self.lines, self.expected = name, rules, [], []

    def line(self, obj):
        self.lines.append(obj if isinstance(obj, str) else json.dumps(obj))
        return len(self.lines)

    def webhook(self, at, payload):
        return self.line({"at": at, "webhook": payload})

    def ask(self, kind, at, message, decision, allowed, reason, until, category=None, **who):
        body = {**contact(**who), "message": message}
        if category:
            body["category"] = category
        if "idempotency_key" in who:
            pass
        n = self.line({"at": at, kind: body})
        self.expected.append({"line": n, "decision": decision, "allowed": allowed, "reason": reason, "until": until})

    def check(self, *a, **k):
        self.ask("check", *a, **k)

    def reserve(self, at, message, decision, allowed, reason, until, category=None, key=None, **who):
        body = {**contact(**who), "message": message}
        if category:
            body["category"] = category
        if key:
            body["idempotency_key"] = key
        n = self.line({"at": at, "reserve": body})
        self.expected.append({"line": n, "decision": decision, "allowed": allowed, "reason": reason, "until": until})

    def error(self, obj):
        n = self.line(obj)
        self.expected.append({"line": n, "error": "<any>"})

    def write(self):
        with open(os.path.join(HERE, self.name + ".ndjson"), "w") as f:
            f.write("\n".join(self.lines) + "\n")
        with open(os.path.join(HERE, self.name + ".expected.ndjson"), "w") as f:
            for e in self.expected:
                f.write(json.dumps(e) + "\n")


FR = "33612345678"
S = []

# ---- W1 W2 W3 W5 W6: the window ----
s = Scenario("window", "W1 W2 W3 W5 W6")
s.check("2026-03-01T00:00:00Z", "free_form", "template_required", False, "first_contact", None, to=FR)
s.check("2026-03-01T00:00:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=FR)
s.webhook("2026-03-01T00:01:00Z", status("2026-03-01T00:01:00Z", FR, "sent", "wamid.t1", category="utility"))
s.check("2026-03-01T00:02:00Z", "free_form", "template_required", False, "awaiting_reply", None, to=FR)
# W5: a click-to-WhatsApp referral opens an ordinary 24h window
s.webhook("2026-03-01T01:00:00Z", inbound("2026-03-01T01:00:00Z", FR, referral={"source_url": "https://fb.me/x", "source_type": "ad", "source_id": "1", "ctwa_clid": "ARAkLkA"}))
s.check("2026-03-01T01:00:01Z", "free_form", "free_form", True, None, "2026-03-02T01:00:00Z", to=FR)
# W1: a business message (status) does not extend the window; an older inbound arriving late does not shorten it
s.webhook("2026-03-01T05:00:00Z", status("2026-03-01T05:00:00Z", FR, "read", "wamid.t2"))
s.webhook("2026-03-01T05:00:00Z", inbound("2026-03-01T00:30:00Z", FR))
s.check("2026-03-02T00:59:59Z", "free_form", "free_form", True, None, "2026-03-02T01:00:00Z", to=FR)
# W2: closed at exactly 24h
s.check("2026-03-02T01:00:00Z", "free_form", "template_required", False, "window_expired", None, to=FR)
# W6: the window never refuses a template
s.check("2026-03-02T01:00:00Z", "template", "template_required", True, "window_expired", None, category="marketing", to=FR)
# W3: a re-engagement template after expiry awaits its reply
s.reserve("2026-03-03T00:00:00Z", "template", "template_required", True, "window_expired", None, category="utility", to=FR)
s.check("2026-03-03T00:00:01Z", "free_form", "template_required", False, "awaiting_reply", None, to=FR)
s.webhook("2026-03-03T02:00:00Z", inbound("2026-03-03T02:00:00Z", FR, "yes", mtype="button"))
s.check("2026-03-03T02:00:01Z", "template", "free_form", True, None, "2026-03-04T02:00:00Z", category="marketing", to=FR)
# W1: system messages do not open a window
SYS = "447700900123"
s.webhook("2026-03-03T03:00:00Z", inbound("2026-03-03T03:00:00Z", SYS, mtype="system", body={"body": "changed number", "type": "user_changed_number"}))
s.check("2026-03-03T03:00:01Z", "free_form", "template_required", False, "first_contact", None, to=SYS)
# W1: unknown future message types still count as inbound
NEW = "447700900124"
s.webhook("2026-03-03T03:00:00Z", inbound("2026-03-03T03:00:00Z", NEW, mtype="hologram", body={"x": 1}))
s.check("2026-03-03T03:00:01Z", "free_form", "free_form", True, None, "2026-03-04T03:00:00Z", to=NEW)
S.append(s)

# ---- W4 D2: the platform closes the window ----
s = Scenario("platform-closed", "W4 D2")
s.webhook("2026-03-01T00:00:00Z", inbound("2026-03-01T00:00:00Z", FR))
s.webhook("2026-03-01T05:00:00Z", status("2026-03-01T05:00:00Z", FR, "failed", "wamid.f1", errors=[131047]))
s.check("2026-03-01T06:00:00Z", "free_form", "template_required", False, "window_closed_by_platform", None, to=FR)
s.check("2026-03-02T00:00:00Z", "free_form", "template_required", False, "window_expired", None, to=FR)
# D2: the same message delivered voids the failure, whichever came first
s.webhook("2026-03-01T06:00:00Z", status("2026-03-01T05:00:01Z", FR, "delivered", "wamid.f1"))
s.check("2026-03-01T06:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to=FR)
# a send_error 131047 without wamid cannot be voided; a newer inbound reopens
s.line({"at": "2026-03-01T07:00:00Z", "send_error": {**contact(to=FR), "code": 131047}})
s.check("2026-03-01T07:00:01Z", "free_form", "template_required", False, "window_closed_by_platform", None, to=FR)
s.webhook("2026-03-01T08:00:00Z", inbound("2026-03-01T08:00:00Z", FR))
s.check("2026-03-01T08:00:01Z", "free_form", "free_form", True, None, "2026-03-02T08:00:00Z", to=FR)
S.append(s)

# ---- W7 K4: groups ----
s = Scenario("groups", "W7 K4")
G = "120363025246125486"
group_msg = envelope("messages", {"contacts": [{"profile": {"name": "Bo"}, "wa_id": "447700900001"}],
                                  "messages": [{"from": "447700900001", "group_id": G, "id": "wamid.g1",
                                                "timestamp": str(ts("2026-03-01T00:00:00Z")), "type": "text",
                                                "text": {"body": "hi all"}}]})
s.webhook("2026-03-01T00:00:00Z", group_msg)
s.check("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", group_id=G)
# the group message opens the group's window, not the sender's own
s.check("2026-03-01T00:00:01Z", "free_form", "template_required", False, "first_contact", None, to="447700900001")
s.error({"at": "2026-03-01T00:00:01Z", "check": {**contact(group_id="has space"), "message": "free_form"}})
s.error({"at": "2026-03-01T00:00:01Z", "check": {"from": "12ab", "to": FR, "message": "free_form"}})
S.append(s)

# ---- K1 K2 K3: keys ----
s = Scenario("keys", "K1 K2 K3")
s.webhook("2026-03-01T00:00:00Z", inbound("2026-03-01T00:00:00Z", "5215512345678"))
s.check("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to="+52 55 1234 5678")
s.webhook("2026-03-01T00:00:00Z", inbound("2026-03-01T00:00:00Z", "5511998765432"))
s.check("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to="55 11 9876-5432")
s.check("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to="(33) 6 12 34 56 78".replace("(33) 6", "+33 6") if False else "+55 11 99876 5432")
s.error({"at": "2026-03-01T00:00:01Z", "check": {**contact(to="0033612345678"), "message": "free_form"}})
s.error({"at": "2026-03-01T00:00:01Z", "check": {**contact(to="7777777"), "message": "free_form"}})
s.error({"at": "2026-03-01T00:00:01Z", "check": {**contact(to="12345"), "message": "free_form"}})
# K3: only a BSUID: the BSUID is the key
U = "BR.13491208655302741918"
bsuid_msg = envelope("messages", {"contacts": [{"profile": {"name": "Cy"}, "user_id": U}],
                                  "messages": [{"from_user_id": U, "id": "wamid.u1",
                                                "timestamp": str(ts("2026-03-01T00:00:00Z")), "type": "text",
                                                "text": {"body": "hi"}}]})
s.webhook("2026-03-01T00:00:00Z", bsuid_msg)
s.check("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", user_id=U)
s.error({"at": "2026-03-01T00:00:01Z", "check": {**contact(user_id="br.123"), "message": "free_form"}})
# K3: phone and BSUID together: the phone is the key
P = "447700900555"
both = envelope("messages", {"contacts": [{"profile": {"name": "Di"}, "wa_id": P, "user_id": "GB.77"}],
                             "messages": [{"from": P, "from_user_id": "GB.77", "id": "wamid.u2",
                                           "timestamp": str(ts("2026-03-01T00:00:00Z")), "type": "text",
                                           "text": {"body": "hi"}}]})
s.webhook("2026-03-01T00:00:00Z", both)
s.check("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to=P)
s.check("2026-03-01T00:00:01Z", "free_form", "template_required", False, "first_contact", None, user_id="GB.77")
S.append(s)

# ---- O1 O2 O3: opt-out ----
s = Scenario("opt-out", "O1 O2 O3")
s.webhook("2026-03-01T00:00:00Z", inbound("2026-03-01T00:00:00Z", FR, "  Stop! "))
s.check("2026-03-01T00:01:00Z", "free_form", "blocked", False, "opted_out", None, to=FR)
s.check("2026-03-01T00:01:00Z", "template", "blocked", False, "opted_out", None, category="utility", to=FR)
s.webhook("2026-03-01T00:02:00Z", inbound("2026-03-01T00:02:00Z", FR, "START"))
s.check("2026-03-01T00:03:00Z", "free_form", "free_form", True, None, "2026-03-02T00:02:00Z", to=FR)
# a keyword inside a sentence is no opt-out
s.webhook("2026-03-01T00:04:00Z", inbound("2026-03-01T00:04:00Z", FR, "please stop the promos"))
s.check("2026-03-01T00:05:00Z", "free_form", "free_form", True, None, "2026-03-02T00:04:00Z", to=FR)
# quick-reply button text counts
s.webhook("2026-03-01T00:06:00Z", inbound("2026-03-01T00:06:00Z", FR, "Unsubscribe", mtype="button"))
s.check("2026-03-01T00:07:00Z", "free_form", "blocked", False, "opted_out", None, to=FR)
# O3: an older opt-in arriving late does not lift a newer opt-out
s.line({"at": "2026-03-01T00:08:00Z", "opt_in": {**contact(to=FR), "scope": "all"}})
s.check("2026-03-01T00:09:00Z", "free_form", "free_form", True, None, "2026-03-02T00:06:00Z", to=FR)
s.line({"at": "2026-03-01T00:08:00Z", "opt_out": contact(to=FR)})
s.check("2026-03-01T00:09:00Z", "free_form", "blocked", False, "opted_out", None, to=FR)
s.line({"at": "2026-03-01T00:07:30Z", "opt_in": contact(to=FR)})
s.check("2026-03-01T00:09:00Z", "free_form", "blocked", False, "opted_out", None, to=FR)
# O2: marketing scope is its own register
M = "4915112345678"
s.webhook("2026-03-01T00:00:00Z", inbound("2026-03-01T00:00:00Z", M))
s.line({"at": "2026-03-01T00:01:00Z", "opt_out": {**contact(to=M), "scope": "marketing"}})
s.check("2026-03-01T00:02:00Z", "template", "blocked", False, "marketing_opted_out", None, category="marketing", to=M)
s.check("2026-03-01T00:02:00Z", "template", "free_form", True, None, "2026-03-02T00:00:00Z", category="authentication", to=M)
s.line({"at": "2026-03-01T00:03:00Z", "opt_in": {**contact(to=M), "scope": "all"}})
s.check("2026-03-01T00:04:00Z", "template", "blocked", False, "marketing_opted_out", None, category="marketing", to=M)
s.webhook("2026-03-01T00:05:00Z", preference("2026-03-01T00:05:00Z", M, "resume"))
s.check("2026-03-01T00:06:00Z", "template", "free_form", True, None, "2026-03-02T00:00:00Z", category="marketing", to=M)
# O2 by failure 131050
s.webhook("2026-03-01T00:07:00Z", status("2026-03-01T00:07:00Z", M, "failed", "wamid.m1", errors=[131050]))
s.check("2026-03-01T00:08:00Z", "template", "blocked", False, "marketing_opted_out", None, category="marketing", to=M)
S.append(s)

# ---- D1 D3 D4 D5 ----
s = Scenario("delivery", "D1 D3 D4 D5")
s.webhook("2026-03-01T00:00:00Z", status("2026-03-01T00:00:00Z", FR, "failed", "wamid.d1", errors=[131026]))
s.check("2026-03-01T01:00:00Z", "template", "blocked", False, "undeliverable", "2026-03-02T00:00:00Z", category="utility", to=FR)
s.check("2026-03-02T00:00:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=FR)
s.webhook("2026-03-01T02:00:00Z", status("2026-03-01T02:00:00Z", FR, "delivered", "wamid.d2"))
s.check("2026-03-01T02:00:01Z", "template", "template_required", True, "first_contact", None, category="utility", to=FR)
# D3: penalty 60s from 131056
P3 = "447700900300"
s.webhook("2026-03-01T00:00:00Z", inbound("2026-03-01T00:00:00Z", P3))
s.line({"at": "2026-03-01T00:10:00Z", "send_error": {**contact(to=P3), "code": 131056, "wamid": "wamid.p1"}})
s.check("2026-03-01T00:10:30Z", "free_form", "blocked", False, "pair_rate_limited", "2026-03-01T00:11:00Z", to=P3)
s.check("2026-03-01T00:11:00Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to=P3)
# D4: marketing held for 24h, utility unaffected
P4 = "447700900400"
s.webhook("2026-03-01T00:00:00Z", status("2026-03-01T00:00:00Z", P4, "failed", "wamid.h1", errors=[131049]))
s.check("2026-03-01T12:00:00Z", "template", "blocked", False, "marketing_limited", "2026-03-02T00:00:00Z", category="marketing", to=P4)
s.check("2026-03-01T12:00:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=P4)
# D5: caller bugs and unknown codes change nothing and print nothing
P5 = "447700900500"
s.line({"at": "2026-03-01T00:00:00Z", "send_error": {**contact(to=P5), "code": 132000}})
s.line({"at": "2026-03-01T00:00:00Z", "send_error": {**contact(to=P5), "code": 999999}})
s.webhook("2026-03-01T00:00:00Z", status("2026-03-01T00:00:00Z", P5, "failed", "wamid.x", errors=[131008]))
s.check("2026-03-01T00:00:01Z", "template", "template_required", True, "first_contact", None, category="utility", to=P5)
S.append(s)

# ---- D3 budget through reserve ----
s = Scenario("pair-budget", "D3")
s.webhook("2026-03-01T00:00:00Z", inbound("2026-03-01T00:00:00Z", FR))
for i in range(45):
    s.reserve("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to=FR)
s.reserve("2026-03-01T00:00:01Z", "free_form", "blocked", False, "pair_rate_limited", "2026-03-01T00:00:07Z", to=FR)
s.check("2026-03-01T00:00:01Z", "free_form", "blocked", False, "pair_rate_limited", "2026-03-01T00:00:07Z", to=FR)
s.reserve("2026-03-01T00:00:07Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to=FR)
s.reserve("2026-03-01T00:00:07Z", "free_form", "blocked", False, "pair_rate_limited", "2026-03-01T00:00:13Z", to=FR)
# penalty and budget both refuse: the later instant
s.line({"at": "2026-03-01T00:00:08Z", "send_error": {**contact(to=FR), "code": 131056}})
s.check("2026-03-01T00:00:08Z", "free_form", "blocked", False, "pair_rate_limited", "2026-03-01T00:01:08Z", to=FR)
S.append(s)

# ---- S1 S2 S3 ----
s = Scenario("sender", "S1 S2 S3")
A, B = "447700900601", "447700900602"
s.webhook("2026-03-01T00:00:00Z", inbound("2026-03-01T00:00:00Z", A))
s.line({"at": "2026-03-01T00:01:00Z", "send_error": {**contact(to=A), "code": 130429}})
s.check("2026-03-01T00:01:00Z", "free_form", "blocked", False, "throughput_limited", "2026-03-01T00:01:01Z", to=B)
s.check("2026-03-01T00:01:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to=A)
s.line({"at": "2026-03-01T00:02:00Z", "send_error": {**contact(to=A), "code": 131000}})
s.check("2026-03-01T00:02:30Z", "free_form", "blocked", False, "service_unavailable", "2026-03-01T00:03:00Z", to=A)
s.line({"at": "2026-03-01T00:02:00Z", "send_error": {**contact(to=A), "code": 2}})
s.check("2026-03-01T00:02:30Z", "free_form", "blocked", False, "service_unavailable", "2026-03-01T00:07:00Z", to=A)
s.line({"at": "2026-03-01T01:00:00Z", "send_error": {**contact(to=A), "code": 131048}})
s.check("2026-03-01T01:30:00Z", "template", "blocked", False, "spam_rate_limited", "2026-03-01T02:00:00Z", category="utility", to=B)
s.webhook("2026-03-01T03:00:00Z", status("2026-03-01T03:00:00Z", A, "failed", "wamid.s1", errors=[368]))
s.check("2026-03-05T00:00:00Z", "template", "blocked", False, "sender_restricted", None, category="utility", to=B)
s.webhook("2026-03-01T03:00:00Z", status("2026-03-01T03:00:00Z", A, "sent", "wamid.s2"))
s.check("2026-03-05T00:00:00Z", "template", "blocked", False, "sender_restricted", None, category="utility", to=B)
s.webhook("2026-03-01T03:00:01Z", status("2026-03-01T03:00:01Z", A, "delivered", "wamid.s3"))
s.check("2026-03-05T00:00:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=B)
s.webhook("2026-03-05T00:00:00Z", status("2026-03-05T00:00:00Z", A, "failed", "wamid.s4", errors=[131031]))
s.check("2026-03-05T00:00:01Z", "template", "blocked", False, "sender_restricted", None, category="utility", to=B)
s.line({"at": "2026-03-05T00:00:02Z", "clear_sender": {"from": BIZ}})
s.check("2026-03-05T00:00:03Z", "template", "template_required", True, "first_contact", None, category="utility", to=B)
S.append(s)

# ---- R1 R2 R3 ----
s = Scenario("regions", "R1 R2 R3")
for p in ["5351234567", "989121234567", "8502123456", "963912345678", "79781234567", "79491234567"]:
    s.check("2026-03-01T00:00:00Z", "template", "blocked", False, "restricted_region", None, category="utility", to=p)
s.check("2026-03-01T00:00:00Z", "template", "blocked", False, "restricted_region", None, category="utility", user_id="KP.123")
s.check("2026-03-01T00:00:00Z", "template", "template_required", True, "first_contact", None, category="utility", to="905321234567")
s.check("2026-03-01T00:00:00Z", "template", "blocked", False, "marketing_unavailable_in_region", None, category="marketing", to="+1 415 555 0123")
s.check("2026-03-01T00:00:00Z", "template", "template_required", True, "first_contact", None, category="utility", to="+1 415 555 0123")
s.check("2026-03-01T00:00:00Z", "template", "blocked", False, "marketing_unavailable_in_region", None, category="marketing", user_id="US.9")
for p in ["14165550123", "17875550123", "18765550123"]:
    s.check("2026-03-01T00:00:00Z", "template", "template_required", True, "first_contact", None, category="marketing", to=p)
S.append(s)

# ---- E1 E2 E4 ----
s = Scenario("events", "E1 E2 E4")
s.webhook("2026-03-01T10:00:00Z", inbound("2026-03-01T10:00:00Z", FR))
s.webhook("2026-03-01T10:00:00Z", inbound("2026-03-01T10:00:00Z", FR))
s.webhook("2026-03-01T10:00:00Z", inbound("2026-03-01T09:00:00Z", FR))
s.check("2026-03-01T10:00:01Z", "free_form", "free_form", True, None, "2026-03-02T10:00:00Z", to=FR)
s.line({"at": "2026-03-01T11:00:00Z", "forget": contact(to=FR)})
s.check("2026-03-01T11:00:01Z", "free_form", "template_required", False, "first_contact", None, to=FR)
# a late retry of an erased event cannot bring the state back
s.webhook("2026-03-01T12:00:00Z", inbound("2026-03-01T10:00:00Z", FR))
s.check("2026-03-01T12:00:01Z", "free_form", "template_required", False, "first_contact", None, to=FR)
s.webhook("2026-03-01T12:00:00Z", inbound("2026-03-01T12:00:00Z", FR))
s.check("2026-03-01T12:00:01Z", "free_form", "free_form", True, None, "2026-03-02T12:00:00Z", to=FR)
S.append(s)

# ---- G1 ----
s = Scenario("resend", "G1")
for i in range(3):
    s.reserve("2026-03-01T00:00:00Z", "template", "template_required", True, "first_contact" if i == 0 else "awaiting_reply", None, category="utility", key="invoice-7", to=FR)
s.reserve("2026-03-01T01:00:00Z", "template", "blocked", False, "resend_limit", "2026-03-02T00:00:00Z", category="utility", key="invoice-7", to=FR)
s.reserve("2026-03-01T01:00:00Z", "template", "template_required", True, "awaiting_reply", None, category="utility", key="invoice-8", to=FR)
s.reserve("2026-03-02T00:00:00Z", "template", "template_required", True, "awaiting_reply", None, category="utility", key="invoice-7", to=FR)
S.append(s)

# ---- H1 and replay errors ----
s = Scenario("errors", "H1 (replay contract errors)")
s.error("{not json")
s.error({"at": "2026-03-01T00:00:00Z", "teleport": {"from": BIZ}})
s.error({"check": {**contact(to=FR), "message": "free_form"}})
s.error({"at": "not a time", "check": {**contact(to=FR), "message": "free_form"}})
s.error({"at": "2026-03-01T00:00:00Z", "check": {**contact(to=FR), "message": "template"}})
s.error({"at": "2026-03-01T00:00:00Z", "check": {**contact(to=FR), "message": "template", "category": "promo"}})
s.error({"at": "2026-03-01T00:00:00Z", "check": {**contact(to=FR), "message": "free_form", "category": "utility"}})
s.error({"at": "2026-03-01T00:00:00Z", "check": {**contact(to=FR), "message": "free_form", "idempotency_key": "k"}})
s.error({"at": "2026-03-01T00:00:00Z", "check": {"from": BIZ, "message": "free_form"}})
s.error({"at": "2026-03-01T00:00:00Z", "opt_out": {**contact(to=FR), "scope": "everything"}})
s.error({"at": "2026-03-01T00:00:00Z", "send_error": {**contact(to=FR), "code": "abc"}})
s.error({"at": "2026-03-01T00:00:00Z", "webhook": {"object": "page", "entry": []}})
s.error({"at": "2026-03-01T00:00:00Z", "webhook_raw": "{}", "signature": "sha256=00"})
s.line("")
# one bad item, one good item: the good one is applied, the bad one answered with its path
mixed = envelope("messages", {"messages": [
    {"from": "12345", "id": "wamid.bad", "timestamp": str(ts("2026-03-01T00:00:00Z")), "type": "text", "text": {"body": "x"}},
    {"from": FR, "id": "wamid.good", "timestamp": str(ts("2026-03-01T00:00:00Z")), "type": "text", "text": {"body": "y"}}]})
s.error({"at": "2026-03-01T00:00:00Z", "webhook": mixed})
s.check("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", to=FR)
S.append(s)

for s in S:
    s.write()
print("wrote", len(S), "scenarios:", ", ".join(f"{s.name} ({s.rules})" for s in S))

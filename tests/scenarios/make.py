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
s = Scenario("keys", "K1 K2 K3 K5")
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
# K5: and the BSUID is linked to the phone: checks by either name see one state
s.check("2026-03-01T00:00:01Z", "free_form", "free_form", True, None, "2026-03-02T00:00:00Z", user_id="GB.77")
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

# ---- E4: erasure keeps the objection ----
s = Scenario("erasure", "E4 O1 O2 O3 D3 W3")
s.line({"at": "2026-01-01T00:00:00Z", "opt_out": {**contact(to=FR), "scope": "all"}})
s.line({"at": "2026-01-01T00:01:00Z", "forget": contact(to=FR)})
s.check("2026-01-01T00:02:00Z", "template", "blocked", False, "opted_out", None, category="utility", to=FR)
# a START after the erasure lifts it as usual
s.line({"at": "2026-01-01T00:03:00Z", "opt_in": {**contact(to=FR), "scope": "all"}})
s.check("2026-01-01T00:04:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=FR)
# a STOP dated before the erasure that arrives after it still counts (its window part does not)
E2 = "33612345679"
s.line({"at": "2026-01-01T00:10:00Z", "forget": contact(to=E2)})
s.webhook("2026-01-01T00:11:00Z", inbound("2026-01-01T00:05:00Z", E2, "STOP"))
s.check("2026-01-01T00:12:00Z", "template", "blocked", False, "opted_out", None, category="utility", to=E2)
# the marketing register survives too
E3 = "33612345680"
s.webhook("2026-01-01T00:20:00Z", preference("2026-01-01T00:20:00Z", E3, "stop"))
s.line({"at": "2026-01-01T00:21:00Z", "forget": contact(to=E3)})
s.check("2026-01-01T00:22:00Z", "template", "blocked", False, "marketing_opted_out", None, category="marketing", to=E3)
# include_opt_out takes the objection too, and older consent events arriving later are ignored
E4 = "33612345681"
s.line({"at": "2026-01-01T00:30:00Z", "opt_out": {**contact(to=E4)}})
s.line({"at": "2026-01-01T00:31:00Z", "forget": {**contact(to=E4), "include_opt_out": True}})
s.webhook("2026-01-01T00:32:00Z", inbound("2026-01-01T00:29:00Z", E4, "STOP"))
s.check("2026-01-01T00:33:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=E4)
# everything else goes whatever its instant: an inbound dated after the erasure instant
E5 = "33612345682"
s.webhook("2026-01-01T01:00:00Z", inbound("2026-01-01T01:01:40Z", E5))
s.line({"at": "2026-01-01T01:00:50Z", "forget": contact(to=E5)})
s.check("2026-01-01T01:03:20Z", "free_form", "template_required", False, "first_contact", None, to=E5)
# the pair budget goes with it
E6 = "33612345683"
s.webhook("2026-01-01T02:00:00Z", inbound("2026-01-01T02:00:00Z", E6))
for _ in range(45):
    s.line({"at": "2026-01-01T02:00:01Z", "reserve": {**contact(to=E6), "message": "free_form"}})
    s.expected.append({"line": len(s.lines), "decision": "free_form", "allowed": True, "reason": None, "until": "2026-01-02T02:00:00Z"})
s.line({"at": "2026-01-01T02:00:01Z", "forget": contact(to=E6)})
s.reserve("2026-01-01T02:00:01Z", "template", "template_required", True, "first_contact", None, category="utility", to=E6)
# a template reserved at the erasure instant is not recorded
E7 = "33612345684"
s.line({"at": "2026-01-01T03:00:00Z", "forget": contact(to=E7)})
s.reserve("2026-01-01T03:00:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=E7)
s.check("2026-01-01T03:00:00Z", "free_form", "template_required", False, "first_contact", None, to=E7)
s.error({"at": "2026-01-01T03:00:00Z", "forget": {**contact(to=E7), "include_opt_out": "yes"}})
S.append(s)

# ---- E5: no event from the future ----
s = Scenario("future", "E5 O3 W2")
s.webhook("2026-01-01T00:00:00Z", inbound("2255-01-01T00:00:00Z", FR))
# clamped to receive time + 5 minutes: the window closes 24h after that
s.check("2026-01-02T00:04:59Z", "free_form", "free_form", True, None, "2026-01-02T00:05:00Z", to=FR)
s.check("2026-01-02T00:05:00Z", "free_form", "template_required", False, "window_expired", None, to=FR)
# a START dated 2255 cannot make a later real STOP lose O3
F2 = "33612345690"
s.webhook("2026-01-01T00:00:00Z", inbound("2255-01-01T00:00:00Z", F2, "START"))
s.webhook("2026-01-01T01:00:00Z", inbound("2026-01-01T01:00:00Z", F2, "STOP"))
s.check("2026-01-01T01:00:01Z", "template", "blocked", False, "opted_out", None, category="utility", to=F2)
# a negative timestamp is an item error
neg = envelope("messages", {"messages": [{"from": FR, "id": "wamid.neg", "timestamp": "-5", "type": "text", "text": {"body": "x"}}]})
s.error({"at": "2026-01-01T02:00:00Z", "webhook": neg})
frac = envelope("messages", {"messages": [{"from": FR, "id": "wamid.frac", "timestamp": "1767229200.5", "type": "text", "text": {"body": "x"}}]})
s.error({"at": "2026-01-01T02:00:00Z", "webhook": frac})
S.append(s)

# ---- K5: one person, one state ----
s = Scenario("links", "K5 K3 O1 E4")
P5 = "447700900777"
U5 = "GB.55501234567"
only_user = lambda at, text: envelope("messages", {"contacts": [{"profile": {"name": "Ev"}, "user_id": U5}],
    "messages": [{"from_user_id": U5, "id": f"wamid.l.{ts(at)}", "timestamp": str(ts(at)), "type": "text", "text": {"body": text}}]})
both5 = lambda at: envelope("messages", {"contacts": [{"profile": {"name": "Ev"}, "wa_id": P5, "user_id": U5}],
    "messages": [{"from": P5, "from_user_id": U5, "id": f"wamid.b.{ts(at)}", "timestamp": str(ts(at)), "type": "text", "text": {"body": "hi"}}]})
# a STOP on the BSUID before the link is learned ...
s.webhook("2026-01-01T00:00:00Z", only_user("2026-01-01T00:00:00Z", "STOP"))
s.check("2026-01-01T00:00:01Z", "template", "blocked", False, "opted_out", None, category="utility", to=P5 if False else None, user_id=U5)
# ... joins the phone's key once a webhook carries both
s.webhook("2026-01-01T00:10:00Z", both5("2026-01-01T00:10:00Z"))
s.check("2026-01-01T00:10:01Z", "template", "blocked", False, "opted_out", None, category="utility", to=P5)
# later events naming only the BSUID apply to the phone's key
s.webhook("2026-01-01T00:20:00Z", only_user("2026-01-01T00:20:00Z", "START"))
s.check("2026-01-01T00:20:01Z", "free_form", "free_form", True, None, "2026-01-02T00:20:00Z", to=P5)
s.check("2026-01-01T00:20:01Z", "free_form", "free_form", True, None, "2026-01-02T00:20:00Z", user_id=U5)
s.line({"at": "2026-01-01T00:30:00Z", "opt_out": {**contact(user_id=U5), "scope": "all"}})
s.check("2026-01-01T00:30:01Z", "free_form", "blocked", False, "opted_out", None, to=P5)
# a link learned from a status (recipient_id with recipient_user_id) works the same way
P6 = "447700900778"
U6 = "GB.55501234568"
s.line({"at": "2026-01-01T01:00:00Z", "opt_out": {**contact(user_id=U6), "scope": "all"}})
st = envelope("messages", {"statuses": [{"id": "wamid.s6", "status": "delivered", "timestamp": str(ts("2026-01-01T01:01:00Z")),
                                          "recipient_id": P6, "recipient_user_id": U6}]})
s.webhook("2026-01-01T01:01:00Z", st)
s.check("2026-01-01T01:01:01Z", "template", "blocked", False, "opted_out", None, category="utility", to=P6)
# forget by the BSUID erases the linked key's state but keeps the objection (E4)
s.line({"at": "2026-01-01T02:00:00Z", "forget": contact(user_id=U5)})
s.check("2026-01-01T02:00:01Z", "template", "blocked", False, "opted_out", None, category="utility", to=P5)
s.check("2026-01-01T02:00:01Z", "free_form", "blocked", False, "opted_out", None, user_id=U5)
# a parent id is never a key
parent_only = envelope("messages", {"messages": [{"from_parent_user_id": "GB.ENT.999", "id": "wamid.p", "timestamp": str(ts("2026-01-01T03:00:00Z")), "type": "text", "text": {"body": "x"}}],
                                    "contacts": [{"parent_user_id": "GB.ENT.999"}, {"parent_user_id": "GB.ENT.998"}]})
s.error({"at": "2026-01-01T03:00:00Z", "webhook": parent_only})
# a message with no sender belongs to the sole contacts[] entry
P7 = "447700900779"
sole = envelope("messages", {"contacts": [{"profile": {"name": "Fa"}, "wa_id": P7}],
                             "messages": [{"id": "wamid.sole", "timestamp": str(ts("2026-01-01T04:00:00Z")), "type": "text", "text": {"body": "hi"}}]})
s.webhook("2026-01-01T04:00:00Z", sole)
s.check("2026-01-01T04:00:01Z", "free_form", "free_form", True, None, "2026-01-02T04:00:00Z", to=P7)
U8 = "GB.55501234569"
sole_user = envelope("messages", {"contacts": [{"profile": {"name": "Ga"}, "user_id": U8}],
                                  "messages": [{"id": "wamid.sole2", "timestamp": str(ts("2026-01-01T04:00:00Z")), "type": "text", "text": {"body": "hi"}}]})
s.webhook("2026-01-01T04:00:00Z", sole_user)
s.check("2026-01-01T04:00:01Z", "free_form", "free_form", True, None, "2026-01-02T04:00:00Z", user_id=U8)
S.append(s)

# ---- K6: a changed number keeps its objections ----
s = Scenario("changed-number", "K6 O1 O2 W1")
A6, B6 = "447700900881", "447700900882"
s.webhook("2026-01-01T00:00:00Z", inbound("2026-01-01T00:00:00Z", A6, "STOP"))
s.webhook("2026-01-01T00:00:00Z", preference("2026-01-01T00:00:00Z", A6, "stop"))
changed = envelope("messages", {"messages": [{"from": A6, "id": "wamid.sys", "timestamp": str(ts("2026-01-01T01:00:00Z")), "type": "system",
                                              "system": {"body": "changed", "type": "user_changed_number", "wa_id": B6}}]})
s.webhook("2026-01-01T01:00:00Z", changed)
s.check("2026-01-01T01:00:01Z", "template", "blocked", False, "opted_out", None, category="utility", to=B6)
# the system message does not open a window for either number
s.line({"at": "2026-01-01T01:00:02Z", "opt_in": {**contact(to=B6)}})
s.check("2026-01-01T01:00:03Z", "free_form", "template_required", False, "first_contact", None, to=B6)
s.check("2026-01-01T01:00:03Z", "template", "blocked", False, "marketing_opted_out", None, category="marketing", to=B6)
# a consent event of the old number dated before the change, arriving after it, still counts
C6, D6 = "447700900883", "447700900884"
changed2 = envelope("messages", {"messages": [{"from": C6, "id": "wamid.sys2", "timestamp": str(ts("2026-01-01T02:00:00Z")), "type": "system",
                                               "system": {"body": "changed", "type": "user_changed_number", "new_wa_id": D6}}]})
s.webhook("2026-01-01T02:00:00Z", changed2)
s.webhook("2026-01-01T02:01:00Z", inbound("2026-01-01T01:59:00Z", C6, "STOP"))
s.check("2026-01-01T02:01:01Z", "template", "blocked", False, "opted_out", None, category="utility", to=D6)
# one dated after the change (the old number's next owner) does not
s.webhook("2026-01-01T03:00:00Z", inbound("2026-01-01T03:00:00Z", C6, "START"))
s.check("2026-01-01T03:00:01Z", "template", "blocked", False, "opted_out", None, category="utility", to=D6)
S.append(s)

# ---- this round's fixes: W3's earliest mark, S1 in any order, keywords, H1 value errors, R3 ----
s = Scenario("fidelity", "W3 W4 S1 E1 O1 H1 R3")
s.webhook("2026-01-01T00:00:00Z", inbound("2026-01-01T00:00:00Z", FR))
s.line({"at": "2026-01-01T01:00:00Z", "send_error": {**contact(to=FR), "code": 131047}})
s.reserve("2026-01-01T02:00:00Z", "template", "template_required", True, "window_closed_by_platform", None, category="utility", to=FR)
s.line({"at": "2026-01-01T03:00:00Z", "send_error": {**contact(to=FR), "code": 131047}})
s.check("2026-01-01T04:00:00Z", "free_form", "template_required", False, "awaiting_reply", None, to=FR)
# S1: a success newer than a restriction lifts it whichever arrives first
Q = "33612345700"
s.webhook("2026-01-01T05:00:00Z", status("2026-01-01T05:00:10Z", Q, "delivered", "wamid.ok"))
s.webhook("2026-01-01T05:00:20Z", status("2026-01-01T05:00:00Z", Q, "failed", "wamid.bad", errors=[368]))
s.check("2026-01-01T05:00:30Z", "free_form", "template_required", False, "first_contact", None, to=Q)
# O1: any trailing run of ! . and spaces
R = "33612345701"
s.webhook("2026-01-01T06:00:00Z", inbound("2026-01-01T06:00:00Z", R, "STOP" + "!" * 70))
s.check("2026-01-01T06:00:01Z", "free_form", "blocked", False, "opted_out", None, to=R)
# H1: value-level errors[] change nothing, also for other contacts
T = "33612345702"
verr = envelope("messages", {"errors": [{"code": 131000, "title": "Unsupported webhook payload"}]})
s.webhook("2026-01-01T07:00:00Z", verr)
s.webhook("2026-01-01T07:00:00Z", inbound("2026-01-01T07:00:00Z", T))
s.check("2026-01-01T07:00:01Z", "free_form", "free_form", True, None, "2026-01-02T07:00:00Z", to=T)
# H1: played counts as read (clears D1 like a read)
s.line({"at": "2026-01-01T08:00:00Z", "send_error": {**contact(to=T), "code": 131026, "wamid": "wamid.v1"}})
s.check("2026-01-01T08:00:01Z", "free_form", "blocked", False, "undeliverable", "2026-01-02T08:00:00Z", to=T)
s.webhook("2026-01-01T08:01:00Z", status("2026-01-01T08:01:00Z", T, "played", "wamid.v1"))
s.check("2026-01-01T08:01:01Z", "free_form", "free_form", True, None, "2026-01-02T07:00:00Z", to=T)
# R3: numbers libphonenumber does not hold valid are not refused as US
s.check("2026-01-01T09:00:00Z", "template", "template_required", True, "first_contact", None, category="marketing", to="+1 202 123 4567")
s.check("2026-01-01T09:00:00Z", "template", "template_required", True, "first_contact", None, category="marketing", to="+1 800 123 4567")
s.check("2026-01-01T09:00:00Z", "template", "blocked", False, "marketing_unavailable_in_region", None, category="marketing", to="+1 202 555 0143")
S.append(s)

# ---- S2 codes and S4 pacing ----
s = Scenario("sender-limits", "S2 S4 S1")
s.line({"at": "2026-01-01T00:00:00Z", "send_error": {**contact(to=FR), "code": 131016}})
s.check("2026-01-01T00:00:01Z", "template", "blocked", False, "service_unavailable", "2026-01-01T00:01:00Z", category="utility", to=FR)
s.line({"at": "2026-01-01T00:00:30Z", "send_error": {**contact(to=FR), "code": 4}})
# api_rate_limited comes before service_unavailable (section 7)
s.check("2026-01-01T00:00:31Z", "template", "blocked", False, "api_rate_limited", "2026-01-01T00:01:30Z", category="utility", to=FR)
s.check("2026-01-01T00:01:30Z", "template", "template_required", True, "first_contact", None, category="utility", to=FR)
s.line({"at": "2026-01-01T00:02:00Z", "send_error": {**contact(to=FR), "code": 80007}})
s.check("2026-01-01T00:02:01Z", "free_form", "blocked", False, "api_rate_limited", "2026-01-01T00:03:00Z", to=FR)
# S4: 80 reservations of one number in the same instant go, the 81st waits one interval
AT = "2026-01-01T01:00:00Z"
for i in range(80):
    to = "3361234%04d" % (5000 + i % 4)
    s.reserve(AT, "template", "template_required", True, "first_contact" if i < 4 else "awaiting_reply", None, category="utility", to=to)
s.reserve(AT, "template", "blocked", False, "throughput_limited", "2026-01-01T01:00:00.0125Z", category="utility", to="33612349999")
# check reports the exhausted pace read-only; a refused reservation consumed nothing
s.check(AT, "template", "blocked", False, "throughput_limited", "2026-01-01T01:00:00.0125Z", category="utility", to="33612349999")
s.reserve("2026-01-01T01:00:00.0125Z", "template", "template_required", True, "first_contact", None, category="utility", to="33612349999")
S.append(s)

# ---- T1-T4: the template registry ----
def account_change(at, field, value, account="900000001", time=True):
    entry = {"id": account, "changes": [{"field": field, "value": value}]}
    if time:
        entry["time"] = ts(at)
    return {"object": "whatsapp_business_account", "entry": [entry]}

def tpl_status(at, event, name="order_update", lang="en_US", title=None, category=None):
    v = {"event": event, "message_template_id": 5551234, "message_template_name": name,
         "message_template_language": lang, "reason": None}
    if title:
        v["other_info"] = {"title": title, "description": "x"}
    if category:
        v["message_template_category"] = category
    return account_change(at, "message_template_status_update", v)

s = Scenario("templates", "T1 T2 T3 T4 O2 R3")
TPL = {"name": "order_update", "language": "en_US"}
def ask_tpl(kind, at, decision, allowed, reason, until, category="utility", tpl=TPL, to=FR):
    body = {**contact(to=to), "message": "template", "category": category, "template": tpl}
    n = s.line({"at": at, kind: body})
    s.expected.append({"line": n, "decision": decision, "allowed": allowed, "reason": reason, "until": until})
# T4: a messages webhook links the number to entry[].id; until then nothing is known
ask_tpl("check", "2026-01-01T00:00:00Z", "template_required", True, "first_contact", None)
s.webhook("2026-01-01T00:01:00Z", inbound("2026-01-01T00:01:00Z", FR))
s.webhook("2026-01-01T00:02:00Z", tpl_status("2026-01-01T00:02:00Z", "DISABLED"))
ask_tpl("check", "2026-01-01T00:03:00Z", "blocked", False, "template_disabled", None)
# a later approval lifts it; an older event arriving late changes nothing (last writer wins)
s.webhook("2026-01-01T00:04:00Z", tpl_status("2026-01-01T00:04:00Z", "APPROVED"))
s.webhook("2026-01-01T00:05:00Z", tpl_status("2026-01-01T00:03:30Z", "REJECTED"))
ask_tpl("check", "2026-01-01T00:05:01Z", "free_form", True, None, "2026-01-02T00:01:00Z")
# at equal times the more restrictive status wins
s.webhook("2026-01-01T00:06:00Z", tpl_status("2026-01-01T00:06:00Z", "REJECTED"))
s.webhook("2026-01-01T00:06:00Z", tpl_status("2026-01-01T00:06:00Z", "APPROVED"))
ask_tpl("check", "2026-01-01T00:06:01Z", "blocked", False, "template_not_approved", None)
# pauses: second pause 6h, rate-limiting pause without end, then approved again by time
s.webhook("2026-01-01T01:00:00Z", tpl_status("2026-01-01T01:00:00Z", "PAUSED", title="SECOND_PAUSE"))
ask_tpl("check", "2026-01-01T01:00:01Z", "blocked", False, "template_paused", "2026-01-01T07:00:00Z")
ask_tpl("reserve", "2026-01-01T07:00:00Z", "free_form", True, None, "2026-01-02T00:01:00Z")
s.webhook("2026-01-01T08:00:00Z", tpl_status("2026-01-01T08:00:00Z", "PAUSED", title="RATE_LIMITING_PAUSE"))
ask_tpl("check", "2026-01-01T20:00:00Z", "blocked", False, "template_paused", None)
# FLAGGED changes nothing; another language is another template
s.webhook("2026-01-01T20:00:00Z", tpl_status("2026-01-01T20:00:00Z", "FLAGGED"))
ask_tpl("check", "2026-01-01T20:00:01Z", "blocked", False, "template_paused", None)
ask_tpl("check", "2026-01-01T20:00:01Z", "free_form", True, None, "2026-01-02T00:01:00Z", tpl={"name": "order_update", "language": "pt_BR"})
# T2: a send error naming the template: 132016 disabled, 132015 paused for the first-pause length
s.line({"at": "2026-01-01T21:00:00Z", "send_error": {**contact(to=FR), "code": 132016, "template": {"name": "receipt", "language": "en"}}})
ask_tpl("check", "2026-01-01T21:00:01Z", "blocked", False, "template_disabled", None, tpl={"name": "receipt", "language": "en"})
s.line({"at": "2026-01-01T21:00:00Z", "send_error": {**contact(to=FR), "code": 132015, "template": {"name": "promo", "language": "en"}}})
ask_tpl("check", "2026-01-01T21:00:01Z", "blocked", False, "template_paused", "2026-01-02T00:00:00Z", tpl={"name": "promo", "language": "en"})
s.line({"at": "2026-01-01T21:00:00Z", "send_error": {**contact(to=FR), "code": 132001, "template": {"name": "hola", "language": "es"}}})
ask_tpl("check", "2026-01-01T21:00:01Z", "blocked", False, "template_not_approved", None, tpl={"name": "hola", "language": "es"})
# T3: a completed recategorisation replaces the caller's category; an advance notice does not
s.webhook("2026-01-01T22:00:00Z", preference("2026-01-01T22:00:00Z", FR, "stop"))
s.webhook("2026-01-01T22:01:00Z", account_change("2026-01-01T22:01:00Z", "template_category_update",
    {"message_template_id": 1, "message_template_name": "notice", "message_template_language": "en",
     "correct_category": "MARKETING", "category_update_timestamp": ts("2026-02-01T00:00:00Z")}))
ask_tpl("check", "2026-01-01T22:02:00Z", "free_form", True, None, "2026-01-02T00:01:00Z", tpl={"name": "notice", "language": "en"})
s.webhook("2026-01-01T22:03:00Z", account_change("2026-01-01T22:03:00Z", "template_category_update",
    {"message_template_id": 1, "message_template_name": "notice", "message_template_language": "en",
     "previous_category": "UTILITY", "new_category": "MARKETING"}))
ask_tpl("check", "2026-01-01T22:04:00Z", "blocked", False, "marketing_opted_out", None, tpl={"name": "notice", "language": "en"})
# a category alone does not make a template known, and unnamed templates are never refused by T
ask_tpl("check", "2026-01-01T22:04:00Z", "blocked", False, "marketing_opted_out", None, category="marketing", tpl={"name": "notice", "language": "en"})
s.check("2026-01-01T22:04:00Z", "template", "free_form", True, None, "2026-01-02T00:01:00Z", category="utility", to=FR)
# a template named on a free-form line is an error; so is a malformed one
s.error({"at": "2026-01-01T22:05:00Z", "check": {**contact(to=FR), "message": "free_form", "template": TPL}})
s.error({"at": "2026-01-01T22:05:00Z", "check": {**contact(to=FR), "message": "template", "category": "utility", "template": {"name": "x"}}})
s.error({"at": "2026-01-01T22:05:00Z", "check": {**contact(to=FR), "message": "template", "category": "utility", "template": {"name": "x", "language": "en", "id": 5}}})
# account-level items need a valid entry id and time
bad_time = tpl_status("2026-01-01T23:00:00Z", "DISABLED")
bad_time["entry"][0]["time"] = "yesterday"
s.error({"at": "2026-01-01T23:00:00Z", "webhook": bad_time})
ask_tpl("check", "2026-01-01T23:00:01Z", "blocked", False, "template_paused", None)
S.append(s)

# ---- L1-L3: the portfolio's messaging limit ----
s = Scenario("limits", "L1 L2 L3 T4")
def capability(at, value, field="business_capability_update", key="max_daily_conversations_per_business"):
    return account_change(at, field, {key: value})
L = ["33612346%03d" % i for i in range(10)]
# the number's account is learned from a messages webhook (T4), the limit from the account's
s.webhook("2026-01-01T00:00:00Z", status("2026-01-01T00:00:00Z", L[9], "delivered", "wamid.x"))
s.webhook("2026-01-01T00:01:00Z", capability("2026-01-01T00:01:00Z", 2))
s.reserve("2026-01-01T00:10:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=L[0])
s.reserve("2026-01-01T00:10:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=L[1])
# the third new user in 24h is refused until the first bucket stops being live
s.check("2026-01-01T00:11:00Z", "template", "blocked", False, "messaging_limit_reached", "2026-01-02T01:00:00Z", category="marketing", to=L[2])
s.reserve("2026-01-01T00:11:00Z", "template", "blocked", False, "messaging_limit_reached", "2026-01-02T01:00:00Z", category="utility", to=L[2])
# a user counted less than 24h ago does not count again; free-form never counts
s.reserve("2026-01-01T00:12:00Z", "template", "template_required", True, "awaiting_reply", None, category="utility", to=L[0])
s.webhook("2026-01-01T00:13:00Z", inbound("2026-01-01T00:13:00Z", L[3]))
s.reserve("2026-01-01T00:14:00Z", "template", "free_form", True, None, "2026-01-02T00:13:00Z", category="utility", to=L[3])
# a newer webhook raises the limit (TIER_ strings, from the quality update's field)
s.webhook("2026-01-01T00:20:00Z", capability("2026-01-01T00:20:00Z", "TIER_250", field="phone_number_quality_update"))
s.reserve("2026-01-01T00:21:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=L[2])
# TIER_NOT_SET changes nothing; an older limit arriving late changes nothing
s.webhook("2026-01-01T00:22:00Z", capability("2026-01-01T00:22:00Z", "TIER_NOT_SET"))
s.webhook("2026-01-01T00:23:00Z", capability("2026-01-01T00:05:00Z", 1))
s.reserve("2026-01-01T00:24:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=L[4])
# unlimited
s.webhook("2026-01-01T00:30:00Z", capability("2026-01-01T00:30:00Z", -1))
s.check("2026-01-01T00:31:00Z", "template", "template_required", True, "first_contact", None, category="utility", to=L[5])
S.append(s)

for s in S:
    s.write()
print("wrote", len(S), "scenarios:", ", ".join(f"{s.name} ({s.rules})" for s in S))

#!/usr/bin/env python3
"""A sender in Python guarded by `waguard serve`, with the standard library only.

The loop of every guarded sender: ask waguard whether the message may go (`/v1/check`),
reserve it (`/v1/reserve`), call the Cloud API, and give Meta's error object back to waguard
(`/v1/send-errors`) so that the next decision knows. The Cloud API here is a fake that this
script starts on 127.0.0.1 and that refuses every message with error 131026 (undeliverable).

Usage:
    WAGUARD_URL=http://127.0.0.1:8080 WAGUARD_TOKEN=... python3 client.py
    WAGUARD_BIN=target/debug/waguard python3 client.py   # starts `waguard serve --memory` itself

Exit status 0 when the story went as told: allowed, reserved, refused by the Cloud API,
reported, then blocked.
"""

import http.server
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

BUSINESS = "106540352242922"  # the phone number id messages are sent from
CONTACT = "+33 6 12 34 56 78"


def call(base, token, method, path, body=None):
    """One JSON call; returns (status, decoded body or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        return error.code, json.loads(text) if text else None


class FakeGraph(http.server.BaseHTTPRequestHandler):
    """POST /v23.0/{phone_number_id}/messages, refused as Meta refuses an undeliverable one."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({
            "error": {
                "message": "(#131026) Message undeliverable",
                "type": "OAuthException",
                "code": 131026,
                "error_data": {"messaging_product": "whatsapp",
                               "details": "Message Undeliverable."},
                "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
            }
        }).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_waguard(binary):
    """Starts `waguard serve --memory` on free loopback ports; returns (process, url, token)."""
    token = secrets.token_hex(16)
    tokens = tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False)
    tokens.write(token + "\n")
    tokens.close()
    process = subprocess.Popen(
        [binary, "serve", "--memory", "--listen", "127.0.0.1:0",
         "--admin-listen", "127.0.0.1:0", "--tokens-file", tokens.name],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = process.stdout.readline()  # "waguard: serving /v1, ... on http://ADDR"
    if "http://" not in first:
        process.kill()
        sys.exit("waguard serve did not start: " + first)
    os.unlink(tokens.name)  # read at start
    return process, first.strip().rsplit(" ", 1)[-1], token


def main():
    process = None
    base, token = os.environ.get("WAGUARD_URL"), os.environ.get("WAGUARD_TOKEN")
    if not base:
        process, base, token = start_waguard(os.environ.get("WAGUARD_BIN", "waguard"))
    graph = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeGraph)
    threading.Thread(target=graph.serve_forever, daemon=True).start()
    graph_url = "http://127.0.0.1:%d" % graph.server_address[1]
    try:
        contact = {"from": BUSINESS, "to": CONTACT}
        template = dict(contact, message="template", category="utility")

        status, decision = call(base, token, "POST", "/v1/check", template)
        print("check:", status, decision)
        if status != 200 or not decision["allowed"]:
            return 1

        status, decision = call(base, token, "POST", "/v1/reserve",
                                dict(template, idempotency_key="order-42-shipped"))
        print("reserve:", status, decision)
        if status != 200 or not decision["allowed"]:
            return 1

        status, answer = call(graph_url, "graph-access-token", "POST",
                              "/v23.0/%s/messages" % BUSINESS,
                              {"messaging_product": "whatsapp", "to": "33612345678",
                               "type": "template",
                               "template": {"name": "order_shipped",
                                            "language": {"code": "en_US"}}})
        print("cloud api:", status, answer)
        if status == 200:
            return 1

        # Meta's error object goes back to waguard as Meta returned it.
        status, _ = call(base, token, "POST", "/v1/send-errors",
                         dict(contact, error=answer["error"]))
        print("send-errors:", status)
        if status != 204:
            return 1

        status, decision = call(base, token, "POST", "/v1/check", template)
        print("check again:", status, decision)
        return 0 if decision["decision"] == "blocked" else 1
    finally:
        graph.shutdown()
        if process:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

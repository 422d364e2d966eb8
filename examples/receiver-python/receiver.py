#!/usr/bin/env python3
"""A complete webhook receiver for outboxd, in Python, with the standard library only.

It reads the raw body, verifies the Standard Webhooks signature and timestamp,
skips a webhook-id it has already accepted, answers 2xx at once and does the
work afterwards, on a worker thread.

    WEBHOOK_SECRET=whsec_... PORT=8000 python3 examples/receiver-python/receiver.py

Then: outboxd subscriptions create --url http://127.0.0.1:8000/webhooks
--secret whsec_... --allow-private-targets 127.0.0.1/32 (a daemon reaches
loopback only with the same flag on outboxd run).

The official library does the verification in one call, if you can install it
(pip install standardwebhooks):

    from standardwebhooks.webhooks import Webhook
    Webhook(secret).verify(raw_body, headers)   # raises on a bad signature or timestamp

It keeps what it has seen, and its work queue, in memory: a real receiver keeps
them in a durable store, in one transaction (INSERT INTO received (webhook_id,
body) ... ON CONFLICT (webhook_id) DO NOTHING, then answer 2xx; a worker
processes the rows), so that neither a restart nor a redelivery does the work
twice or loses it.
"""

import base64
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 5 * 60  # refuse older (or newer) timestamps: stops replays
MAX_BODY = 1 << 20  # outboxd's payloads are at most 256 KiB by default, plus the envelope


_print_lock = threading.Lock()


def say(line: str):
    """Prints one line whole, though the worker and the handlers print at once."""
    with _print_lock:
        print(line, flush=True)


class VerificationError(Exception):
    pass


def verify(key: bytes, headers, body: bytes) -> str:
    """Checks a request as Standard Webhooks defines it; returns its webhook-id."""
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise VerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise VerificationError("webhook-timestamp is not a number")
    if abs(time.time() - sent_at) > TOLERANCE_SECONDS:
        raise VerificationError("webhook-timestamp is more than 5 minutes away from now")
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
    # Several signatures come during a secret rotation: any one may match.
    for candidate in signatures.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return msg_id
    raise VerificationError("no signature matches")


def main():
    secret = os.environ.get("WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        sys.exit("set WEBHOOK_SECRET to the subscription's whsec_... secret")
    key = base64.b64decode(secret[len("whsec_"):])
    seen = set()  # webhook-ids accepted; a real receiver keeps them durably
    seen_lock = threading.Lock()
    work = queue.Queue()

    def process():
        while True:
            event = work.get()
            # Your work here: update a database, call another service, ...
            say(f"processed {event['id']} {event['type']}")

    threading.Thread(target=process, daemon=True).start()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                return self.answer(413, "body too large")
            # The raw bytes: the signature covers them exactly, so never re-encode
            # JSON before verifying.
            body = self.rfile.read(length)
            try:
                msg_id = verify(key, self.headers, body)
                event = json.loads(body)
            except VerificationError as err:
                say(f"rejected: {err}")
                missing = str(err).startswith("missing")
                return self.answer(400 if missing else 401, "bad signature")
            except ValueError as err:
                say(f"rejected: body is not an outboxd event: {err}")
                return self.answer(400, "not an event")

            # webhook-id is the event's id, the same on every retry: at-least-once
            # delivery means a repeat can come, and it must not do the work again.
            with seen_lock:
                duplicate = msg_id in seen
                seen.add(msg_id)
            if duplicate:
                say(f"duplicate {msg_id}")
                return self.answer(200, "")  # acknowledged, so outboxd stops sending it

            # Answer now; slow work would hold outboxd's request until it times out
            # and is retried.
            say(f"accepted {msg_id} {event.get('type')}")
            work.put(event)
            self.answer(204, "")

        def answer(self, status, text):
            data = text.encode()
            self.send_response(status)
            if data:
                self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass  # one line per outcome is printed above

    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))), Handler)
    host, port = server.server_address[:2]
    say(f"listening on http://{host}:{port}")
    server.serve_forever()


if __name__ == "__main__":
    main()

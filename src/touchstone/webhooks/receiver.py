"""A webhook receiver for trying webhooks on one machine: it checks each request's signature
and prints the events that pass.

    python -m touchstone.webhooks.receiver --port 9001 --secret whsec_...

It answers 200 to a correctly signed event and 400 (with the reason) to anything else, so
the delivery log shows both outcomes. `--count N` exits (status 0) after N good events and
`--timeout S` stops waiting after S seconds (status 1 if the N have not come), for scripts. It is
a development tool and an example of the check a real receiver makes: the standard library
only, no framework, one request at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, TextIO

from touchstone.webhooks.signing import SignatureError, verify_signature

MAX_BODY_BYTES = 1 << 20
SECRET_ENV = "TOUCHSTONE_WEBHOOK_SECRET"  # noqa: S105 (a variable's name, not a secret)


class WebhookReceiver(HTTPServer):
    """Counts the good events; `done` is set once `count` of them have arrived."""

    def __init__(
        self, address: tuple[str, int], secret: str, out: TextIO, count: int | None = None
    ) -> None:
        super().__init__(address, _Handler)
        self.secret = secret
        self.out = out
        self.count = count
        self.received = 0
        self.done = threading.Event()

    def accept(self, event: dict[str, Any], headers: dict[str, str]) -> None:
        self.received += 1
        line = {
            "verified": True,
            "topic": headers.get("touchstone-event-type"),
            "event_id": headers.get("touchstone-event-id"),
            "delivery_id": headers.get("touchstone-delivery-id"),
            "event": event,
        }
        self.out.write(json.dumps(line) + "\n")
        self.out.flush()
        if self.count is not None and self.received >= self.count:
            self.done.set()


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver
    server_version = "TouchstoneWebhookReceiver/1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(413, "body too large")
            return
        body = self.rfile.read(length)
        try:
            verify_signature(self.server.secret, self.headers.get("Touchstone-Signature", ""), body)
            event = json.loads(body)
        except SignatureError as exc:
            self._reply(400, f"bad signature: {exc}")
            return
        except ValueError:
            self._reply(400, "the body is not JSON")
            return
        self._reply(200, "ok")
        self.server.accept(event, {k.lower(): v for k, v in self.headers.items()})

    def _reply(self, status: int, text: str) -> None:
        content = json.dumps({"status": status, "detail": text}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
        if status != 200:
            sys.stderr.write(f"refused a request to {self.path}: {text}\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: stdout carries the events, one JSON line each; refusals go to stderr."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m touchstone.webhooks.receiver",
        description="Receive Touchstone webhooks locally; print each correctly signed event.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument(
        "--secret",
        default=os.environ.get(SECRET_ENV),
        help=f"the webhook's signing secret (whsec_...); default: ${SECRET_ENV}",
    )
    parser.add_argument("--count", type=int, help="exit after this many good events")
    parser.add_argument("--timeout", type=float, help="stop after this many seconds")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error(f"give the signing secret with --secret or ${SECRET_ENV}")
    server = WebhookReceiver((args.host, args.port), args.secret, sys.stdout, args.count)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sys.stderr.write(f"listening on http://{args.host}:{server.server_port}/\n")
    try:
        server.done.wait(args.timeout)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    if args.count is not None and not server.done.is_set():
        sys.stderr.write(f"expected {args.count} good event(s), got {server.received}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real HTTP receiver on 127.0.0.1 for webhook tests: it verifies each delivery with the
independent `standardwebhooks` package and keeps one copy per webhook-id, as a court's system would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook


@dataclass
class Receiver:
    url: str
    secret: str | None = None
    # Status codes to answer with, in turn; when empty, 200. (status, extra headers)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[dict] = field(default_factory=list)  # every request, verified or not
    kept: dict[str, dict] = field(default_factory=dict)  # webhook-id -> payload, first copy only
    lock: threading.Lock = field(default_factory=threading.Lock)
    delivered: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Condition = field(init=False)  # notified after each request is recorded

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def answer(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.script.pop(0) if self.script else (200, {})

    def wait_for(self, webhook_id: str, timeout: float = 30.0) -> bool:
        """Block until a request with this webhook-id has been recorded (answered or not)."""
        with self.arrived:
            return self.arrived.wait_for(
                lambda: any(r["headers"].get("webhook-id") == webhook_id for r in self.requests), timeout
            )


@contextmanager
def webhook_receiver(port: int = 0, receiver: Receiver | None = None) -> Iterator[Receiver]:
    receiver = receiver or Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra = receiver.answer()
            verified = False
            if receiver.secret:
                Webhook(receiver.secret).verify(body, headers)  # raises on a bad signature
                verified = True
            with receiver.lock:
                receiver.requests.append({"headers": headers, "body": body, "status": status, "verified": verified})
                if 200 <= status < 300:
                    receiver.kept.setdefault(headers["webhook-id"], json.loads(body))
                    receiver.delivered.set()
                receiver.arrived.notify_all()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/reports"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Gateway:
    """A stand-in SMS gateway: takes signed JSON notices, answers 503 while `down`, else 200 with a message id."""

    url: str = ""
    down: bool = False
    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def sms_gateway() -> Iterator[Gateway]:
    gateway = Gateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with gateway.lock:
                status = 503 if gateway.down else 200
                gateway.requests.append({"body": json.loads(body), "status": status})
                answer = json.dumps({"id": f"SM{len(gateway.requests):06d}"}).encode() if status == 200 else b""
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}/messages"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        server.shutdown()
        server.server_close()

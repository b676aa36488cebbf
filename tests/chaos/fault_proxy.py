"""A loopback HTTP proxy in front of moto that makes S3 misbehave on purpose: 500, 503 SlowDown, slow answers, and
writes held back until the test releases them (a run stalled mid-upload while the next run goes by).

Only S3 data requests are touched (path-style `/<bucket>/<key>`, PUT/POST: parts, puts, multipart create/complete);
Secrets Manager, KMS and SQS calls (POST `/` with an X-Amz-Target or Action) pass through untouched, so a fault is
exactly "S3 is having a bad minute". Faults hit every `every`-th matching request, deterministically: no random
flakes, and a test can say how many were injected. The proxy binds port 0 (the kernel picks a free port: no race).
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

FaultKind = Literal["error_500", "slow_down_503", "throttle_503", "slow", "hold"]

_ERRORS: dict[str, tuple[int, str, str]] = {
    "error_500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "slow_down_503": (503, "SlowDown", "Please reduce your request rate."),
    "throttle_503": (503, "ServiceUnavailable", "Service is unable to handle request."),
}


@dataclass
class FaultPlan:
    kind: FaultKind
    every: int = 2  # every n-th matching request is faulted
    delay_s: float = 1.0  # "slow": how long each faulted answer is held back; "hold": the most a write waits
    only_multipart_parts: bool = False  # fault only UploadPart requests (`?partNumber=`)
    seen: int = 0
    injected: int = 0
    part_requests: int = 0  # UploadPart requests that reached the proxy (faulted or not)
    released: threading.Event = field(default_factory=threading.Event)  # "hold": set, held writes go on; none after
    hold_expired: int = 0  # "hold": writes that went on because `delay_s` passed, not because the test released them
    lock: threading.Lock = field(default_factory=threading.Lock)

    def matches(self, method: str, path: str) -> bool:
        if method not in ("PUT", "POST") or path in ("", "/") or path.startswith("/?"):
            return False  # a non-S3 API call (Secrets Manager, KMS, SQS all POST to /)
        return "partNumber=" in path if self.only_multipart_parts else True

    def decide(self, method: str, path: str) -> bool:
        with self.lock:
            if "partNumber=" in path:
                self.part_requests += 1
            if not self.matches(method, path) or (self.kind == "hold" and self.released.is_set()):
                return False
            self.seen += 1
            hit = self.seen % self.every == 0
            self.injected += hit
            return hit


class S3FaultProxy:
    def __init__(self, upstream_port: int, plan: FaultPlan | None = None) -> None:
        self.upstream_port = upstream_port
        self.plan = plan
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet: the test asserts on counters
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                plan = proxy.plan
                if plan is not None and plan.decide(self.command, self.path):
                    if plan.kind == "slow":
                        time.sleep(plan.delay_s)
                    elif plan.kind == "hold":
                        # bounded below botocore's 60 s read timeout: a held write is never retried behind our back
                        if not plan.released.wait(plan.delay_s):
                            with plan.lock:
                                plan.hold_expired += 1
                    else:
                        self._fault(*_ERRORS[plan.kind])
                        return
                self._forward(body)

            def _fault(self, status: int, code: str, message: str) -> None:
                payload = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                           f"<Message>{message}</Message><RequestId>chaos</RequestId></Error>").encode()  # fmt: skip
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _forward(self, body: bytes) -> None:
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    head = self.command == "HEAD"  # a HEAD answer keeps the object's own Content-Length
                    for key, value in resp.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection") and (
                            head or key.lower() != "content-length"
                        ):
                            self.send_header(key, value)
                    if not head:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if not head:
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815 - http.server's names

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)

    def __enter__(self) -> S3FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

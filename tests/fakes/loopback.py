"""A threaded HTTP server on 127.0.0.1 for the provider fakes: each fake implements ``handle``."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a: Any) -> None:
        pass

    def _serve(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        url = urlparse(self.path)
        req = Request(self.command, url.path, {k: v[-1] for k, v in parse_qs(url.query).items()},
                      {k.lower(): v for k, v in self.headers.items()}, body)
        resp = self.server.fake.dispatch(req)  # type: ignore[attr-defined]
        data = resp.encode()
        self.send_response(resp.status)
        ctype = "application/json" if not isinstance(resp.body, (bytes, str)) else "text/plain"
        self.send_header("Content-Type", resp.headers.get("Content-Type", ctype))
        for k, v in resp.headers.items():
            if k != "Content-Type":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


class LoopbackFake:
    """Base for fakes: start/stop a server, record requests, inject failures into the next calls."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._failures: list[tuple[Any, Response]] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> "LoopbackFake":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, *responses: Response, when: Any = None) -> None:
        """The next requests (those matching ``when(request)``, if given) get these answers instead of being
        served: a 429, a 500, a gateway page..."""
        with self._lock:
            self._failures.extend((when, r) for r in responses)

    def dispatch(self, req: Request) -> Response:
        with self._lock:
            self.requests.append(req)
            for i, (when, resp) in enumerate(self._failures):
                if when is None or when(req):
                    del self._failures[i]
                    return resp
        return self.handle(req)

    def handle(self, req: Request) -> Response:  # pragma: no cover - each fake overrides it
        raise NotImplementedError

    def __enter__(self) -> "LoopbackFake":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

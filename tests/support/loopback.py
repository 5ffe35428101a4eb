"""A loopback HTTP server for fakes of real services: routes by method and path pattern, records every request,
and can be told to fail the next calls to a route with a given status (401, 429, 5xx...)."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    match: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes | str | dict | list | None = None
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] | None = None  # streamed (NDJSON, server-sent events) when set


Handler = Callable[[Request], Response]


class LoopbackServer:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self.failures: list[tuple[str, str, int, Any]] = []  # (method, path regex, status, body)
        server = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                server._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def fail_next(self, method: str, path_regex: str, status: int, body: Any = None, times: int = 1) -> None:
        for _ in range(times):
            self.failures.append((method, path_regex, status, body))

    def calls(self, method: str | None = None, path_regex: str | None = None) -> list[Request]:
        return [r for r in self.requests if (method is None or r.method == method)
                and (path_regex is None or re.search(path_regex, r.path))]

    def start(self) -> "LoopbackServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "LoopbackServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- dispatch ------------------------------------------------------------------------------------------
    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        path, _, query = h.path.partition("?")
        body = self._read_body(h)
        req = Request(h.command, path, query, {k.lower(): v for k, v in h.headers.items()}, body)
        self.requests.append(req)
        for i, (method, regex, status, fbody) in enumerate(self.failures):
            if method == h.command and re.search(regex, path):
                del self.failures[i]
                return self._send(h, Response(status, fbody if fbody is not None else {"error": f"injected {status}"}))
        for method, pattern, handler in self.routes:
            m = pattern.match(path)
            if m and method == h.command:
                req.match = m.groupdict()
                try:
                    resp = handler(req)
                except Exception as exc:  # noqa: BLE001 - a fake's bug becomes a 500 the test will see
                    resp = Response(500, {"error": f"fake failed: {type(exc).__name__}: {exc}"})
                return self._send(h, resp)
        self._send(h, Response(404, {"error": f"no route for {h.command} {path}"}))

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(h.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    h.rfile.readline()
                    return out
                out += h.rfile.read(size)
                h.rfile.readline()
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n else b""

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, resp: Response) -> None:
        if resp.chunks is not None:
            h.send_response(resp.status)
            for k, v in {"Content-Type": "application/x-ndjson", **resp.headers}.items():
                h.send_header(k, v)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for chunk in resp.chunks:
                h.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                h.wfile.flush()
            h.wfile.write(b"0\r\n\r\n")
            return
        body = resp.body
        ctype = resp.headers.get("Content-Type")
        if isinstance(body, (dict, list)):
            body, ctype = json.dumps(body).encode(), ctype or "application/json"
        elif isinstance(body, str):
            body, ctype = body.encode(), ctype or "text/plain; charset=utf-8"
        body = body or b""
        h.send_response(resp.status)
        for k, v in {**resp.headers, "Content-Type": ctype or "application/octet-stream"}.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)


def sse(chunks: Iterable[dict]) -> Iterable[bytes]:
    """Server-sent events the way OpenAI-compatible servers stream chat completions."""
    for c in chunks:
        yield f"data: {json.dumps(c)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def chat_chunks(model: str, text: str, *, words: bool = True) -> list[dict]:
    """``chat.completion.chunk`` objects carrying ``text`` piece by piece, then the stop chunk."""
    pieces = re.findall(r"\S+\s*", text) if words else [text]
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return out

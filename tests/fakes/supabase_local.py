"""A Supabase project on loopback for tests: one HTTP server that routes like Supabase's API gateway (Kong) does,
``/auth/v1/*`` to the GoTrue fake (tests/fakes/gotrue.py) and ``/rest/v1/*`` to the PostgREST shim
(tests/fakes/postgrest_shim.py), both backed by the same real PostgreSQL database. Like the gateway, it refuses a
request whose ``apikey`` header is missing or not one of the project's keys.

The anon and service_role keys are HS256 JWTs signed with the project's JWT secret, shaped like the legacy keys
every Supabase project still issues ({"iss": "supabase", "ref": ..., "role": ...}).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt

from tests.fakes.gotrue import GoTrueFake
from tests.fakes.postgrest_shim import PostgrestShim


def project_key(secret: str, role: str) -> str:
    now = int(time.time())
    return jwt.encode({"iss": "supabase", "ref": "localtest", "role": role, "iat": now, "exp": now + 10 * 365 * 86400},
                      secret, algorithm="HS256")


@dataclass
class LocalSupabase:
    url: str
    anon_key: str
    service_key: str
    jwt_secret: str
    gotrue: GoTrueFake
    rest: PostgrestShim
    server: ThreadingHTTPServer
    thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_local_supabase(admin_dsn: str, authenticator_dsn: str) -> LocalSupabase:
    secret = secrets.token_urlsafe(32)
    anon, service = project_key(secret, "anon"), project_key(secret, "service_role")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    url = f"http://127.0.0.1:{server.server_address[1]}"
    gotrue = GoTrueFake(admin_dsn, secret, issuer=f"{url}/auth/v1")
    rest = PostgrestShim(authenticator_dsn, secret)
    server.routes = {"/auth/v1": gotrue, "/rest/v1": rest}  # type: ignore[attr-defined]
    server.api_keys = {anon, service}  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="local-supabase", daemon=True)
    thread.start()
    return LocalSupabase(url, anon, service, secret, gotrue, rest, server, thread)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        if headers.get("apikey") not in self.server.api_keys:  # type: ignore[attr-defined]
            status, out_headers, out = 401, {"Content-Type": "application/json"}, json.dumps(
                {"message": "Invalid API key" if "apikey" in headers else "No API key found in request"}).encode()
        else:
            for prefix, service in self.server.routes.items():  # type: ignore[attr-defined]
                if parts.path.startswith(prefix + "/"):
                    status, out_headers, out = service.handle(
                        self.command, parts.path[len(prefix):], parse_qs(parts.query, keep_blank_values=True),
                        headers, body)
                    break
            else:
                status, out_headers, out = 404, {"Content-Type": "application/json"}, b'{"message":"no Route matched"}'
        self.send_response(status)
        for k, v in out_headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

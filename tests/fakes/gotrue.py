"""A loopback stand-in for Supabase Auth (GoTrue, github.com/supabase/auth): the endpoints the console's sign-in
uses, with the request and response shapes the `supabase_auth` 2.34 client sends and parses.

Read from site-packages/supabase_auth:
- ``_sync/gotrue_client.py``: ``sign_up`` POSTs ``/signup`` {email, password, data, gotrue_meta_security};
  ``sign_in_with_password`` POSTs ``/token?grant_type=password`` {email, password, ...};
  ``_refresh_access_token`` POSTs ``/token?grant_type=refresh_token`` {refresh_token}; ``get_user`` GETs ``/user``
  with ``Authorization: Bearer <access token>``.
- ``_sync/gotrue_admin_api.py`` ``sign_out``: POST ``/logout?scope=global|local|others`` with the bearer token
  (204, no body).
- ``helpers.py`` ``parse_auth_response``: a Session object (access_token, refresh_token, expires_in, expires_at,
  token_type, user) or, when sign-up needs an email confirmation, a bare User; ``handle_exception``: errors are
  JSON with ``code`` (a string error code when the response carries ``X-Supabase-Api-Version: 2024-01-01``) and
  ``message``/``msg``, mapped to ``AuthApiError``.
- ``types.py`` ``User``/``Session``: the fields a user and a session must carry.

Users live in the real test database's ``auth.users`` (so foreign keys and the profile trigger behave as on
Supabase); access tokens are HS256 JWTs with GoTrue's claims (sub, email, role, aud, exp, iat, session_id, aal,
amr), signed with the project's JWT secret, which the PostgREST shim verifies. Passwords are kept as salted
scrypt hashes (GoTrue uses bcrypt; the format is private to the fake).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import jwt
import psycopg

API_VERSION = "2024-01-01"


def _hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**12, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, _digest = stored.split("$")
    return secrets.compare_digest(_hash_password(password, bytes.fromhex(salt)), stored)


def _iso(ts: datetime | None) -> str | None:
    return ts.astimezone(timezone.utc).isoformat() if ts else None


class GoTrueFake:
    def __init__(self, dsn: str, jwt_secret: str, issuer: str, *, autoconfirm: bool = True,
                 expires_in: int = 3600) -> None:
        self.dsn = dsn
        self.secret = jwt_secret
        self.issuer = issuer
        self.autoconfirm = autoconfirm
        self.expires_in = expires_in
        self._refresh: dict[str, tuple[str, str]] = {}  # refresh token -> (user id, session id)
        self._revoked_sessions: set[str] = set()
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []

    # -- dispatch ------------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        self.calls.append((method, path))
        payload = json.loads(body or b"{}") if method in ("POST", "PUT") else {}
        route = (method, path)
        if route == ("POST", "/signup"):
            return self._signup(payload)
        if route == ("POST", "/token"):
            grant = (query.get("grant_type") or [""])[0]
            if grant == "password":
                return self._password_grant(payload)
            if grant == "refresh_token":
                return self._refresh_grant(payload)
            return self._error(400, "unsupported_grant_type", f"Unsupported grant type {grant!r}")
        if route == ("GET", "/user"):
            claims = self._bearer(headers)
            if claims is None:
                return self._error(403, "bad_jwt", "invalid JWT: unable to parse or verify signature")
            user = self._user_by_id(claims["sub"])
            return self._json(200, self._user_json(user)) if user else self._error(404, "user_not_found",
                                                                                   "User not found")
        if route == ("POST", "/logout"):
            claims = self._bearer(headers)
            if claims is None:
                return self._error(403, "bad_jwt", "invalid JWT: unable to parse or verify signature")
            with self._lock:
                scope = (query.get("scope") or ["global"])[0]
                for token, (uid, sid) in list(self._refresh.items()):
                    mine = sid == claims.get("session_id")
                    if uid == claims["sub"] and (scope == "global" or (scope == "local") == mine):
                        del self._refresh[token]
                        self._revoked_sessions.add(sid)
            return 204, {}, b""
        return self._error(404, "not_found", f"No route {method} {path}")

    # -- endpoints -----------------------------------------------------------------------------------------
    def _signup(self, p: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        email, password = (p.get("email") or "").strip().lower(), p.get("password") or ""
        if "@" not in email:
            return self._error(400, "validation_failed", "Unable to validate email address: invalid format")
        if len(password) < 6:
            body = {"code": "weak_password", "message": "Password should be at least 6 characters.",
                    "weak_password": {"reasons": ["length"]}}
            return self._json(422, body)
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(
                    "insert into auth.users (id, email, encrypted_password, email_confirmed_at, raw_app_meta_data,"
                    " raw_user_meta_data) values (%s, %s, %s, %s, %s, %s)",
                    (str(uuid.uuid4()), email, _hash_password(password),
                     datetime.now(timezone.utc) if self.autoconfirm else None,
                     json.dumps({"provider": "email", "providers": ["email"]}), json.dumps(p.get("data") or {})),
                )
        except psycopg.errors.UniqueViolation:
            return self._error(422, "user_already_exists", "User already registered")
        user = self._user_by_email(email)
        if not self.autoconfirm:
            return self._json(200, self._user_json(user))
        return self._json(200, self._session(user))

    def _password_grant(self, p: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        user = self._user_by_email((p.get("email") or "").strip().lower())
        if not user or not _check_password(p.get("password") or "", user["encrypted_password"]):
            return self._error(400, "invalid_credentials", "Invalid login credentials")
        if user["email_confirmed_at"] is None:
            return self._error(400, "email_not_confirmed", "Email not confirmed")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("update auth.users set last_sign_in_at = now() where id = %s", (user["id"],))
        return self._json(200, self._session(self._user_by_id(user["id"])))

    def _refresh_grant(self, p: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            found = self._refresh.pop(p.get("refresh_token") or "", None)
        if not found:
            return self._error(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found")
        user = self._user_by_id(found[0])
        return self._json(200, self._session(user, session_id=found[1]))

    # -- helpers -------------------------------------------------------------------------------------------
    def _session(self, user: dict[str, Any], session_id: str | None = None) -> dict[str, Any]:
        now = int(time.time())
        sid = session_id or str(uuid.uuid4())
        claims = {
            "iss": self.issuer, "sub": str(user["id"]), "aud": "authenticated", "exp": now + self.expires_in,
            "iat": now, "email": user["email"], "phone": "", "role": "authenticated", "aal": "aal1",
            "amr": [{"method": "password", "timestamp": now}], "session_id": sid, "is_anonymous": False,
            "app_metadata": user["raw_app_meta_data"] or {}, "user_metadata": user["raw_user_meta_data"] or {},
        }
        refresh = secrets.token_urlsafe(24)
        with self._lock:
            self._refresh[refresh] = (str(user["id"]), sid)
        return {"access_token": jwt.encode(claims, self.secret, algorithm="HS256"), "token_type": "bearer",
                "expires_in": self.expires_in, "expires_at": now + self.expires_in, "refresh_token": refresh,
                "user": self._user_json(user)}

    def _user_json(self, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(user["id"]), "aud": "authenticated", "role": "authenticated", "email": user["email"],
            "phone": "", "email_confirmed_at": _iso(user["email_confirmed_at"]),
            "confirmed_at": _iso(user["email_confirmed_at"]), "last_sign_in_at": _iso(user["last_sign_in_at"]),
            "app_metadata": user["raw_app_meta_data"] or {}, "user_metadata": user["raw_user_meta_data"] or {},
            "identities": [], "created_at": _iso(user["created_at"]), "updated_at": _iso(user["updated_at"]),
            "is_anonymous": False,
        }

    def _bearer(self, headers: dict[str, str]) -> dict[str, Any] | None:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            return None
        try:
            claims = jwt.decode(auth[7:], self.secret, algorithms=["HS256"], audience="authenticated")
        except jwt.PyJWTError:
            return None
        if claims.get("session_id") in self._revoked_sessions:
            return None
        return claims

    def _user_by_email(self, email: str) -> dict[str, Any] | None:
        return self._fetch_user("email = %s", email)

    def _user_by_id(self, uid: str) -> dict[str, Any] | None:
        return self._fetch_user("id = %s", uid)

    def _fetch_user(self, where: str, value: str) -> dict[str, Any] | None:
        with psycopg.connect(self.dsn) as conn:
            cur = conn.execute(f"select * from auth.users where {where}", (value,))
            row = cur.fetchone()
            return dict(zip([d.name for d in cur.description], row)) if row else None

    @staticmethod
    def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/json", "X-Supabase-Api-Version": API_VERSION}, \
            json.dumps(body).encode()

    def _error(self, status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
        return self._json(status, {"code": code, "message": message})

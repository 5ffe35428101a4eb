"""Team mode's sign-in: Supabase Auth (email and password) through the `supabase` client.

The dashboard keeps an ``AuthSession`` per browser session (in Streamlit's session state, on the server) and
derives from it the ``Identity`` the team store acts as. Clients are made with auto-refresh and persistence off:
the session lives in the page's state, not in the client, and no refresh timer thread outlives a request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.errors import SignInError
from core.store.postgres import Identity

REFRESH_MARGIN_S = 60

# Supabase Auth error codes worth a sentence of their own; anything else is shown with the server's message.
MESSAGES = {
    "invalid_credentials": "Wrong email or password.",
    "email_not_confirmed": "Confirm your email address first (see the message Supabase sent you), then sign in.",
    "user_already_exists": "An account with this email already exists; sign in instead.",
    "weak_password": "Choose a longer password (at least 6 characters).",
    "refresh_token_not_found": "Your session has expired; sign in again.",
}


@dataclass(frozen=True)
class AuthSession:
    access_token: str
    refresh_token: str
    expires_at: int
    user_id: str
    email: str

    def identity(self) -> Identity:
        return Identity(user_id=self.user_id, email=self.email)

    def expiring(self, now: float | None = None) -> bool:
        return self.expires_at - (now or time.time()) < REFRESH_MARGIN_S


class SupabaseAuth:
    def __init__(self, url: str, anon_key: str) -> None:
        if not url or not anon_key:
            raise SignInError("Team mode needs the Supabase project URL and anon key.",
                              hint="Set [supabase] url and anon_key in .streamlit/secrets.toml.")
        self.url, self.anon_key = url, anon_key

    def _client(self) -> Any:
        from supabase import ClientOptions, create_client

        return create_client(self.url, self.anon_key,
                             options=ClientOptions(auto_refresh_token=False, persist_session=False))

    def sign_in(self, email: str, password: str) -> AuthSession:
        if not email or not password:
            raise SignInError("Enter your email address and password.")
        resp = self._call(lambda c: c.auth.sign_in_with_password({"email": email.strip(), "password": password}))
        return _session(resp.session)

    def sign_up(self, email: str, password: str) -> AuthSession | None:
        """A new account; None when the project confirms email addresses first (the user signs in afterwards)."""
        if not email or not password:
            raise SignInError("Enter an email address and a password.")
        resp = self._call(lambda c: c.auth.sign_up({"email": email.strip(), "password": password}))
        return _session(resp.session) if resp.session else None

    def refresh(self, session: AuthSession) -> AuthSession:
        resp = self._call(lambda c: c.auth.refresh_session(session.refresh_token))
        return _session(resp.session)

    def fresh(self, session: AuthSession) -> AuthSession:
        return self.refresh(session) if session.expiring() else session

    def sign_out(self, session: AuthSession) -> None:
        """Revoke this session's refresh token on the server (the access token simply expires)."""
        def out(c: Any) -> None:
            c.auth.set_session(session.access_token, session.refresh_token)
            c.auth.sign_out({"scope": "local"})

        try:
            self._call(out)
        except SignInError:
            pass  # already signed out or expired: nothing left to revoke

    def _call(self, fn: Any) -> Any:
        """Run ``fn(client)`` on a fresh client; Supabase Auth errors become a SignInError a page can show."""
        from supabase import SupabaseException
        from supabase_auth.errors import AuthError, AuthRetryableError

        try:
            client = self._client()
        except SupabaseException as exc:
            raise SignInError(f"The Supabase settings are not usable: {exc.message}") from None
        try:
            return fn(client)
        except AuthRetryableError as exc:
            raise SignInError(f"Supabase Auth cannot be reached right now ({exc.message}); try again.") from None
        except AuthError as exc:
            raise SignInError(MESSAGES.get(str(exc.code), exc.message)) from None
        finally:
            client.auth.close()


def _session(s: Any) -> AuthSession:
    if s is None:
        raise SignInError("Supabase Auth returned no session.")
    return AuthSession(access_token=s.access_token, refresh_token=s.refresh_token,
                       expires_at=int(s.expires_at or time.time() + s.expires_in), user_id=str(s.user.id),
                       email=s.user.email or "")

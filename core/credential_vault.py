"""Provider credentials in team mode: stored per user, encrypted, decrypted only to make a provider call.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key derived with HKDF
from ``[supabase] credentials_key`` in the dashboard's secrets, so the database (and anyone reading it) holds
ciphertext only. Pages get ``masked()``: provider names and a hint like ``rpa…f3k9``, never a value.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from core.credentials import mask
from core.errors import ConsoleError

_INFO = b"finetune-console provider credentials v1"


class CredentialKeyError(ConsoleError):
    """The credentials key is missing, or is not the one the stored values were encrypted with."""


def _fernet(key: str) -> Any:
    from cryptography.fernet import Fernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if not key or len(key) < 32:
        raise CredentialKeyError("Provider credentials need an encryption key of 32 or more characters.",
                                 hint="Set [supabase] credentials_key in .streamlit/secrets.toml.")
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(raw))


def encrypt(key: str, values: dict[str, str]) -> str:
    return _fernet(key).encrypt(json.dumps(values, sort_keys=True).encode("utf-8")).decode("ascii")


def decrypt(key: str, token: str) -> dict[str, str]:
    from cryptography.fernet import InvalidToken

    try:
        return json.loads(_fernet(key).decrypt(token.encode("ascii")))
    except InvalidToken:
        raise CredentialKeyError("Stored provider credentials cannot be decrypted with this credentials_key.",
                                 hint="Restore the key they were saved with, or save the credentials again.") from None


class CredentialVault:
    """``store`` acts as a signed-in user (their rows only) or as the worker (any user's, for provider calls)."""

    def __init__(self, store: Any, key: str) -> None:
        self.store, self.key = store, key

    def save(self, provider: str, values: dict[str, str]) -> None:
        values = {k: v.strip() for k, v in values.items() if v and v.strip()}
        if not values:
            raise ConsoleError(f"Enter the {provider} credentials to save.")
        hint = " ".join(mask(v) for v in values.values() if len(v) >= 12) or mask(next(iter(values.values())))
        self.store.query(
            "insert into public.provider_credentials (user_id, provider, api_key_encrypted, key_hint)"
            " values (%s, %s, %s, %s) on conflict (user_id, provider) do update set"
            " api_key_encrypted = excluded.api_key_encrypted, key_hint = excluded.key_hint, updated_at = now()",
            (self._me(), provider, encrypt(self.key, values), hint), write=True)

    def delete(self, provider: str) -> None:
        self.store.query("delete from public.provider_credentials where user_id = %s and provider = %s",
                         (self._me(), provider), write=True)

    def masked(self) -> list[dict[str, Any]]:
        return self.store.query("select provider, key_hint, updated_at from public.provider_credentials"
                                " where user_id = %s order by provider", (self._me(),))

    def credentials_for(self, provider: str, user_id: str | None = None) -> dict[str, str]:
        """Decrypted values, for the provider call about to be made; {} when none are stored."""
        rows = self.store.query("select api_key_encrypted from public.provider_credentials"
                                " where user_id = %s and provider = %s", (user_id or self._me(), provider))
        return decrypt(self.key, rows[0]["api_key_encrypted"]) if rows else {}

    def _me(self) -> str:
        if self.store.identity is None:
            raise ConsoleError("Sign in to manage your provider credentials.")
        return self.store.identity.user_id

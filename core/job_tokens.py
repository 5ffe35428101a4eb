"""Per-job ingest tokens (design.md §4): what a training machine holds instead of any database key.

The token is random, handed to the machine once inside its job spec, and stored only as its SHA-256. With it
the machine may call the ``ingest_*`` functions of supabase/migrations/20261129000000_team_mode.sql for its own
job, until the token is revoked or the job ends.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

PREFIX = "ftcjob_"  # recognisable by secret scanners and in a leaked log


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the database keeps; the same digest the ingest functions compute (sha256 of the UTF-8 text)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def pack_credential(job_token: str, anon_key: str) -> str:
    """What the sink spec carries to the machine: the job token and the project's public anon key."""
    return f"{job_token}:{anon_key}"


def unpack_credential(credential: str, default_anon_key: str = "") -> tuple[str, str]:
    token, sep, anon = credential.partition(":")
    return token, (anon if sep else default_anon_key)


def issue_job_token(store: Any, job_id: str) -> str:
    """A fresh token for ``job_id``, written as the store's user (row-level security: they must see the job)."""
    token = new_token()
    store.query("insert into public.job_tokens (job_id, token_hash) values (%s, %s)", (job_id, token_hash(token)),
                write=True)
    return token


def revoke_job_tokens(store: Any, job_id: str) -> int:
    rows = store.query("update public.job_tokens set revoked_at = now() where job_id = %s and revoked_at is null"
                       " returning id", (job_id,), write=True)
    return len(rows)


def token_status(store: Any, job_id: str) -> list[dict[str, Any]]:
    """Issued tokens of a job, without their hashes: when, by whom, revoked or not."""
    return store.query("select id, created_at, created_by, revoked_at from public.job_tokens where job_id = %s"
                       " order by created_at", (job_id,))

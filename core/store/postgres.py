"""Team mode's store: the same Store, on PostgreSQL / Supabase, acting as the signed-in user.

A store opened with an ``Identity`` runs every transaction the way PostgREST runs a request: ``role`` is set to
``authenticated`` and ``request.jwt.claims`` to the user's claims, both local to the transaction, so the
row-level security policies of supabase/migrations decide what the user may read and write. A store without an
identity runs as the connection's own role (the worker and migrations, with the database URL from the secrets).
``in_team`` narrows lists and name lookups to the selected team (or to the user's personal rows).

Pollers in several consoles may look at the same job; ``job_lock`` takes a session-level advisory lock per job
so that only one of them acts on it at a time (design.md §2).
"""

from __future__ import annotations

import json
import queue
import re
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from core.errors import StoreError
from core.store.sql import SQLStore


class AccessDenied(StoreError):
    """Row-level security refused the write: the row belongs to another user or team."""


@dataclass(frozen=True)
class Identity:
    """Who a team-mode store acts as; the claims mirror what Supabase Auth puts in its access token."""

    user_id: str
    email: str | None = None
    role: str = "authenticated"

    def claims(self) -> dict[str, Any]:
        return {"sub": self.user_id, "email": self.email, "role": self.role, "aud": "authenticated"}


class _Pool:
    """A small thread-safe pool of autocommit connections (Streamlit serves each session from its own thread)."""

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    def _connect(self):
        import psycopg

        try:
            return psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise StoreError(f"Cannot reach the team database: {scrub_secret(_first_line(exc), self.dsn)}",
                             hint="Check [supabase] db_url in .streamlit/secrets.toml.") from None
        except psycopg.Error:
            # libpq quotes the piece of the URL it could not parse, which may be the password: say nothing of it.
            raise StoreError("The team database URL is not a valid connection string.",
                             hint="Check [supabase] db_url in .streamlit/secrets.toml; percent-encode spaces and "
                                  "special characters in the password.") from None

    @contextmanager
    def connection(self) -> Iterator[Any]:
        if self._closed:
            raise StoreError("The team database connection was closed.")
        self._slots.acquire()
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
            if conn.closed or conn.broken:
                conn = self._connect()
            yield conn
        finally:
            if conn is not None:
                if conn.closed or conn.broken or self._closed:
                    conn.close()
                else:
                    self._idle.put(conn)
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class PostgresStore(SQLStore):
    placeholder = "%s"
    team_mode = True

    def __init__(self, dsn: str, *, identity: Identity | None = None, team_id: str | None = None,
                 pool_size: int = 8, _pool: _Pool | None = None) -> None:
        self.dsn = dsn
        self.identity = identity
        self.team_id = team_id
        self._pool = _pool or _Pool(dsn, pool_size)

    # -- views of the same pool ----------------------------------------------------------------------------
    def as_user(self, identity: Identity, team_id: str | None = None) -> "PostgresStore":
        return PostgresStore(self.dsn, identity=identity, team_id=team_id, _pool=self._pool)

    def in_team(self, team_id: str | None) -> "PostgresStore":
        return PostgresStore(self.dsn, identity=self.identity, team_id=team_id, _pool=self._pool)

    def close(self) -> None:
        self._pool.close()

    # -- engine hooks --------------------------------------------------------------------------------------
    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[Any]:
        import psycopg

        with self._pool.connection() as conn:
            try:
                with conn.transaction():
                    cur = conn.cursor()
                    if self.identity is not None:
                        act_as(cur, self.identity)
                    yield cur
            except psycopg.errors.InsufficientPrivilege as exc:
                raise AccessDenied(f"Not allowed: {_first_line(exc)}",
                                   hint="The row belongs to another user or team.") from None
            except psycopg.OperationalError as exc:
                raise StoreError(f"The team database failed: {_first_line(exc)}") from None

    def _enc_json(self, value: Any) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(value)

    def _enc_time(self, value: datetime) -> Any:
        return value

    def _enc_bool(self, value: bool) -> Any:
        return bool(value)

    def _dec(self, col: str, value: Any) -> Any:  # type: ignore[override]
        if isinstance(value, uuid.UUID):
            return str(value)
        return SQLStore._dec(col, value)

    def _scope(self) -> tuple[str, list[Any]]:
        if self.team_id:
            return "team_id = %s", [self.team_id]
        if self.identity is not None:
            return "team_id IS NULL AND user_id = %s", [self.identity.user_id]
        return "", []

    def add_dataset(self, rec: Any) -> Any:
        got = super().add_dataset(rec)
        workspace = self.team_id or (self.identity.user_id if self.identity else None)
        if got is rec and workspace and self.find_dataset_by_hash(rec.content_hash) is None:
            # Dataset ids derive from the content hash, and another workspace holds the same file under this
            # id (invisible to us): the same file in two workspaces is two rows, so this one gets its own id.
            return super().add_dataset(rec.model_copy(update={"id": f"{rec.id}_{workspace.replace('-', '')[:12]}"}))
        return got

    def _owner(self) -> dict[str, Any]:
        return {"user_id": self.identity.user_id if self.identity else None, "team_id": self.team_id}

    # -- team mode extras ------------------------------------------------------------------------------------
    def query(self, sql: str, params: tuple | list = (), *, write: bool = False) -> list[dict[str, Any]]:
        """Run SQL as this store's identity (psycopg placeholders); for the team-mode services."""
        with self._transaction(write=write) as cur:
            cur.execute(sql, tuple(params))
            return self._rows(cur) if cur.description else []

    @contextmanager
    def job_lock(self, job_id: str) -> Iterator[bool]:
        """Yields True when this process holds the job's advisory lock, False when another poller does."""
        with self._pool.connection() as conn:
            key = conn.execute("select hashtextextended(%s, 0)", (f"ftc-job:{job_id}",)).fetchone()[0]
            got = conn.execute("select pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
            try:
                yield bool(got)
            finally:
                if got:
                    conn.execute("select pg_advisory_unlock(%s)", (key,))


def act_as(cur: Any, identity: Identity) -> None:
    """Make the rest of this transaction run as ``identity``, exactly as PostgREST does for a request."""
    cur.execute("select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                (identity.role, json.dumps(identity.claims())))


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def scrub_secret(text: str, dsn: str) -> str:
    """``text`` without the password of ``dsn`` (URL or key=value form), for messages and logs."""
    from urllib.parse import unquote, urlsplit

    secrets = set()
    try:
        secrets.add(urlsplit(dsn).password or "")
    except ValueError:
        pass
    secrets |= {m.strip("'") for m in re.findall(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn)}
    for secret in sorted({s for v in secrets for s in (v, unquote(v)) if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def is_postgres_url(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


__all__ = ["AccessDenied", "Identity", "PostgresStore", "act_as", "is_postgres_url"]

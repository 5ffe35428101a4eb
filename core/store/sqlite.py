"""The embedded store: one SQLite file in WAL mode, shared by the console and local trainer processes."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Iterator

from core.errors import StoreError
from core.store.records import utcnow
from core.store.sql import SQLStore

MIGRATIONS_PACKAGE = "core.store.sqlite_migrations"


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every versioned migration, in order."""
    out = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


class SQLiteStore(SQLStore):
    placeholder = "?"

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    # Each thread gets its own connection: sqlite3 connections must not be shared across threads.
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
            except sqlite3.Error as exc:
                raise StoreError(f"Cannot open the console database {self.path}: {exc}") from None
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sqlite3.Cursor]:
        conn = self._conn()
        cur = conn.cursor()
        # BEGIN IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
        # deadlocking on a read-lock upgrade.
        cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            conn.commit()
        finally:
            cur.close()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied. Safe to call from several processes."""
        conn = self._conn()
        applied: list[str] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                " applied_at TEXT NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in migration_files():
                if version in done:
                    continue
                for statement in _split_sql(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, utcnow().isoformat()),
                )
                applied.append(name)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return applied

    def columns(self) -> dict[str, list[str]]:
        """table -> column names, for the schema parity test."""
        out: dict[str, list[str]] = {}
        with self._transaction() as cur:
            tables = [r[0] for r in cur.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )]
            for t in tables:
                out[t] = [r[1] for r in cur.execute(f"PRAGMA table_info({t})")]
        return out


def _split_sql(sql: str) -> list[str]:
    """Split a migration into statements (no triggers or strings with ';' in the SQLite migrations)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def open_default() -> SQLiteStore:
    from core.paths import db_path

    return SQLiteStore(db_path())


"""A small versioned migration runner for ``supabase/migrations/*.sql`` on any PostgreSQL.

It records applied versions in ``supabase_migrations.schema_migrations``, the table the Supabase CLI keeps, so a
database migrated here and one migrated by ``supabase db push`` agree on what is applied. Each file runs in its
own transaction under an advisory lock, so two consoles starting at once apply a migration once.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import StoreError

_LOCK_KEY = 0x46_54_43_4D  # "FTCM": one lock for every migrating process of this project

_BOOKKEEPING = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
    version text primary key, statements text[], name text
)
"""


def migration_files(directory: str | Path) -> list[tuple[str, str, str]]:
    """(version, name, sql) sorted by version; the version is the timestamp before the first underscore."""
    out = []
    for path in sorted(Path(directory).glob("*.sql")):
        version = path.name.split("_", 1)[0]
        if not version.isdigit():
            raise StoreError(f"Migration {path.name} must start with a numeric timestamp, like 20261128000000_name.sql.")
        out.append((version, path.stem, path.read_text(encoding="utf-8")))
    return out


def applied_versions(conn) -> set[str]:
    return {r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")}


def apply_migrations(dsn_or_conn, directory: str | Path) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied (empty when up to date)."""
    import psycopg

    own = isinstance(dsn_or_conn, str)
    conn = psycopg.connect(dsn_or_conn, autocommit=True) if own else dsn_or_conn
    applied: list[str] = []
    try:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_BOOKKEEPING)
            done = applied_versions(conn)
            for version, name, sql in migration_files(directory):
                if version in done:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute(
                            "insert into supabase_migrations.schema_migrations (version, statements, name)"
                            " values (%s, %s, %s)", (version, [sql], name.split("_", 1)[-1]),
                        )
                except psycopg.Error as exc:
                    raise StoreError(f"Migration {name} failed: {exc}".strip()) from None
                applied.append(name)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    finally:
        if own:
            conn.close()
    return applied

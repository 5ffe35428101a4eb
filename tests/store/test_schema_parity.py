"""One schema, two engines (design.md §3): the SQLite migrations and supabase/migrations/*.sql applied to a real
PostgreSQL server expose the same tables with the same columns; tables only team mode has are listed here."""

from __future__ import annotations

import psycopg
import pytest

from core.store.pg_migrate import apply_migrations, migration_files
from core.store.sqlite import SQLiteStore
from tests.support.postgres import MIGRATIONS_DIR, apply_shim

pytestmark = pytest.mark.postgres

# Team mode only: users, teams, invitations, per-job ingest tokens and encrypted provider credentials have no
# meaning in the single-user embedded store.
TEAM_ONLY = {"profiles", "teams", "team_members", "invitations", "job_tokens", "provider_credentials"}
# The SQLite store's own bookkeeping (Postgres keeps it in supabase_migrations.schema_migrations).
SQLITE_ONLY = {"schema_migrations"}
OPERATIONS = {"SELECT", "INSERT", "UPDATE", "DELETE"}
# Operations deliberately left without a policy (so refused): a profile goes when its auth user is deleted.
NO_POLICY = {("profiles", "DELETE")}


def pg_columns(dsn: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select c.table_name, c.column_name from information_schema.columns c"
            " join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name"
            " where c.table_schema = 'public' and t.table_type = 'BASE TABLE' order by c.table_name, c.ordinal_position"
        ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def test_both_engines_expose_the_same_tables_and_columns(pg_db, tmp_path):
    sqlite = SQLiteStore(tmp_path / "parity.db").columns()
    pg = pg_columns(pg_db)
    assert set(pg) - set(sqlite) == TEAM_ONLY
    assert set(sqlite) - set(pg) == SQLITE_ONLY
    for table in sorted(set(pg) & set(sqlite)):
        assert set(pg[table]) == set(sqlite[table]), (
            f"{table}: only in Postgres {sorted(set(pg[table]) - set(sqlite[table]))}, "
            f"only in SQLite {sorted(set(sqlite[table]) - set(pg[table]))}")


def test_migrations_apply_once_and_record_their_versions(pg_server):
    dsn = pg_server.create_database("twice")
    try:
        apply_shim(dsn)
        names = [name for _, name, _ in migration_files(MIGRATIONS_DIR)]
        assert apply_migrations(dsn, MIGRATIONS_DIR) == names
        assert apply_migrations(dsn, MIGRATIONS_DIR) == []
        with psycopg.connect(dsn) as conn:
            versions = [r[0] for r in conn.execute(
                "select version from supabase_migrations.schema_migrations order by version")]
        assert versions == [v for v, _, _ in migration_files(MIGRATIONS_DIR)]
    finally:
        pg_server.drop_database("twice")


def test_every_table_has_row_level_security_and_a_policy_per_operation(pg_db):
    with psycopg.connect(pg_db) as conn:
        tables = {r[0]: r[1] for r in conn.execute(
            "select relname, relrowsecurity from pg_class where relnamespace = 'public'::regnamespace"
            " and relkind = 'r'")}
        policies = {(r[0], r[1]) for r in conn.execute("select tablename, cmd from pg_policies where schemaname = 'public'")}
        roles = {r[0] for r in conn.execute("select distinct unnest(roles) from pg_policies where schemaname = 'public'")}
    assert tables and all(tables.values()), [t for t, on in tables.items() if not on]
    missing = {(t, op) for t in tables for op in OPERATIONS} - policies - NO_POLICY
    assert not missing
    assert roles == {"authenticated"}  # nothing is granted to anon: training machines go through ingest_*

"""A real PostgreSQL server for the team-mode tests, started from the distribution's binaries.

``pg_server`` (session) runs ``initdb`` + ``pg_ctl start`` on a free loopback port with its data and socket
directories in a fresh temp folder, builds one template database holding the Supabase-shaped shim
(tests/support/supabase_shim.sql) and every ``supabase/migrations/*.sql`` file applied through the project's
versioned runner (core/store/pg_migrate.py), and stops the server at the end of the session. ``pg_db`` hands each
test its own database cloned from that template (``CREATE DATABASE ... TEMPLATE``: a file copy, no re-run of
the migrations), so tests never see each other's rows.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the ``postgres`` system
user (created by Debian's ``postgresql`` package, which scripts/system-deps.sh installs) through ``runuser``.
Binaries: ``$FTC_PG_BIN`` or ``/usr/lib/postgresql/<version>/bin`` (15 preferred, else the newest).
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIM_SQL = Path(__file__).with_name("supabase_shim.sql")
MIGRATIONS_DIR = ROOT / "supabase" / "migrations"
TEMPLATE_DB = "ftc_template"


def find_pg_bin() -> Path | None:
    override = os.environ.get("FTC_PG_BIN")
    if override:
        return Path(override) if (Path(override) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    preferred = [p for p in found if Path(p).parts[-3] == "15"]
    chosen = preferred or found[-1:]
    return Path(chosen[0]).parent if chosen else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unprivileged_user() -> str | None:
    """The account the server runs as when we are root; None when we are not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("Running as root and there is no 'postgres' user to run PostgreSQL as; "
                       "install the postgresql package (scripts/system-deps.sh).")


@dataclass
class PgServer:
    bin_dir: Path
    base: Path
    port: int
    run_as: str | None
    superuser: str = "postgres"
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.log_path = self.base / "postgres.log"

    # -- process control ---------------------------------------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, cwd=self.base)

    def start(self) -> "PgServer":
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            for p in (self.base, self.sockets):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.superuser, "--auth=trust", "-E", "UTF8",
                  "--no-locale", "--no-sync")
        # Test-only durability settings: nothing here must survive a crash, and fsync dominates on slow disks.
        opts = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
                "-c shared_buffers=64MB")
        res = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", opts, "-w", "-t", "60",
                        "start", check=False)
        if res.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {res.stderr}\n{log[-2000:]}")
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- databases -----------------------------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        return f"postgresql://{user or self.superuser}@127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str, *params: object, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            conn.execute(sql, params or None)

    def create_database(self, name: str, template: str | None = None) -> str:
        from psycopg import sql

        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
            conn.execute(stmt)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        from psycopg import sql

        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def apply_shim(dsn: str) -> None:
    """What a Supabase project has before any migration of ours: roles, the auth schema, migration bookkeeping."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SHIM_SQL.read_text(encoding="utf-8"))


def start_server() -> PgServer:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin; run "
                           "scripts/system-deps.sh (make test does) or set FTC_PG_BIN.")
    run_as = _unprivileged_user()
    base = Path(tempfile.mkdtemp(prefix="ftc-pg-"))
    os.chmod(base, 0o755)  # the temp root is 0700 and owned by us; the server's user must enter it
    return PgServer(bin_dir=bin_dir, base=base, port=_free_port(), run_as=run_as).start()


@pytest.fixture(scope="session")
def pg_server():
    """A running PostgreSQL server with a migrated template database (see the module docstring)."""
    from core.store.pg_migrate import apply_migrations

    server = start_server()
    try:
        dsn = server.create_database(TEMPLATE_DB)
        apply_shim(dsn)
        server.first_run = apply_migrations(dsn, MIGRATIONS_DIR)
        server.second_run = apply_migrations(dsn, MIGRATIONS_DIR)
        yield server
    finally:
        server.stop()


@pytest.fixture()
def pg_db(pg_server):
    """A fresh database (shim + migrations applied) for one test; yields its superuser DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = pg_server.create_database(name, template=TEMPLATE_DB)
    try:
        yield dsn
    finally:
        pg_server.drop_database(name)


@pytest.fixture()
def local_supabase(pg_server, pg_db):
    """A loopback Supabase project (auth + REST, see tests/fakes/supabase_local.py) on this test's database."""
    from tests.fakes.supabase_local import start_local_supabase

    authenticator = pg_db.replace(f"{pg_server.superuser}@", "authenticator@", 1)
    project = start_local_supabase(pg_db, authenticator)
    try:
        yield project
    finally:
        project.stop()

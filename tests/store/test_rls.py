"""Row-level security on the real server: for every table, user A (team Red) can neither select, insert, update
nor delete the rows of team Blue (or of Blue's users), and a member of Blue sees Blue's rows.

Statements run as PostgREST runs them (role ``authenticated`` with ``request.jwt.claims`` set, core.store.postgres
.act_as), each test inside a transaction that is rolled back, on one database seeded for the module.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from core.job_tokens import new_token, token_hash
from core.store.postgres import Identity, act_as
from tests.support.postgres import TEMPLATE_DB

pytestmark = pytest.mark.postgres

ALICE, BLUE_OWNER, BLUE_MEMBER = (str(uuid.uuid4()) for _ in range(3))
RED, BLUE = str(uuid.uuid4()), str(uuid.uuid4())

# Every table of both migrations with: how to find Blue's seeded row, a harmless update, and an insert by Alice
# that would put a row into Blue's hands (or Blue's users'). {a} = Alice, {b} = Blue's owner, {blue} = Blue.
TABLES: dict[str, dict[str, str]] = {
    "training_configs": dict(key="id = 'cfg_blue'", set="name = name",
                             insert="(id, user_id, team_id, name, config) values ('cfg_x', '{a}', '{blue}', 'x', '{{}}')"),
    "datasets": dict(key="id = 'ds_blue'", set="name = name",
                     insert="(id, user_id, team_id, name, content_hash, path) values ('ds_x', '{a}', '{blue}', 'x', 'h2', '/x')"),
    "training_jobs": dict(key="id = 'job_blue'", set="reason = 'x'",
                          insert="(id, user_id, team_id, provider) values ('job_x', '{a}', '{blue}', 'local')"),
    "training_metrics": dict(key="job_id = 'job_blue'", set="loss = 0",
                             insert="(job_id, step, loss) values ('job_blue', 999, 1.0)"),
    "training_predictions": dict(key="job_id = 'job_blue'", set="bleu = 0",
                                 insert="(job_id, step, sample_id) values ('job_blue', 999, 's')"),
    "training_errors": dict(key="job_id = 'job_blue'", set="hint = 'x'",
                            insert="(job_id, error_type, error_message) values ('job_blue', 'E', 'm')"),
    "llm_models": dict(key="id = 'model_blue'", set="name = 'x'",
                       insert="(id, user_id, team_id, name) values ('model_x', '{a}', '{blue}', 'x')"),
    "profiles": dict(key="id = '{b}'", set="display_name = 'x'",
                     insert="(id, email) values ('{b}', 'spoof@example.com')"),
    "teams": dict(key="id = '{blue}'", set="name = 'x'", insert="(name, created_by) values ('x', '{b}')"),
    "team_members": dict(key="team_id = '{blue}'", set="role = 'member'",
                         insert="(team_id, user_id, role) values ('{blue}', '{a}', 'owner')"),
    "invitations": dict(key="team_id = '{blue}'", set="role = 'admin'",
                        insert="(team_id, email, invited_by) values ('{blue}', 'friend@example.com', '{a}')"),
    "job_tokens": dict(key="job_id = 'job_blue'", set="revoked_at = now()",
                       insert="(job_id, token_hash) values ('job_blue', '" + "0" * 64 + "')"),
    "provider_credentials": dict(key="user_id = '{b}'", set="key_hint = 'x'",
                                 insert="(user_id, provider, api_key_encrypted) values ('{b}', 'lambda', 'x')"),
}
# What a plain member of Blue (not an admin) sees of Blue's rows: everything but the invitations (managed by
# admins) and another user's provider credentials (their owner's alone).
MEMBER_SEES = {t: 1 for t in TABLES} | {"invitations": 0, "provider_credentials": 0, "team_members": 2,
                                        "profiles": 1}


def fill(sql: str) -> str:
    return sql.format(a=ALICE, b=BLUE_OWNER, blue=BLUE)


@pytest.fixture(scope="module")
def seeded(pg_server):
    name = f"rls_{uuid.uuid4().hex[:10]}"
    dsn = pg_server.create_database(name, template=TEMPLATE_DB)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for uid, email in ((ALICE, "alice@red.test"), (BLUE_OWNER, "owner@blue.test"),
                           (BLUE_MEMBER, "member@blue.test")):
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (uid, email))
        conn.execute("insert into public.teams (id, name, created_by) values (%s, 'Red', %s), (%s, 'Blue', %s)",
                     (RED, ALICE, BLUE, BLUE_OWNER))  # the trigger makes each creator the owner
        conn.execute("insert into public.team_members (team_id, user_id, role) values (%s, %s, 'member')",
                     (BLUE, BLUE_MEMBER))
        b, blue = BLUE_OWNER, BLUE
        conn.execute("insert into public.training_configs (id, user_id, team_id, name, config)"
                     " values ('cfg_blue', %s, %s, 'blue', '{}')", (b, blue))
        conn.execute("insert into public.datasets (id, user_id, team_id, name, content_hash, path)"
                     " values ('ds_blue', %s, %s, 'd', 'h', '/d')", (b, blue))
        conn.execute("insert into public.training_jobs (id, user_id, team_id, provider, dataset_id,"
                     " training_config_id) values ('job_blue', %s, %s, 'local', 'ds_blue', 'cfg_blue')", (b, blue))
        conn.execute("insert into public.training_metrics (job_id, step, loss) values ('job_blue', 1, 2.0)")
        conn.execute("insert into public.training_predictions (job_id, step, sample_id) values ('job_blue', 1, 'a')")
        conn.execute("insert into public.training_errors (job_id, error_type, error_message)"
                     " values ('job_blue', 'E', 'boom')")
        conn.execute("insert into public.llm_models (id, user_id, team_id, name, source_job_id)"
                     " values ('model_blue', %s, %s, 'm', 'job_blue')", (b, blue))
        conn.execute("insert into public.invitations (team_id, email, invited_by)"
                     " values (%s, 'guest@elsewhere.test', %s)", (blue, b))
        conn.execute("insert into public.job_tokens (job_id, token_hash, created_by) values ('job_blue', %s, %s)",
                     (token_hash(new_token()), b))
        conn.execute("insert into public.provider_credentials (user_id, provider, api_key_encrypted)"
                     " values (%s, 'runpod', 'ciphertext')", (b,))
    yield dsn
    pg_server.drop_database(name)


def run_as(dsn: str, who: Identity | None, sql: str) -> psycopg.Cursor:
    """Execute one statement as ``who`` (None: the anon role) in a transaction that is always rolled back."""
    conn = psycopg.connect(dsn)
    try:
        cur = conn.cursor()
        if who is None:
            cur.execute("select set_config('role', 'anon', true), set_config('request.jwt.claims', %s, true)",
                        ('{"role": "anon"}',))
        else:
            act_as(cur, who)
        cur.execute(sql)
        rows = cur.fetchall() if cur.description else None
        return rows, cur.rowcount
    finally:
        conn.rollback()
        conn.close()


def alice() -> Identity:
    return Identity(ALICE, "alice@red.test")


def superuser_count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"select count(*) from public.{table} where {fill(TABLES[table]['key'])}").fetchone()[0]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_user_cannot_select_another_teams_rows(seeded, table):
    assert superuser_count(seeded, table) >= 1  # the row is there...
    rows, _ = run_as(seeded, alice(), f"select * from public.{table} where {fill(TABLES[table]['key'])}")
    assert rows == []  # ...and Alice does not see it


@pytest.mark.parametrize("table", sorted(TABLES))
def test_user_cannot_insert_rows_for_another_team(seeded, table):
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        run_as(seeded, alice(), f"insert into public.{table} {fill(TABLES[table]['insert'])}")


@pytest.mark.parametrize("table", sorted(TABLES))
def test_user_cannot_update_another_teams_rows(seeded, table):
    spec = TABLES[table]
    _, count = run_as(seeded, alice(), f"update public.{table} set {spec['set']} where {fill(spec['key'])}")
    assert count == 0


@pytest.mark.parametrize("table", sorted(TABLES))
def test_user_cannot_delete_another_teams_rows(seeded, table):
    before = superuser_count(seeded, table)
    _, count = run_as(seeded, alice(), f"delete from public.{table} where {fill(TABLES[table]['key'])}")
    assert count == 0 and superuser_count(seeded, table) == before


@pytest.mark.parametrize("table", sorted(TABLES))
def test_member_sees_the_teams_rows(seeded, table):
    member = Identity(BLUE_MEMBER, "member@blue.test")
    rows, _ = run_as(seeded, member, f"select * from public.{table} where {fill(TABLES[table]['key'])}")
    assert len(rows) == MEMBER_SEES[table]


@pytest.mark.parametrize("table", sorted(TABLES))
def test_anon_key_reads_nothing(seeded, table):
    rows, _ = run_as(seeded, None, f"select * from public.{table}")
    assert rows == []


def test_team_owner_sees_invitations_and_own_credentials(seeded):
    owner = Identity(BLUE_OWNER, "owner@blue.test")
    for table in ("invitations", "provider_credentials"):
        rows, _ = run_as(seeded, owner, f"select * from public.{table} where {fill(TABLES[table]['key'])}")
        assert len(rows) == 1, table


def test_invitee_sees_the_invitation_and_the_team_name_only(seeded):
    guest_id = str(uuid.uuid4())
    with psycopg.connect(seeded, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, 'guest@elsewhere.test')", (guest_id,))
    try:
        guest = Identity(guest_id, "guest@elsewhere.test")
        rows, _ = run_as(seeded, guest, "select name from public.teams")
        assert rows == [("Blue",)]
        rows, _ = run_as(seeded, guest, "select * from public.training_jobs")
        assert rows == []
    finally:
        with psycopg.connect(seeded, autocommit=True) as conn:
            conn.execute("delete from auth.users where id = %s", (guest_id,))

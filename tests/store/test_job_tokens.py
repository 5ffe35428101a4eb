"""Per-job tokens and the security-definer ingest functions, called as the training machine calls them: as the
``anon`` role (the project's public key) with the token as an argument. Real PostgreSQL, migrations applied."""

from __future__ import annotations

import json

import psycopg
import pytest
from psycopg.types.json import Jsonb

from core.job_tokens import issue_job_token, revoke_job_tokens, token_hash
from core.store.postgres import PostgresStore
from core.store.records import JobRecord
from tests.support.team_db import make_team, make_user

pytestmark = pytest.mark.postgres


@pytest.fixture()
def jobs(pg_db):
    """Two jobs of one team, both provisioning (launched, machine starting), and a token for the first."""
    alice = make_user(pg_db, "alice@example.com")
    team = make_team(pg_db, alice, "Red")
    store = PostgresStore(pg_db).as_user(alice, team)
    for jid in ("job_a", "job_b"):
        store.create_job(JobRecord(id=jid, provider="runpod"))
        assert store.transition_job(jid, "provisioning")
    token = issue_job_token(store, "job_a")
    yield pg_db, store, token
    store.close()


def call(dsn: str, fn: str, *args):
    """``select public.<fn>(args)`` as the anon role, committed; returns the function's value."""
    with psycopg.connect(dsn) as conn:
        conn.execute("select set_config('role', 'anon', true), set_config('request.jwt.claims', %s, true)",
                     (json.dumps({"role": "anon"}),))
        marks = ", ".join(["%s"] * len(args))
        return conn.execute(f"select public.{fn}({marks})", args).fetchone()[0]


def count(dsn: str, table: str, job: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"select count(*) from public.{table} where job_id = %s", (job,)).fetchone()[0]


def job_row(dsn: str, job: str) -> dict:
    with psycopg.connect(dsn) as conn:
        cur = conn.execute("select * from public.training_jobs where id = %s", (job,))
        return dict(zip([d.name for d in cur.description], cur.fetchone()))


def test_token_is_stored_only_as_its_hash(jobs):
    dsn, _, token = jobs
    with psycopg.connect(dsn) as conn:
        stored = [r[0] for r in conn.execute("select token_hash from public.job_tokens where job_id = 'job_a'")]
    assert stored == [token_hash(token)] and token not in stored[0]


def test_token_writes_its_own_jobs_rows(jobs):
    dsn, _, token = jobs
    rows = [{"step": 1, "loss": 2.0, "epoch": 0.1}, {"step": 2, "loss": 1.5}, {"step": 1, "cpu_pct": 40.0}]
    assert call(dsn, "ingest_metrics", token, Jsonb(rows)) == 3
    assert call(dsn, "ingest_metrics", token, Jsonb(rows[:1])) == 1  # a replayed batch merges, never duplicates
    preds = [{"step": 2, "sample_id": "s1", "prompt": "p", "generated_text": "g", "bleu": 0.5, "rouge_l": 0.4,
              "scores": {"cer": 0.1}}]
    assert call(dsn, "ingest_predictions", token, Jsonb(preds)) == 1
    assert call(dsn, "ingest_error", token, "OOM", "out of memory", "tb", "smaller batch") is True
    assert call(dsn, "ingest_error", token, "OOM", "out of memory", "tb", "smaller batch") is False
    assert call(dsn, "ingest_status", token, "running", Jsonb({"reason": None})) is True
    assert call(dsn, "ingest_heartbeat", token, Jsonb({"current_step": 2, "progress": 0.5, "epoch": 0.2,
                                                       "heartbeat_at": "1999-01-01T00:00:00Z"})) is False
    assert count(dsn, "training_metrics", "job_a") == 2 and count(dsn, "training_predictions", "job_a") == 1
    assert count(dsn, "training_errors", "job_a") == 1
    with psycopg.connect(dsn) as conn:
        merged = conn.execute("select loss, cpu_pct, epoch from public.training_metrics"
                              " where job_id = 'job_a' and step = 1").fetchone()
    assert merged == (2.0, 40.0, 0.1)
    job = job_row(dsn, "job_a")
    assert (job["status"], job["current_step"], job["progress"]) == ("running", 2, 0.5)
    assert job["started_at"] is not None and job["heartbeat_at"].year > 2000  # the database's clock, not the machine's
    assert count(dsn, "training_metrics", "job_b") == 0 and job_row(dsn, "job_b")["status"] == "provisioning"


def test_token_cannot_write_rows_of_another_job(jobs):
    dsn, _, token = jobs
    mixed = [{"step": 1, "loss": 1.0}, {"job_id": "job_b", "step": 1, "loss": 9.0}]
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="job_a only"):
        call(dsn, "ingest_metrics", token, Jsonb(mixed))
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification):
        call(dsn, "ingest_predictions", token, Jsonb([{"job_id": "job_b", "step": 1, "sample_id": "x"}]))
    assert count(dsn, "training_metrics", "job_a") == 0  # the whole batch was refused
    assert count(dsn, "training_metrics", "job_b") == 0 and count(dsn, "training_predictions", "job_b") == 0


def test_token_cannot_set_what_the_console_owns(jobs):
    dsn, _, token = jobs
    for fields in ({"cancel_requested": True}, {"user_id": None}, {"team_id": None}, {"status": "completed"}):
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="cannot set"):
            call(dsn, "ingest_heartbeat", token, Jsonb(fields))
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="not completed"):
        call(dsn, "ingest_status", token, "completed", Jsonb({}))
    assert job_row(dsn, "job_a")["status"] == "provisioning"


def test_token_reads_nothing(jobs):
    dsn, _, token = jobs
    call(dsn, "ingest_metrics", token, Jsonb([{"step": 1, "loss": 1.0}]))
    with psycopg.connect(dsn) as conn:
        conn.execute("select set_config('role', 'anon', true)")
        tables = [r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname = 'public'")]
        assert all(conn.execute(f"select count(*) from public.{t}").fetchone()[0] == 0 for t in tables)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select private.job_for_token(%s)", (token,))


def test_heartbeat_answers_the_cancel_flag(jobs):
    dsn, store, token = jobs
    assert call(dsn, "ingest_heartbeat", token, Jsonb({})) is False
    store.update_job("job_a", cancel_requested=True)
    assert call(dsn, "ingest_heartbeat", token, Jsonb({"current_step": 3})) is True


def test_token_is_refused_after_revocation(jobs):
    dsn, store, token = jobs
    assert call(dsn, "ingest_heartbeat", token, Jsonb({})) is False
    assert revoke_job_tokens(store, "job_a") == 1
    for fn, args in (("ingest_metrics", (Jsonb([{"step": 1, "loss": 1.0}]),)), ("ingest_heartbeat", (Jsonb({}),)),
                     ("ingest_status", ("running", Jsonb({}))), ("ingest_error", ("E", "m", None, None)),
                     ("ingest_predictions", (Jsonb([{"step": 1, "sample_id": "a"}]),))):
        with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="revoked"):
            call(dsn, fn, token, *args)
    assert count(dsn, "training_metrics", "job_a") == 0


def test_token_is_refused_after_the_job_ends(jobs):
    dsn, store, token = jobs
    assert call(dsn, "ingest_status", token, "failed", Jsonb({"reason": "CUDA out of memory"})) is True
    job = job_row(dsn, "job_a")
    assert (job["status"], job["reason"]) == ("failed", "CUDA out of memory") and job["completed_at"] is not None
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="has ended"):
        call(dsn, "ingest_metrics", token, Jsonb([{"step": 9, "loss": 1.0}]))
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="has ended"):
        call(dsn, "ingest_status", token, "running", Jsonb({}))
    # The same for an end the console writes (a completed job with its model registered).
    other = issue_job_token(store, "job_b")
    for s in ("running", "completing"):
        assert store.transition_job("job_b", s)
    assert store.complete_job("job_b", None)
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="has ended"):
        call(dsn, "ingest_heartbeat", other, Jsonb({}))


def test_unknown_token_is_refused(jobs):
    dsn = jobs[0]
    with pytest.raises(psycopg.errors.InvalidAuthorizationSpecification, match="unknown token"):
        call(dsn, "ingest_heartbeat", "ftcjob_" + "x" * 43, Jsonb({}))

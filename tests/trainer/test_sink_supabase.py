"""The trainer's team sink through the real `supabase` client, a loopback Supabase project (gateway + PostgREST
shim + GoTrue fake) and the real PostgreSQL database: what a remote training machine does with its job token."""

from __future__ import annotations

import pytest
from postgrest import APIError

from core.job_tokens import issue_job_token, pack_credential, revoke_job_tokens
from core.store.postgres import PostgresStore
from core.store.records import JobRecord
from tests.support.team_db import make_team, make_user
from trainer.report import Reporter, make_sink, read_spool
from trainer.sink_supabase import TokenRefused

pytestmark = pytest.mark.postgres


@pytest.fixture()
def remote_job(pg_db, local_supabase):
    alice = make_user(pg_db, "alice@example.com")
    store = PostgresStore(pg_db).as_user(alice, make_team(pg_db, alice, "Red"))
    for jid in ("job_remote", "job_other"):
        store.create_job(JobRecord(id=jid, provider="runpod"))
        store.transition_job(jid, "provisioning")
    token = issue_job_token(store, "job_remote")
    sink = make_sink("supabase", "job_remote", url=local_supabase.url,
                     token=pack_credential(token, local_supabase.anon_key))
    yield store, sink, local_supabase
    sink.close()
    store.close()


def test_reporter_delivers_a_run_through_the_ingest_functions(remote_job, tmp_path):
    store, sink, project = remote_job
    rep = Reporter(sink, "job_remote", tmp_path / "spool.jsonl", heartbeat_interval_s=0, cancel_poll_s=0,
                   idle_wait_s=0.05)
    rep.status("running", reason=None)
    rep.job(total_steps=4, current_step=0)
    rep.metrics([{"step": s, "loss": 2.0 - s * 0.3, "epoch": s / 4} for s in range(1, 5)])
    rep.metrics([{"step": 4, "cpu_pct": 55.0}])
    rep.predictions([{"step": 4, "sample_id": "a", "prompt": "p", "generated_text": "g", "expected_text": "g",
                      "bleu": 1.0, "rouge_l": 1.0, "scores": {"exact": 1}}])
    rep.heartbeat(current_step=4, progress=1.0)
    assert rep.finish("completing", final_loss=0.8, progress=1.0, artifact_path="/art/job_remote")
    job = store.get_job("job_remote")
    assert (job.status, job.total_steps, job.final_loss, job.artifact_path) == ("completing", 4, 0.8,
                                                                                 "/art/job_remote")
    rows = store.get_metrics("job_remote")
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and rows[-1]["cpu_pct"] == 55.0
    assert store.get_predictions("job_remote")[0]["scores"] == {"exact": 1}
    assert store.get_metrics("job_other") == []
    assert ("POST", "/rpc/ingest_metrics") in project.rest.calls  # it went over HTTP, through the shim


def test_sink_reports_the_cancel_flag(remote_job):
    store, sink, _ = remote_job
    assert sink.cancel_requested() is False
    store.update_job("job_remote", cancel_requested=True)
    assert sink.cancel_requested() is True


def test_revoked_token_stops_the_machine_and_keeps_the_rows_spooled(remote_job, tmp_path):
    store, sink, _ = remote_job
    sink.write([{"seq": 1, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 1.0}]}}])
    revoke_job_tokens(store, "job_remote")
    with pytest.raises(TokenRefused, match="revoked"):
        sink.write([{"seq": 2, "kind": "metrics", "payload": {"rows": [{"step": 2, "loss": 0.9}]}}])
    assert sink.cancel_requested() is True  # training stops at its next step
    rep = Reporter(sink, "job_remote", tmp_path / "spool.jsonl", idle_wait_s=0.05)
    rep.metrics([{"step": 3, "loss": 0.5}])
    assert rep.finish("completing", timeout=600) is False  # returns at once instead of waiting out the timeout
    assert [r["step"] for r in store.get_metrics("job_remote")] == [1]
    spooled = [row["step"] for e in read_spool(tmp_path / "spool.jsonl") for row in e["payload"].get("rows", [])]
    assert spooled == [3]


def test_token_is_refused_once_the_job_ended(remote_job):
    store, sink, _ = remote_job
    store.transition_job("job_remote", "cancelled", reason="Cancelled by the user.")
    with pytest.raises(TokenRefused, match="has ended"):
        sink.heartbeat({"current_step": 1})


def test_the_machines_key_reads_and_writes_no_table(remote_job):
    store, sink, _ = remote_job
    sink.write([{"seq": 1, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 1.0}]}}])
    client = sink.client  # the anon key the machine holds, as the supabase client uses it
    assert client.table("training_metrics").select("*").execute().data == []
    assert client.table("training_jobs").select("id").execute().data == []
    with pytest.raises(APIError) as err:
        client.table("training_metrics").insert({"job_id": "job_other", "step": 9, "loss": 0.0}).execute()
    assert err.value.code == "42501"
    assert store.get_metrics("job_other") == []

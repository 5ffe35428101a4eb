"""The reporter: spool first, flush in the background, survive a sink that is down or refuses a row, replay
without duplicates. Uses the real SQLite store (locked by another connection to take it down)."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from core.store.records import JobRecord
from tests.trainer.conftest import wait_for
from trainer.report import Reporter, SinkUnavailable, SQLiteSink, apply_entries, read_spool, replay_spool


@pytest.fixture()
def job(store):
    return store.create_job(JobRecord(id="job_report", status="running", estimate={"cost_usd": 1.5}))


def reporter_for(store, tmp_path, **kw) -> Reporter:
    kw.setdefault("backoff_base_s", 0.05)
    kw.setdefault("backoff_max_s", 0.2)
    return Reporter(SQLiteSink(str(store.path), "job_report", busy_timeout_s=0.1), "job_report",
                    tmp_path / "spool.jsonl", **kw)


def test_rows_written_while_the_database_is_locked_arrive_once_it_is_released(store, job, tmp_path):
    rep = reporter_for(store, tmp_path)
    rep.metrics([{"step": 1, "loss": 2.0}])
    assert rep.flush(30)
    lock = sqlite3.connect(store.path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        for step in range(2, 12):
            rep.metrics([{"step": step, "loss": 2.0 - step / 10}])
        rep.predictions([{"step": 10, "sample_id": "s1", "prompt": "p", "generated_text": "g"}])
        wait_for("a refused write", lambda: rep.sink_errors > 0)
        assert rep.pending == 11
        assert [r["step"] for r in store.get_metrics("job_report")] == [1]
    finally:
        lock.rollback()
        lock.close()
    assert rep.finish("completing", timeout=30)
    rows = store.get_metrics("job_report")
    assert [r["step"] for r in rows] == list(range(1, 12))
    assert rows[-1]["loss"] == pytest.approx(0.9)
    assert len(store.get_predictions("job_report")) == 1
    assert store.get_job("job_report").status == "completing"


def test_a_backoff_is_not_cut_short_by_new_rows(store, job, tmp_path):
    class Down:
        attempts = 0

        def write(self, entries):
            Down.attempts += 1
            raise SinkUnavailable("down")

        def heartbeat(self, fields):
            raise SinkUnavailable("down")

        def cancel_requested(self):
            return None

        def close(self):
            pass

    rep = Reporter(Down(), "job_report", tmp_path / "spool.jsonl", backoff_base_s=0.2, backoff_max_s=5, linger_s=0)
    done = threading.Event()
    for step in range(60):
        rep.metrics([{"step": step}])
        done.wait(0.01)
    attempts = Down.attempts
    rep.close()
    # Without the separate wake-up, each of the 60 rows would trigger a retry.
    assert 1 <= attempts <= 15
    assert len(read_spool(tmp_path / "spool.jsonl")) == 60


def test_a_row_the_store_refuses_is_set_aside_and_the_rest_flows(store, job, tmp_path):
    rep = reporter_for(store, tmp_path, poison_after=2)
    rep.metrics([{"step": 1, "loss": 1.0}])
    rep.metrics([{"loss": 0.7}])  # no step: the store refuses it, a bug to report, not an outage to wait out
    rep.metrics([{"step": 2, "loss": 0.5}])
    assert rep.finish("completing", timeout=30)
    assert [r["step"] for r in store.get_metrics("job_report")] == [1, 2]
    assert rep.rejected == 1
    rejected = [json.loads(x) for x in (tmp_path / "spool.rejected.jsonl").read_text().splitlines()]
    assert rejected[0]["payload"] == {"rows": [{"loss": 0.7}]} and "step" in rejected[0]["error"]
    assert store.get_job("job_report").status == "completing"


def test_a_torn_last_line_does_not_swallow_the_next_entry(store, job, tmp_path):
    spool = tmp_path / "spool.jsonl"
    spool.write_text(json.dumps({"seq": 1, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 1.0}]}})
                     + "\n" + '{"seq": 2, "kind": "metr')  # the process died mid-write
    rep = reporter_for(store, tmp_path)
    rep.metrics([{"step": 3, "loss": 0.3}])
    assert rep.finish(timeout=30)
    assert [e["seq"] for e in read_spool(spool)] == [1, 2]  # the new entry took seq 2, on its own line
    assert [r["step"] for r in store.get_metrics("job_report")] == [1, 3]


def test_replaying_a_spool_twice_writes_each_row_once(store, job, tmp_path):
    spool = tmp_path / "spool.jsonl"
    entries = [
        {"seq": 1, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.9}]}},
        {"seq": 2, "kind": "predictions", "payload": {"rows": [{"step": 2, "sample_id": "a", "bleu": 1.0}]}},
        {"seq": 3, "kind": "error", "payload": {"error_type": "x", "message": "boom"}},
    ]
    spool.write_text("".join(json.dumps(e) + "\n" for e in entries))
    assert replay_spool(store, "job_report", spool) == 3
    (tmp_path / "spool.offset").write_text("0")  # as if the ack was lost
    assert replay_spool(store, "job_report", spool) == 3
    assert replay_spool(store, "job_report", spool) == 0
    assert store.count_metrics("job_report") == 2
    assert len(store.get_predictions("job_report")) == 1
    assert len(store.get_errors("job_report")) == 1


def test_the_trainers_estimate_joins_the_consoles(store, job):
    apply_entries(store, "job_report", [{"seq": 1, "kind": "job", "payload": {"estimate": {"eta_seconds": 12.0}}}])
    assert store.get_job("job_report").estimate == {"cost_usd": 1.5, "eta_seconds": 12.0}


def test_rows_logged_close_together_travel_in_one_transaction(store, job, tmp_path):
    sink = SQLiteSink(str(store.path), "job_report")
    writes = []
    real_write = sink.write
    sink.write = lambda entries: (writes.append(len(entries)), real_write(entries))
    rep = Reporter(sink, "job_report", tmp_path / "spool.jsonl", linger_s=2.0)
    for step in range(1, 21):
        rep.metrics([{"step": step, "loss": 1.0}])
        rep.job(current_step=step)
    wait_for("the batch to land", lambda: store.count_metrics("job_report") == 20, timeout=60)
    rep.close()
    assert writes == [40]
    assert store.get_job("job_report").current_step == 20


def test_rows_written_while_the_database_file_is_gone_arrive_once_it_is_back(store, job, tmp_path):
    """The file moved away (a volume unmounted, a user tidying up): writes must wait, not vanish into the open
    handle of a file that is no longer at its path."""
    import os

    rep = reporter_for(store, tmp_path)
    rep.metrics([{"step": 1, "loss": 2.0}])
    assert rep.flush(30)
    names = [str(store.path) + suffix for suffix in ("", "-wal", "-shm") if os.path.exists(str(store.path) + suffix)]
    for name in names:
        os.rename(name, name + ".away")
    try:
        for step in range(2, 7):
            rep.metrics([{"step": step, "loss": 2.0 - step / 10}])
        wait_for("a write refused while the file is gone", lambda: rep.sink_errors > 0, timeout=30)
        assert "is gone" in rep.last_sink_error and rep.pending == 5
    finally:
        for name in names:
            os.rename(name + ".away", name)
    assert rep.finish("completing", timeout=30)
    assert [r["step"] for r in store.get_metrics("job_report")] == list(range(1, 7))
    assert store.get_job("job_report").status == "completing"


def test_a_machine_sets_only_its_own_job_fields(store, job):
    """Pulled rows come from a machine the console does not trust with its job row: status goes through the
    lifecycle, and fields such as the provider, the owner or the cancel flag stay the console's."""
    store.update_job("job_report", provider="runpod", cost_per_hour=2.0)
    apply_entries(store, "job_report", [
        {"seq": 1, "kind": "job", "payload": {"current_step": 7, "status": "completed", "provider": "local",
                                              "cost_per_hour": 0.0, "cancel_requested": True}},
        {"seq": 2, "kind": "status", "payload": {"status": "completing",
                                                 "fields": {"final_loss": 0.5, "user_id": "someone-else"}}},
    ])
    got = store.get_job("job_report")
    assert (got.current_step, got.final_loss, got.status) == (7, 0.5, "completing")
    assert (got.provider, got.cost_per_hour, got.cancel_requested, got.user_id) == ("runpod", 2.0, False, None)


def test_machine_fields_match_the_team_databases_ingest_functions():
    import re
    from pathlib import Path

    from trainer.report import MACHINE_JOB_FIELDS

    sql = (Path(__file__).resolve().parents[2] / "supabase" / "migrations" / "20261129000000_team_mode.sql").read_text()
    in_sql = set(re.findall(r"p_fields \? '([a-z_]+)'", sql))
    assert in_sql and in_sql | {"heartbeat_at"} == MACHINE_JOB_FIELDS  # heartbeat_at: the database's clock there

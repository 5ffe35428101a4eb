"""The stdout report channel: rows parsed back from a provider's log and applied through JobService."""

from __future__ import annotations

import io
import json

from core.jobs import JobService
from core.providers.log_channel import LogChannelProvider, entries_after, parse_log
from core.store.records import JobRecord
from trainer.report import StdoutSink


def line(obj) -> str:
    return "@@FTC " + json.dumps(obj, separators=(",", ":"))


def trainer_log(entries, heartbeats=()) -> str:
    buf = io.StringIO()
    sink = StdoutSink(buf)
    sink.write(entries)
    for hb in heartbeats:
        sink.heartbeat(hb)
    return buf.getvalue()


def test_entries_are_numbered_by_position_and_other_output_is_kept_apart():
    text = ("Downloading model...\n"
            + trainer_log([{"seq": 7, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 2.0}]}}])
            + "2026-01-01T00:00:00Z stderr: warning\r\n"
            + "2026-01-01T00:00:01Z " + line({"kind": "status", "payload": {"status": "failed"}, "src": "bootstrap"})
            + "\n")
    parsed = parse_log(text)
    assert [(e["seq"], e["kind"]) for e in parsed.entries] == [(1, "metrics"), (2, "status")]
    assert parsed.other == ["Downloading model...", "2026-01-01T00:00:00Z stderr: warning", "2026-01-01T00:00:01Z "]
    assert [e["seq"] for e in entries_after(parsed, 1)] == [2]


def test_a_torn_last_line_is_not_counted_until_it_is_complete():
    full = line({"kind": "metrics", "payload": {"rows": [{"step": 2, "loss": 1.0}]}})
    first = line({"kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 2.0}]}}) + "\n"
    torn = parse_log(first + full[: len(full) // 2])
    assert [e["seq"] for e in torn.entries] == [1] and torn.skipped == 0
    done = parse_log(first + full)  # some log APIs drop the final newline: a complete object still counts
    assert [e["payload"]["rows"][0]["step"] for e in done.entries] == [1, 2]


def test_a_broken_line_in_the_middle_keeps_later_positions_stable():
    a = line({"kind": "job", "payload": {"progress": 0.1}})
    b = line({"kind": "job", "payload": {"progress": 0.2}})
    parsed = parse_log(f"{a}\n@@FTC {{not json\n@@FTC [1,2]\n{b}\n")
    assert parsed.skipped == 2
    assert [(e["seq"], e["payload"]["progress"]) for e in parsed.entries] == [(1, 0.1), (2, 0.2)]


def test_the_newest_heartbeat_goes_first_and_never_moves_the_cursor():
    text = trainer_log([{"seq": 1, "kind": "job", "payload": {"progress": 0.5}}],
                       [{"progress": 0.6}, {"progress": 0.7}])
    text += trainer_log([{"seq": 2, "kind": "status", "payload": {"status": "completed"}}], [{"progress": 0.9}])
    parsed = parse_log(text)
    assert parsed.heartbeat == {"progress": 0.9} and parsed.heartbeat_after == 2
    got = entries_after(parsed, 1)
    assert [(e["seq"], e["kind"]) for e in got] == [(1, "heartbeat"), (2, "status")]
    assert entries_after(parsed, 2) == [{"seq": 2, "kind": "heartbeat", "payload": {"progress": 0.9}}]
    # A heartbeat older than the cursor is not applied again.
    older = parse_log(trainer_log([], [{"progress": 0.1}]) + trainer_log([{"seq": 1, "kind": "job", "payload": {}}]))
    assert entries_after(older, 1) == []


class GrowingLog(LogChannelProvider):
    name = "fake-log"

    def __init__(self) -> None:
        self.text = ""

    def log_text(self, ref: str) -> str:
        return self.text


def test_pulled_rows_land_in_the_store_once_and_the_cursor_follows_positions(console_home):
    from core.store import open_store

    store = open_store()
    store.create_job(JobRecord(id="job_log", provider="fake-log", status="running", provider_ref="r1"))
    prov = GrowingLog()
    svc = JobService(store, provider_factory=lambda name: prov)
    prov.text = "setup output\n" + trainer_log(
        [{"seq": 1, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]}}],
        [{"progress": 0.25}])
    svc._ingest_remote(store.get_job("job_log"), prov)
    assert [r["step"] for r in store.get_metrics("job_log")] == [1, 2]
    job = store.get_job("job_log")
    assert job.provider_params["_ingested_seq"] == 1 and job.progress == 0.25

    # The trainer resumed and printed seq 1 again, then went on; the bootstrap reported its artifact unnumbered.
    prov.text += trainer_log([{"seq": 1, "kind": "metrics", "payload": {"rows": [{"step": 2, "loss": 1.5}]}},
                              {"seq": 2, "kind": "metrics", "payload": {"rows": [{"step": 3, "loss": 1.0}]}}])
    prov.text += line({"kind": "job", "payload": {"artifact_path": "hf://me/model"}, "src": "bootstrap"}) + "\n"
    prov.text += line({"kind": "status", "payload": {"status": "completed"}})[:30]  # still being written
    svc._ingest_remote(store.get_job("job_log"), prov)
    job = store.get_job("job_log")
    assert [r["step"] for r in store.get_metrics("job_log")] == [1, 2, 3]
    assert job.artifact_path == "hf://me/model" and job.provider_params["_ingested_seq"] == 4
    assert job.status == "running"
    assert "setup output" in prov.logs("r1") and "@@FTC" not in prov.logs("r1")

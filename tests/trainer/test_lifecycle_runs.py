"""The trainer as the console runs it: ``python -m trainer`` started by the local provider, reporting into the
console's real SQLite file, and taken through what real runs meet: the store locked mid-run, SIGKILL then
resume, cancel through the job's flag and through SIGTERM, the budget guard, a bad dataset row, and two
processes under torchrun (gloo).

Waits are on what the trainer leaves behind (rows, spool entries, checkpoint folders), never on the clock.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from core.jobs import JobService, ServiceSettings
from tests.trainer.conftest import assert_rows_match_log, read_log_history, reporting_summary, wait_for
from trainer.checkpoints import checkpoint_step, is_complete, latest_checkpoint
from trainer.report import read_spool

pytestmark = pytest.mark.training


@pytest.fixture()
def svc(store) -> JobService:
    # The console's kill-after-grace would race the trainer's own graceful stop on a slow machine.
    return JobService(store, settings=ServiceSettings(cancel_grace_s=3600))


def paths(job_id: str) -> tuple[Path, Path]:
    from core.paths import artifacts_dir, job_dir

    return job_dir(job_id), artifacts_dir() / job_id


def logged_loss(store, job_id: str) -> int:
    return sum(1 for r in store.get_metrics(job_id) if r["loss"] is not None)


def group_signal(job_id: str, sig: int) -> None:
    pid = int((paths(job_id)[0] / "pid").read_text())
    os.killpg(os.getpgid(pid), sig)


def exit_status(job_id: str) -> int:
    """The trainer's exit status, recorded by the local provider's wrapper once the process has ended (the job
    reaches its final state a moment before that)."""
    path = paths(job_id)[0] / "exit_code"
    return int(wait_for("the trainer process to exit", lambda: path.exists() and path.read_text().strip()))


def train_log(job_id: str) -> str:
    return (paths(job_id)[0] / "train.log").read_text(errors="replace")


def test_store_locked_mid_run_loses_and_duplicates_nothing(svc, store, make_config):
    cfg = make_config("sft", training={"max_steps": 16}, predictions={"step_interval": 4})
    job = svc.deploy(cfg)
    jdir, out = paths(job.id)
    spool = jdir / "spool.jsonl"
    wait_for("the first metric rows", lambda: logged_loss(store, job.id) >= 1)

    lock = sqlite3.connect(store.path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # every write from the trainer now fails with "database is locked"
    try:
        acked = int(spool.with_suffix(".offset").read_text() or 0)

        def spooled_while_down() -> bool:
            kinds = [e["kind"] for e in read_spool(spool, after=acked)]
            # ... and the flusher has met the lock (the rows alone can be spooled before it even tries).
            return kinds.count("metrics") >= 3 and "predictions" in kinds and "store is unreachable" in train_log(job.id)

        wait_for("metric and prediction rows spooled while the store is locked", spooled_while_down)
    finally:
        lock.rollback()
        lock.close()

    final = svc.wait(job.id, timeout_s=900, interval_s=0.5)
    assert final.status == "completed", final.reason
    history = read_log_history(out)
    assert_rows_match_log(store, job.id, history)
    preds = store.get_predictions(job.id)
    assert sorted({p["step"] for p in preds}) == [0, 4, 8, 12, 16]
    assert len(preds) == 5 * 2 == len({(p["step"], p["sample_id"]) for p in preds})
    log = train_log(job.id)
    assert "database is locked" in log and "the store is back" in log
    summary = reporting_summary(log)
    assert summary["sink_errors"] > 0 and summary["refused"] == 0
    assert final.current_step == 16 and final.progress == 1.0


def test_killed_mid_run_then_resumed_continues_the_step_count(svc, store, make_config):
    cfg = make_config("sft", training={"max_steps": 16, "save_steps": 4}, predictions={"enabled": False})
    job = svc.deploy(cfg)
    jdir, out = paths(job.id)
    wait_for("a complete checkpoint", lambda: latest_checkpoint(out))
    group_signal(job.id, signal.SIGKILL)
    failed = svc.wait(job.id, timeout_s=120, interval_s=0.2)
    assert failed.status == "failed" and "without an exit status" in failed.reason
    ckpt = latest_checkpoint(out)
    resumed_from = checkpoint_step(ckpt)
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth"} <= {p.name for p in Path(ckpt).iterdir()}
    assert resumed_from < 16

    job = svc.resume(job.id)
    assert job.status in ("provisioning", "running") and not job.cancel_requested
    final = svc.wait(job.id, timeout_s=900, interval_s=0.5)
    assert final.status == "completed", final.reason
    assert final.current_step == final.total_steps == 16

    log = train_log(job.id)
    first_run, _, second_run = log.partition("[trainer] resuming from ")
    assert second_run.startswith(ckpt), "the resumed run starts from the newest complete checkpoint"
    # The second run trains only the steps after the checkpoint: one logged loss per step from there on.
    assert second_run.count("{'loss'") == 16 - resumed_from
    history = read_log_history(out)
    assert [e["step"] for e in history if "loss" in e] == list(range(1, 17))
    # The cosine schedule (no warmup) continued from the checkpoint instead of starting over at its peak.
    lrs = [e["learning_rate"] for e in history if "loss" in e]
    assert all(a > b for a, b in zip(lrs, lrs[1:])), lrs
    assert_rows_match_log(store, job.id, history)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final_dir = Path(final.artifact_path)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(cfg.model.name), final_dir)
    tok = AutoTokenizer.from_pretrained(final_dir)
    out_ids = model.generate(**tok("The capital of France is", return_tensors="pt"), max_new_tokens=3)
    assert out_ids.shape[1] > 0
    assert store.find_model_by_job(job.id) is not None


def test_cancel_flag_saves_a_checkpoint_and_ends_cancelled(svc, store, make_config):
    cfg = make_config("sft", training={"max_steps": 400}, predictions={"enabled": False})
    job = svc.deploy(cfg)
    wait_for("the first metric rows", lambda: logged_loss(store, job.id) >= 1)
    svc.cancel(job.id)
    final = svc.wait(job.id, timeout_s=600, interval_s=0.5)
    assert final.status == "cancelled"
    assert final.reason == "Cancelled by the user; a checkpoint was saved."
    ckpt = Path(paths(job.id)[1]) / "checkpoints" / f"checkpoint-{final.current_step}"
    assert 0 < final.current_step < 400 and is_complete(ckpt)
    assert exit_status(job.id) == 0

    from core.errors import StateError

    with pytest.raises(StateError, match="only a failed, cancelled or budget-stopped job can be resumed"):
        svc.resume(store.create_job(final.model_copy(update={"id": "job_done", "status": "completed"})).id)
    with pytest.raises(StateError, match="saved no checkpoint before it stopped"):
        svc.resume(store.create_job(final.model_copy(update={"id": "job_early", "status": "failed",
                                                             "provider_ref": None})).id)


def test_sigterm_saves_a_checkpoint_and_ends_cancelled(svc, store, make_config):
    cfg = make_config("dpo", training={"max_steps": 400}, predictions={"enabled": False})
    job = svc.deploy(cfg)
    wait_for("the first metric rows", lambda: logged_loss(store, job.id) >= 1)
    group_signal(job.id, signal.SIGTERM)  # what the provider's cancel and a pre-empted machine send
    final = svc.wait(job.id, timeout_s=600, interval_s=0.5)
    assert final.status == "cancelled", final.reason
    assert 0 < final.current_step < 400
    assert is_complete(paths(job.id)[1] / "checkpoints" / f"checkpoint-{final.current_step}")


def test_budget_guard_stops_with_a_checkpoint(svc, store, make_config):
    cfg = make_config("kto", training={"max_steps": 400}, predictions={"enabled": False})
    job = svc.deploy(cfg, cost_per_hour=36.0, budget_usd=0.05)  # one cent every second; five seconds of budget
    final = svc.wait(job.id, timeout_s=600, interval_s=0.5)
    assert final.status == "budget_stopped"
    assert "$0.05 budget" in final.reason and "checkpoint was saved" in final.reason
    assert 0 < final.current_step < 400
    assert is_complete(paths(job.id)[1] / "checkpoints" / f"checkpoint-{final.current_step}")
    assert final.total_cost_usd > 0
    costs = [r["cost_usd"] for r in store.get_metrics(job.id) if r["cost_usd"] is not None]
    assert costs == sorted(costs) and costs[-1] <= final.total_cost_usd


def test_bad_dataset_row_fails_the_job_with_a_readable_reason(svc, store, make_config, tmp_path):
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Answer {i}."}]} for i in range(20)]
    for r in rows[1:]:  # one usable row would train; none must fail the job before any model loads
        r["messages"][0]["content"] = ["not", "a", "string"]
    rows[0]["messages"][1]["role"] = "robot"
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = make_config("sft", data={"train_path": str(data), "eval_split": 0})
    job = svc.deploy(cfg)
    final = svc.wait(job.id, timeout_s=600, interval_s=0.5)
    assert final.status == "failed"
    assert final.reason.startswith("No row of the dataset can be trained on; line 1: ")
    assert "robot" in final.reason
    (err,) = store.get_errors(job.id)
    assert err.error_type == "bad_dataset" and "Dataset page" in err.hint and "Traceback" in err.traceback
    assert "trainer/run.py" not in err.traceback, "the rows are judged before torch and the model load"
    assert exit_status(job.id) == 1


def test_two_processes_train_together_and_only_rank_zero_reports(svc, store, make_config):
    cfg = make_config("sft", training={"max_steps": 4}, predictions={"step_interval": 2})
    job = svc.deploy(cfg, gpu_count=2)  # on a CPU machine: torchrun with two gloo processes
    final = svc.wait(job.id, timeout_s=900, interval_s=0.5)
    log = train_log(job.id)
    assert final.status == "completed", log[-3000:]
    assert log.count("[trainer] rank 0 of 2 reports") == 1
    assert log.count("[trainer] rank 1 of 2 trains without reporting") == 1
    assert log.count("[trainer] reporting:") == 1  # one process had a reporter
    seqs = [e["seq"] for e in read_spool(paths(job.id)[0] / "spool.jsonl")]
    assert seqs == list(range(1, len(seqs) + 1)), "one writer: sequence numbers neither repeat nor skip"
    history = read_log_history(paths(job.id)[1])
    rows = assert_rows_match_log(store, job.id, history)
    args = json.loads((paths(job.id)[1] / "final" / "training_args.json").read_text())
    assert args["per_device_train_batch_size"] == cfg.training.batch_size
    assert all(r["tokens_per_sec"] > 0 for r in rows if r["loss"] is not None)
    preds = store.get_predictions(job.id)
    assert sorted({p["step"] for p in preds}) == [0, 2, 4] and len(preds) == 6

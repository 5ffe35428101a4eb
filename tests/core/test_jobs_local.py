"""JobService with the local provider: queueing, cancel, crashes and console restarts, with real trainer processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.config import load_config_file
from core.jobs import JobService, ServiceSettings
from core.store import open_store, reset_store_cache

pytestmark = [pytest.mark.training]


def demo_cfg(home: Path, method: str = "sft", **training):
    cfg = load_config_file(home / "demo" / f"{method}.yaml")
    for k, v in training.items():
        setattr(cfg.training, k, v)
    return cfg


def wait_for(svc: JobService, job_id: str, pred, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = svc.poll(job_id)
        if pred(job):
            return job
        time.sleep(0.5)
    raise AssertionError(f"timed out; job is {svc.store.get_job(job_id).status}")


def test_cancel_saves_a_checkpoint_and_ends_cancelled(demo_home):
    svc = JobService(open_store())
    cfg = demo_cfg(demo_home, max_steps=5000, save_steps=100000)
    cfg.predictions.enabled = False
    job = svc.deploy(cfg)
    wait_for(svc, job.id, lambda j: j.status == "running" and j.current_step >= 3)
    svc.cancel(job.id)
    done = wait_for(svc, job.id, lambda j: j.is_terminal)
    assert done.status == "cancelled", done.reason
    ckpts = list((demo_home / "artifacts" / job.id / "checkpoints").glob("checkpoint-*"))
    assert ckpts, "a graceful cancel saves a checkpoint"
    assert done.current_step < 5000
    assert svc.store.find_model_by_job(job.id) is None


def test_trainer_crash_fails_the_job_with_a_readable_reason(demo_home, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    src = demo_home / "demo" / "tiny-llama"
    for f in src.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    cfg = demo_cfg(demo_home)
    cfg.model.name = str(broken)
    svc = JobService(open_store())
    job = svc.deploy(cfg)
    done = wait_for(svc, job.id, lambda j: j.is_terminal)
    assert done.status == "failed"
    assert done.reason and "Traceback" not in done.reason
    errors = svc.store.get_errors(job.id)
    assert errors and errors[0].traceback and errors[0].hint
    assert svc.store.find_model_by_job(job.id) is None


def test_jobs_queue_one_at_a_time_on_cpu_and_survive_a_console_restart(demo_home):
    svc = JobService(open_store())
    first = svc.deploy(demo_cfg(demo_home, max_steps=12))
    second = svc.deploy(demo_cfg(demo_home, max_steps=12))
    assert first.status == "provisioning" and first.provider_ref
    assert second.status == "queued", "a CPU-only machine runs one job at a time"
    # The console goes away; a new process (new store connection, new service) picks the jobs up.
    reset_store_cache()
    svc2 = JobService(open_store(), settings=ServiceSettings())
    done1 = wait_for(svc2, first.id, lambda j: j.is_terminal)
    assert done1.status == "completed"
    svc2.poll_all()  # the queued job starts once the first released the machine
    done2 = wait_for(svc2, second.id, lambda j: j.is_terminal)
    assert done2.status == "completed"
    assert done2.started_at >= done1.completed_at
    assert {m.source_job_id for m in svc2.store.list_models()} == {first.id, second.id}

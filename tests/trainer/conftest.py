"""Helpers for the trainer tests: small, fast variants of the demo configs, jobs in a fresh store, and waits on
what a running trainer leaves on disk (never on the clock)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest

from core.config import TrainingConfig, load_config_file

# Small enough to train in seconds on 2 CPU cores, with a row logged at every step.
FAST = {
    "training": {"logging_steps": 1, "save_steps": 1000, "warmup_steps": 0},
    "predictions": {"sample_count": 2, "max_new_tokens": 6, "sample_frequency": "steps", "step_interval": 2},
}


def deep_update(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture()
def make_config(demo_home: Path) -> Callable[..., TrainingConfig]:
    """The demo config for a method with FAST and the given overrides applied (nested dicts)."""

    def make(method: str = "sft", **sections: dict[str, Any]) -> TrainingConfig:
        cfg = load_config_file(demo_home / "demo" / f"{method}.yaml")
        data = deep_update(deep_update(cfg.to_dict(), FAST), sections)
        return TrainingConfig.model_validate(data)

    return make


@pytest.fixture()
def store(console_home: Path):
    from core.store import open_store

    return open_store()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 300.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; the timeout only guards against a hung run."""
    from tests.fakes.machine import wait_for as poll

    return poll(check, timeout, interval, what)


def logged(log_history: list[dict[str, Any]], key: str) -> dict[int, dict[str, Any]]:
    return {e["step"]: e for e in log_history if key in e}


def assert_rows_match_log(store: Any, job_id: str, log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every loss and eval loss the Trainer logged is a metrics row at its step with the same values, and no
    row carries a loss the Trainer did not log."""
    rows = {r["step"]: r for r in store.get_metrics(job_id)}
    train, evals = logged(log_history, "loss"), logged(log_history, "eval_loss")
    assert train, "the trainer logged no loss"
    for step, e in train.items():
        r = rows[step]
        assert r["loss"] == pytest.approx(e["loss"], rel=1e-6)
        assert r["learning_rate"] == pytest.approx(e["learning_rate"], rel=1e-6, abs=1e-12)
        if "grad_norm" in e:
            assert r["grad_norm"] == pytest.approx(e["grad_norm"], rel=1e-6)
        assert r["epoch"] == pytest.approx(e["epoch"], rel=1e-6)
        assert r["samples_per_sec"] > 0
    for step, e in evals.items():
        assert rows[step]["eval_loss"] == pytest.approx(e["eval_loss"], rel=1e-6)
    assert {s for s, r in rows.items() if r["loss"] is not None} == set(train)
    assert {s for s, r in rows.items() if r["eval_loss"] is not None} == set(evals)
    return list(rows.values())


def read_log_history(output_dir: str | Path) -> list[dict[str, Any]]:
    return json.loads((Path(output_dir) / "final" / "log_history.json").read_text())


def reporting_summary(log_text: str) -> dict[str, int]:
    m = re.findall(r"reporting: (\d+) entries sent, (\d+) sink errors retried, (\d+) refused", log_text)
    assert m, "the trainer printed no reporting summary"
    sent, errors, refused = (int(x) for x in m[-1])
    return {"sent": sent, "sink_errors": errors, "refused": refused}


class WeightWatch:
    """Copies the trainable parameters when training starts and ends (a TrainerCallback)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        watch = self

        class _CB(TrainerCallback):
            def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kw):
                watch.before = watch.snapshot(model)
                watch.collator = getattr(train_dataloader, "collate_fn", None)

            def on_train_end(self, args, state, control, model=None, **kw):
                watch.after = watch.snapshot(model)

        self.callback = _CB()
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        self.collator: Any = None

    @staticmethod
    def snapshot(model: Any) -> dict[str, Any]:
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def changed(self) -> list[str]:
        import torch

        return [n for n in self.before if not torch.equal(self.before[n], self.after[n])]


def run_in_process(store: Any, cfg: Any, out: Path, **spec_kw: Any) -> tuple[int, Any, Any, WeightWatch]:
    from core.jobs import JobService
    from core.jobspec import JobSpec, SinkSpec
    from trainer.__main__ import run_job

    job = JobService(store).create(cfg)
    store.transition_job(job.id, "provisioning")
    spec = JobSpec(job_id=job.id, config=cfg, dataset_path=cfg.data.train_path, output_dir=str(out),
                   sink=SinkSpec(kind="sqlite", path=str(store.path)), spool_path=str(out / "spool.jsonl"),
                   heartbeat_interval_s=0.2, cancel_poll_s=0.2, system_sample_s=0.2, **spec_kw)
    watch = WeightWatch()
    code = run_job(spec, extra_callbacks=[watch.callback])
    return code, store.get_job(job.id), spec, watch

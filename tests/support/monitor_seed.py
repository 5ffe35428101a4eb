"""Seeded jobs with realistic metric and prediction rows, for the monitor's tests and bench/monitor.py.

The shapes are known so tests can assert on them: the loss decays with one spike of SPIKE_LOSS at step
``spike_step``; sample ``s001`` peaks at the second-to-last round and then regresses; ``s000`` is always worst.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np

from core.store.records import JobRecord, new_id, utcnow

SPIKE_LOSS = 9.5
EXPECTED = "the quick brown fox jumps over the lazy dog near the river bank today"


def seed_config(name: str, *, lr: float = 2e-4, batch: int = 8, accum: int = 2, epochs: float = 3,
                max_steps: int | None = None) -> dict[str, Any]:
    return {
        "name": name, "model": {"name": "Qwen/Qwen2.5-0.5B", "torch_dtype": "bfloat16"},
        "data": {"train_path": "ds_seed", "eval_split": 0.1, "max_length": 512},
        "training": {"method": "sft", "num_epochs": epochs, "max_steps": max_steps, "learning_rate": lr,
                     "batch_size": batch, "gradient_accumulation_steps": accum},
        "lora": {"r": 16, "alpha": 32},
        "predictions": {"enabled": True, "sample_count": 5, "sample_frequency": "steps", "step_interval": 50},
    }


def seed_job(store: Any, *, steps: int, total_steps: int | None = None, status: str = "running", gpu: bool = True,
             samples: int = 0, rounds: int = 0, name: str = "seeded", lr: float = 2e-4, cost_per_hour: float = 1.8,
             budget: float | None = None, seconds_per_step: float = 0.5, eval_every: int = 50,
             tokens_per_sample: float = 256.0, spike_step: int | None = None, loss_scale: float = 1.0,
             batch: int = 8, accum: int = 2, provider: str = "local", chunk: int = 20_000) -> JobRecord:
    """A job that has run ``steps`` steps (every step logged), with ``samples`` x ``rounds`` predictions."""
    total = total_steps or steps
    now = utcnow()
    started = now - timedelta(seconds=steps * seconds_per_step)
    spent = steps * seconds_per_step / 3600 * cost_per_hour
    cfg = seed_config(name, lr=lr, batch=batch, accum=accum, max_steps=total)
    job = store.create_job(JobRecord(
        id=new_id("job"), status=status, provider=provider, config=cfg, config_name=name,
        model_name=cfg["model"]["name"], method="sft", gpu_type="A100 80GB" if gpu else "CPU", gpu_count=1,
        budget_limit_usd=budget, cost_per_hour=cost_per_hour if gpu else 0.0, total_cost_usd=spent if gpu else 0.0,
        progress=steps / total, current_step=steps, total_steps=total, epoch=3 * steps / total, started_at=started,
        completed_at=now if status in ("completed", "failed", "cancelled", "budget_stopped") else None,
        final_loss=None,
    ))
    rng = np.random.default_rng(7)
    s = np.arange(1, steps + 1)
    loss = loss_scale * (0.4 + 2.1 * np.exp(-s / max(1.0, total / 4))) + rng.normal(0, 0.02, steps)
    spike = spike_step if spike_step is not None else max(1, steps // 3)
    loss[spike - 1] = SPIKE_LOSS
    sps = 12.0 + rng.normal(0, 0.3, steps)
    cols: dict[str, np.ndarray] = {
        "epoch": 3 * s / total, "loss": loss, "learning_rate": lr * 0.5 * (1 + np.cos(np.pi * s / total)),
        "grad_norm": 1.0 + 0.3 * np.sin(s / 40.0), "samples_per_sec": sps, "tokens_per_sec": sps * tokens_per_sample,
        "cost_usd": s * seconds_per_step / 3600 * (cost_per_hour if gpu else 0.0),
    }
    if gpu:
        cols.update(gpu_memory_mb=30_000 + 500 * np.sin(s / 100.0), gpu_memory_total_mb=np.full(steps, 81_920.0),
                    gpu_util_pct=92 + 3 * np.sin(s / 7.0), gpu_temp_c=64 + 2 * np.sin(s / 50.0))
    else:
        cols.update(cpu_pct=180 + 10 * np.sin(s / 9.0), ram_mb=2_048 + s * 0.01)
    evals = s % eval_every == 0
    t0 = started.timestamp()
    names = list(cols)
    values = np.column_stack([cols[n] for n in names])
    rows = []
    for i in range(steps):
        row = {"step": int(s[i]), "timestamp": _ts(t0 + s[i] * seconds_per_step)}
        row.update(zip(names, values[i].tolist()))
        if evals[i]:
            row["eval_loss"] = float(loss[i] + 0.05) if i != spike - 1 else 0.45
        rows.append(row)
        if len(rows) >= chunk:
            store.upsert_metrics(job.id, rows)
            rows = []
    store.upsert_metrics(job.id, rows)
    if samples and rounds:
        store.upsert_predictions(job.id, prediction_rows(samples, rounds, steps, t0, seconds_per_step))
    return store.get_job(job.id)


def prediction_rows(samples: int, rounds: int, steps: int, t0: float = 0.0, seconds_per_step: float = 0.5
                    ) -> list[dict[str, Any]]:
    words = EXPECTED.split()
    out = []
    at = np.linspace(0, steps, rounds).astype(int)
    for k, step in enumerate(at):
        frac = (k + 1) / rounds
        for i in range(samples):
            sid = f"s{i:03d}"
            quality = 0.05 if i == 0 else min(1.0, frac * (0.6 + 0.4 * (i % 5) / 4))
            if i == 1 and rounds > 2:  # peaks at the round before last, then loses most of it
                quality = 0.95 if k == rounds - 2 else (0.2 if k == rounds - 1 else frac * 0.8)
            keep = int(round(quality * len(words)))
            generated = " ".join(words[:keep] + ["banana"] * (len(words) - keep))
            out.append({
                "step": int(step), "epoch": 3 * step / max(1, steps), "sample_id": sid, "prompt": f"Describe scene {i}.",
                "generated_text": generated, "expected_text": EXPECTED, "bleu": round(100 * quality, 3),
                "rouge_l": round(quality, 4), "exact_match": 1.0 if keep == len(words) else 0.0,
                "timestamp": _ts(t0 + step * seconds_per_step),
            })
    return out


def add_steps(store: Any, job: JobRecord, first: int, count: int, *, seconds_per_step: float = 0.5,
              gpu: bool = True) -> None:
    """``count`` more logged steps after ``first - 1``, as a live trainer would write between two refreshes."""
    now = utcnow().timestamp()
    rows = []
    for k in range(count):
        step = first + k
        row = {"step": step, "timestamp": _ts(now - (count - k) * seconds_per_step), "loss": 0.4 + 0.01 * (k % 7),
               "learning_rate": 1e-4, "grad_norm": 1.0, "samples_per_sec": 12.0, "tokens_per_sec": 3072.0,
               "cost_usd": step * seconds_per_step / 3600 * 1.8, "epoch": step / 1000}
        row.update({"gpu_memory_mb": 30_000.0, "gpu_util_pct": 93.0, "gpu_temp_c": 65.0} if gpu else
                   {"cpu_pct": 150.0, "ram_mb": 2_100.0})
        rows.append(row)
    store.upsert_metrics(job.id, rows)
    store.update_job(job.id, current_step=first + count - 1)


def _ts(epoch_s: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(float(epoch_s), tz=timezone.utc)

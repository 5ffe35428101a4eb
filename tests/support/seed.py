"""Seed a store with a realistic finished job (metrics, predictions, an error, a model) without training."""

from __future__ import annotations

import math
from typing import Any

from core.store.records import DatasetRecord, JobRecord, ModelRecord, new_id


def seed_finished_job(store: Any, *, steps: int = 60, status: str = "completed", samples: int = 3) -> JobRecord:
    ds = store.add_dataset(DatasetRecord(id="ds_seed", name="seed.jsonl", content_hash="seedhash", path="/tmp/seed.jsonl",
                                        format="chat", row_count=100, valid_rows=100))
    cfg = {"name": "seeded", "model": {"name": "org/base-model"}, "data": {"train_path": ds.id},
           "training": {"method": "sft"}}
    job = store.create_job(JobRecord(id=new_id("job"), provider="local", config=cfg, config_name="seeded",
                                     dataset_id=ds.id, model_name="org/base-model", method="sft", status="queued",
                                     budget_limit_usd=2.0, cost_per_hour=0.5, gpu_type="CPU"))
    store.transition_job(job.id, "provisioning", provider_ref="local:1:0:" + job.id)
    store.transition_job(job.id, "running")
    store.upsert_metrics(job.id, [
        {"step": s, "epoch": s / 20, "loss": 3.0 * math.exp(-s / 20) + 0.5, "learning_rate": 1e-3 * (1 - s / steps),
         "grad_norm": 1.0, "samples_per_sec": 100.0, "tokens_per_sec": 3000.0, "cpu_pct": 90.0, "ram_mb": 900.0,
         "cost_usd": 0.01 * s}
        for s in range(1, steps + 1)])
    store.upsert_metrics(job.id, [{"step": s, "eval_loss": 3.0 * math.exp(-s / 20) + 0.7} for s in (20, 40, 60)])
    preds = []
    for step in (0, steps // 2, steps):
        for i in range(samples):
            good = step >= steps // 2
            preds.append({"step": step, "epoch": step / 20, "sample_id": f"line_{i}", "prompt": f"user: question {i}",
                          "generated_text": f"answer {i}" if good else "noise", "expected_text": f"answer {i}",
                          "bleu": 100.0 if good else 0.0, "rouge_l": 1.0 if good else 0.0, "exact_match": float(good),
                          "length_ratio": 1.0, "scores": {}})
    store.upsert_predictions(job.id, preds)
    store.update_job(job.id, current_step=steps, total_steps=steps, progress=1.0, epoch=steps / 20,
                     final_loss=0.55, artifact_path="/tmp/artifact", total_cost_usd=0.6)
    if status == "completed":
        store.transition_job(job.id, "completing")
        store.complete_job(job.id, ModelRecord(id=new_id("model"), name="base-model-finetuned-seed", source_job_id=job.id,
                                               base_model="org/base-model", dataset_id=ds.id, dataset_hash="seedhash",
                                               dataset_size=100, artifact_path="/tmp/artifact",
                                               metrics={"final_loss": 0.55, "bleu": 100.0, "rouge_l": 1.0,
                                                        "bleu_first": 0.0},
                                               metadata={"training_method": "sft", "total_cost_usd": 0.6}))
    else:
        store.add_error(job.id, "cuda_oom", "The GPU ran out of memory", "Traceback (most recent call last): ...",
                        "Lower training.batch_size")
        store.transition_job(job.id, status, reason="The GPU ran out of memory")
    return store.get_job(job.id)

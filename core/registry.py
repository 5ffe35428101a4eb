"""The model registry: one ``llm_models`` row per finished job, with its lineage (spec §1.7, issue 8)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.store.records import JobRecord, ModelRecord, new_id


def model_name_for(job: JobRecord) -> str:
    # The spec spells it "X-fine-tuned" in one place and "<base>-finetuned" in another; the job's short id
    # keeps names unique when the same base is tuned twice.
    base = Path(job.model_name or "model").name if job.model_name else "model"
    return f"{base}-finetuned-{job.id[-8:]}"


def final_scores(store: Any, job_id: str) -> dict[str, Any]:
    """Mean scores of the last predictions round, and of the first one for comparison."""
    rows = store.get_predictions(job_id)
    if not rows:
        return {}
    steps = sorted({r["step"] for r in rows})

    def mean(step: int, key: str) -> float | None:
        vals = [r[key] for r in rows if r["step"] == step and r.get(key) is not None]
        return round(sum(vals) / len(vals), 4) if vals else None

    last, first = steps[-1], steps[0]
    return {
        "bleu": mean(last, "bleu"), "rouge_l": mean(last, "rouge_l"), "exact_match": mean(last, "exact_match"),
        "bleu_first": mean(first, "bleu"), "rouge_l_first": mean(first, "rouge_l"), "scored_step": last,
        "samples": len([r for r in rows if r["step"] == last]),
    }


def artifact_location(path: str | None) -> dict[str, Any]:
    """Where the trained weights live: a local folder, a Hugging Face repo, or a provider's output not yet retrieved.

    The spec's sample registry row pointed at the pod's own disk, gone once the pod is released (spec §1.7
    [bug]); the kind tells the Models screen which actions can work on this machine.
    """
    if not path:
        return {"kind": "none", "uri": None}
    if path.startswith("hf://"):
        repo = path.removeprefix("hf://")
        return {"kind": "huggingface", "repo": repo, "uri": path}
    local = Path(path).expanduser()
    if local.is_dir():
        return {"kind": "local", "path": str(local), "uri": local.resolve().as_uri()}
    return {"kind": "provider", "uri": path}


def _run_summary(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    try:
        return json.loads((Path(path) / "run_summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def record_action(store: Any, model_id: str, kind: str, info: dict[str, Any]) -> ModelRecord:
    """Remember what was done with a model (merged, pushed, exported, registered, served) in its metadata."""
    from core.store.records import utcnow

    model = store.get_model(model_id)
    meta = dict(model.metadata or {})
    actions = dict(meta.get("actions") or {})
    actions[kind] = {**info, "at": utcnow().isoformat(timespec="seconds")}
    meta["actions"] = actions
    return store.update_model(model_id, metadata=meta)


def loss_curve(store: Any, model: ModelRecord) -> list[dict[str, Any]]:
    """The source job's loss and eval loss by step, for the small curve on the model's detail."""
    if not model.source_job_id:
        return []
    rows = store.get_metrics(model.source_job_id, columns=("loss", "eval_loss", "epoch"))
    return [r for r in rows if r.get("loss") is not None or r.get("eval_loss") is not None]


def build_model_record(store: Any, job: JobRecord) -> ModelRecord:
    cfg = job.config or {}
    lora = cfg.get("lora") or {}
    training = cfg.get("training") or {}
    dataset = None
    if job.dataset_id:
        try:
            dataset = store.get_dataset(job.dataset_id)
        except Exception:  # noqa: BLE001 - lineage is best effort when the dataset row was deleted
            dataset = None
    hours = None
    if job.started_at and job.completed_at:
        hours = (job.completed_at - job.started_at).total_seconds() / 3600
    elif job.started_at:
        from core.store.records import utcnow

        hours = (utcnow() - job.started_at).total_seconds() / 3600
    scores = final_scores(store, job.id)
    summary = _run_summary(job.artifact_path)
    adapters = {}
    if lora.get("enabled", True):
        adapters = {"lora": {"path": job.artifact_path, "r": lora.get("r"), "alpha": lora.get("alpha"),
                             "target_modules": lora.get("target_modules")}}
    return ModelRecord(
        id=new_id("model"),
        name=model_name_for(job),
        source="training_job",
        source_job_id=job.id,
        base_model=job.model_name,
        training_config_id=job.training_config_id,
        dataset_id=job.dataset_id,
        dataset_hash=dataset.content_hash if dataset else None,
        dataset_size=job.dataset_size or (dataset.row_count if dataset else None),
        artifact_path=job.artifact_path,
        adapters=adapters,
        metrics={"final_loss": job.final_loss, **scores},
        metadata={
            "training_method": job.method or training.get("method"),
            "final_loss": job.final_loss,
            "training_time_hours": round(hours, 4) if hours is not None else None,
            "train_seconds": summary.get("train_seconds"),
            "dataset_size": job.dataset_size,
            "dataset_hash": dataset.content_hash if dataset else None,
            "total_cost_usd": job.total_cost_usd,
            "provider": job.provider,
            "gpu_type": job.gpu_type,
            "gpu_count": job.gpu_count,
            "steps": job.current_step,
            "artifact": artifact_location(job.artifact_path),
        },
        config=cfg,
    )


def describe(model: dict[str, Any]) -> str:
    """``models show`` for a person: lineage, scores, cost and what was done with the model."""
    meta, metrics = model.get("metadata") or {}, model.get("metrics") or {}
    art = meta.get("artifact") or {}
    hours = meta.get("training_time_hours")
    scores = ", ".join(f"{k} {metrics[k]}" for k in ("bleu", "rouge_l", "exact_match") if metrics.get(k) is not None)
    lines = [
        f"{model['name']}  ({model['id']})",
        f"  base:      {model.get('base_model') or '—'}",
        f"  job:       {model.get('source_job_id') or '—'} · {(meta.get('training_method') or '').upper() or '—'} on "
        f"{meta.get('provider') or '—'} {meta.get('gpu_type') or ''}".rstrip(),
        f"  dataset:   {model.get('dataset_size') or '—'} rows · sha256 {(model.get('dataset_hash') or '—')[:16]}",
        f"  loss:      {metrics.get('final_loss', '—')}" + (f" · {scores}" if scores else ""),
        f"  time:      {f'{hours * 60:.1f} min' if hours is not None else '—'} · cost "
        f"{'$%.4f' % meta['total_cost_usd'] if meta.get('total_cost_usd') is not None else '—'}",
        f"  artifact:  {model.get('artifact_path') or '—'} ({art.get('kind', 'unknown')})",
    ]
    for kind, info in (meta.get("actions") or {}).items():
        detail = info.get("path") or info.get("repo_id") or info.get("shell") or info.get("chat_url") or ""
        lines.append(f"  {kind + ':':<10} {detail}  [{info.get('at', '')}]")
    return "\n".join(lines)

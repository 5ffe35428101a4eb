"""Build the model, the data and the TRL trainer for a job, train, and save the artifact."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import TrainingConfig
from core.jobspec import JobSpec
from trainer import modeling
from trainer.callbacks import (
    HeartbeatCallback,
    MetricsCallback,
    PredictionsCallback,
    RunState,
    StopCallback,
    SystemMonitor,
)
from trainer.data import PreparedData, prepare


@dataclass
class RunResult:
    status: str  # completing | cancelled | budget_stopped
    reason: str | None
    final_loss: float | None
    artifact_path: str | None
    total_steps: int
    train_seconds: float
    prediction_seconds: float
    prediction_calls: int
    dataset_size: int


def world() -> tuple[int, int]:
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def trl_args(cfg: TrainingConfig, spec: JobSpec, data: PreparedData, world_size: int) -> Any:
    """The TRL config for the method, from our config (one place maps our fields onto TRL's)."""
    t = cfg.training
    common: dict[str, Any] = dict(
        output_dir=str(Path(spec.output_dir) / "checkpoints"),
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps or -1,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_steps,
        weight_decay=t.weight_decay,
        optim=t.optim,
        lr_scheduler_type=t.lr_scheduler_type,
        max_grad_norm=t.max_grad_norm,
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=t.bf16,
        fp16=t.fp16,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        seed=t.seed,
        data_seed=cfg.data.seed,
        report_to="none",
        disable_tqdm=True,
        use_cpu=cfg.model.device_map == "cpu",
        dataloader_num_workers=0,
        max_length=cfg.data.max_length,
        ddp_find_unused_parameters=False if world_size > 1 else None,
    )
    if data.eval:
        common.update(eval_strategy="steps" if t.eval_steps else "epoch", eval_steps=t.eval_steps)
    else:
        common.update(eval_strategy="no")
    if t.gradient_checkpointing:
        common["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    method = t.method
    if method == "sft":
        from trl import SFTConfig

        return SFTConfig(packing=t.packing, dataset_num_proc=None, **common)
    if method == "dpo":
        from trl import DPOConfig

        losses = {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, t.sft_weight]} if t.sft_weight else {}
        return DPOConfig(beta=t.beta, **losses, **common)
    if method == "kto":
        from trl import KTOConfig

        return KTOConfig(beta=t.beta, **common)
    if method == "orpo":
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig(beta=t.beta, **common)
    raise ValueError(f"unknown method {method}")


def trainer_class(method: str) -> Any:
    if method == "sft":
        from trl import SFTTrainer

        return SFTTrainer
    if method == "dpo":
        from trl import DPOTrainer

        return DPOTrainer
    if method == "kto":
        from trl import KTOTrainer

        return KTOTrainer
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer


def latest_checkpoint(output_dir: str | Path) -> str | None:
    ckpt_root = Path(output_dir) / "checkpoints"
    if not ckpt_root.is_dir():
        return None
    ckpts = [p for p in ckpt_root.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    if not ckpts:
        return None
    return str(max(ckpts, key=lambda p: int(p.name.split("-")[-1])))


def build_trainer(spec: JobSpec, reporter: Any, run: RunState, *, extra_callbacks: list | None = None,
                  with_console_callbacks: bool = True) -> tuple[Any, PreparedData, Any]:
    """Everything up to ``trainer.train()``; the overhead benchmark builds a plain-TRL twin with no callbacks."""
    import torch
    from datasets import Dataset

    cfg = spec.config
    rank, world_size = world()
    data = prepare(cfg, spec.dataset_path)
    tokenizer = modeling.load_tokenizer(cfg)
    model = modeling.load_model(cfg, distributed=world_size > 1)
    args = trl_args(cfg, spec, data, world_size)
    torch.manual_seed(cfg.training.seed)
    callbacks: list[Any] = []
    if with_console_callbacks:
        samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps * world_size
        callbacks += [
            MetricsCallback(reporter, run, samples_per_step),
            HeartbeatCallback(reporter, run),
            StopCallback(reporter, run, spec.budget_usd or cfg.budget.max_usd, spec.max_hours or cfg.budget.max_hours),
        ]
        if cfg.predictions.enabled and data.samples:
            p = cfg.predictions
            callbacks.append(PredictionsCallback(
                reporter, run, tokenizer, data.samples, p.sample_frequency, p.step_interval, p.max_new_tokens,
                p.temperature, p.top_p,
            ))
    callbacks += extra_callbacks or []
    kwargs: dict[str, Any] = dict(
        model=model, args=args, train_dataset=Dataset.from_list(data.train),
        eval_dataset=Dataset.from_list(data.eval) if data.eval else None, processing_class=tokenizer,
        callbacks=callbacks, peft_config=modeling.peft_config(cfg),
    )
    trainer = trainer_class(cfg.training.method)(**kwargs)
    return trainer, data, tokenizer


def train(spec: JobSpec, reporter: Any, *, resume: bool = False, run: RunState | None = None) -> RunResult:
    cfg = spec.config
    rank, world_size = world()
    run = run or RunState(is_main=rank == 0, cost_per_hour=spec.cost_per_hour)
    if spec.started_epoch_s:
        # Billing started when the machine did, not when Python did (matters on resume and slow installs).
        run.prior_cost_usd = max(0.0, time.time() - spec.started_epoch_s) / 3600.0 * spec.cost_per_hour
    trainer, data, tokenizer = build_trainer(spec, reporter, run)
    monitor = SystemMonitor(reporter, run, spec.system_sample_s).start()
    t0 = time.monotonic()
    try:
        ckpt = latest_checkpoint(spec.output_dir) if resume else None
        output = trainer.train(resume_from_checkpoint=ckpt)
    finally:
        monitor.stop()
    train_seconds = time.monotonic() - t0
    artifact = None
    if run.is_main:
        artifact = save_artifact(trainer, tokenizer, spec, data, train_seconds, run)
    final_loss = run.last_loss if run.last_loss is not None else _f(getattr(output, "training_loss", None))
    status = run.stop_reason or "completing"
    return RunResult(
        status=status, reason=run.stop_detail, final_loss=final_loss, artifact_path=artifact,
        total_steps=trainer.state.global_step, train_seconds=train_seconds,
        prediction_seconds=run.prediction_seconds, prediction_calls=run.prediction_calls,
        dataset_size=len(data.train) + len(data.eval),
    )


def save_artifact(trainer: Any, tokenizer: Any, spec: JobSpec, data: PreparedData, train_seconds: float,
                  run: RunState) -> str:
    """The adapter (or full model), tokenizer, training args and the job's config, in ``output_dir/final``."""
    final = Path(spec.output_dir) / "final"
    final.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    (final / "training_args.json").write_text(trainer.args.to_json_string(), encoding="utf-8")
    (final / "console_config.json").write_text(spec.config.model_dump_json(indent=2), encoding="utf-8")
    summary = {
        "job_id": spec.job_id, "base_model": spec.config.model.name, "method": spec.config.training.method,
        "format": data.fmt, "train_rows": len(data.train), "eval_rows": len(data.eval),
        "global_step": trainer.state.global_step, "train_seconds": round(train_seconds, 2),
        "final_loss": run.last_loss, "stop_reason": run.stop_reason,
        "log_history": trainer.state.log_history[-5:],
    }
    (final / "run_summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return str(final)


def _f(x: Any) -> float | None:
    try:
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
    except (TypeError, ValueError):
        return None

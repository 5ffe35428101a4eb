"""Build the model, the data and the TRL trainer for a job, train, and save the artifact."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import TrainingConfig
from core.jobspec import JobSpec
from trainer import checkpoints, modeling
from trainer.callbacks import (
    HeartbeatCallback,
    MetricsCallback,
    PredictionsCallback,
    RunState,
    StopCallback,
    SystemMonitor,
)
from trainer.data import PreparedData, prepare
from trainer.state import world

# The end-of-turn marker of the ChatML fallback: generated answers are cut there (it is plain text to a base
# model's tokenizer, so skip_special_tokens does not remove it).
_CHATML_END = "<|im_end|>"


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
    cost_usd: float = 0.0
    resumed_from: str | None = None


@dataclass
class Built:
    trainer: Any
    data: PreparedData
    tokenizer: Any
    chat_template_source: str


def trl_args(cfg: TrainingConfig, spec: JobSpec, data: PreparedData, world_size: int) -> Any:
    """The TRL config for the method, from our config (one place maps our fields onto TRL's)."""
    t = cfg.training
    common: dict[str, Any] = dict(
        output_dir=str(checkpoints.checkpoint_root(spec.output_dir)),
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
        # TRL defaults these to on; ours are explicit (transformers 5 renamed gradient_ to activation_).
        activation_checkpointing=t.gradient_checkpointing,
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
        use_liger_kernel=modeling.use_liger(cfg),
    )
    if world_size > 1:
        common["ddp_find_unused_parameters"] = False
    if data.eval:
        common.update(eval_strategy="steps" if t.eval_steps else "epoch", eval_steps=t.eval_steps)
    else:
        common.update(eval_strategy="no")
    if t.gradient_checkpointing:
        common["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    method = t.method
    if method == "sft":
        from trl import SFTConfig

        return SFTConfig(packing=t.packing, padding_free=t.padding_free, dataset_num_proc=None, **common)
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
    if method == "orpo":
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # the screens already mark ORPO experimental
        from trl.experimental.orpo import ORPOTrainer

        return ORPOTrainer
    raise ValueError(f"unknown method {method}")


def latest_checkpoint(output_dir: str | Path) -> str | None:
    return checkpoints.latest_checkpoint(output_dir)


def console_callbacks(spec: JobSpec, reporter: Any, run: RunState, tokenizer: Any, data: PreparedData,
                      world_size: int, stop_text: str | None) -> list[Any]:
    cfg = spec.config
    samples_per_step = cfg.training.batch_size * cfg.training.gradient_accumulation_steps * world_size
    callbacks: list[Any] = [
        MetricsCallback(reporter, run, samples_per_step),
        HeartbeatCallback(reporter, run),
        StopCallback(reporter, run, spec.budget_usd or cfg.budget.max_usd, spec.max_hours or cfg.budget.max_hours),
    ]
    p = cfg.predictions
    if p.enabled and data.samples:
        callbacks.append(PredictionsCallback(
            reporter, run, tokenizer, data.samples, p.sample_frequency, p.step_interval, p.max_new_tokens,
            p.temperature, p.top_p, seed=cfg.training.seed, stop_text=stop_text,
        ))
    return callbacks


def build_trainer(spec: JobSpec, reporter: Any, run: RunState, *, extra_callbacks: list | None = None,
                  with_console_callbacks: bool = True, data: PreparedData | None = None) -> Built:
    """Everything up to ``trainer.train()``; the overhead benchmark builds a plain-TRL twin with no callbacks."""
    from datasets import Dataset

    cfg = spec.config
    _, world_size = world()
    data = data or prepare(cfg, spec.dataset_path)  # before any model loads: a bad row fails in a second
    conversational = any(isinstance(v, list) for row in data.train[:1] for v in row.values())
    tokenizer, template_source = modeling.load_tokenizer(cfg, needs_chat_template=conversational)
    model = modeling.load_model(cfg, distributed=world_size > 1)
    args = trl_args(cfg, spec, data, world_size)
    stop_text = _CHATML_END if template_source == "fallback" else None
    callbacks = console_callbacks(spec, reporter, run, tokenizer, data, world_size, stop_text) \
        if with_console_callbacks else []
    callbacks += extra_callbacks or []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*use_liger_kernel.*", category=FutureWarning)
        trainer = trainer_class(cfg.training.method)(
            model=model, args=args, train_dataset=Dataset.from_list(data.train),
            eval_dataset=Dataset.from_list(data.eval) if data.eval else None, processing_class=tokenizer,
            callbacks=callbacks, peft_config=modeling.peft_config(cfg),
        )
    return Built(trainer, data, tokenizer, template_source)


def train(spec: JobSpec, reporter: Any, *, resume: bool = False, run: RunState | None = None,
          extra_callbacks: list | None = None, data: PreparedData | None = None) -> RunResult:
    cfg = spec.config
    rank, world_size = world()
    run = run or RunState(is_main=rank == 0, cost_per_hour=spec.cost_per_hour)
    run.cost_per_hour = spec.cost_per_hour
    run.prior_cost_usd = spec.prior_cost_usd
    if spec.started_epoch_s:
        # Billing started when the machine did, not when Python did (matters after slow installs).
        run.prior_cost_usd += max(0.0, time.time() - spec.started_epoch_s) / 3600.0 * spec.cost_per_hour
    ckpt = None
    if resume:
        if run.is_main:
            for path in checkpoints.remove_incomplete(spec.output_dir):
                print(f"[trainer] removed the incomplete checkpoint {path}", flush=True)
        ckpt = checkpoints.latest_checkpoint(spec.output_dir)
        print(f"[trainer] resuming from {ckpt}" if ckpt else "[trainer] no checkpoint to resume from; starting "
              "from step 0", flush=True)
    built = build_trainer(spec, reporter, run, extra_callbacks=extra_callbacks, data=data)
    trainer = built.trainer
    if run.is_main:
        print(f"[trainer] rank {rank} of {world_size} reports; chat template: {built.chat_template_source}",
              flush=True)
    else:
        print(f"[trainer] rank {rank} of {world_size} trains without reporting", flush=True)
    monitor = SystemMonitor(reporter, run, spec.system_sample_s).start()
    t0 = time.monotonic()
    try:
        output = trainer.train(resume_from_checkpoint=ckpt)
    finally:
        monitor.stop()
    train_seconds = time.monotonic() - t0
    artifact = save_artifact(trainer, built, spec, train_seconds, run, ckpt)
    final_loss = run.last_loss if run.last_loss is not None else _f(getattr(output, "training_loss", None))
    return RunResult(
        status=run.stop_reason or "completing", reason=run.stop_detail, final_loss=final_loss,
        artifact_path=artifact, total_steps=trainer.state.global_step, train_seconds=train_seconds,
        prediction_seconds=run.prediction_seconds, prediction_calls=run.prediction_calls,
        dataset_size=len(built.data.train) + len(built.data.eval), cost_usd=round(run.cost_now(), 6),
        resumed_from=ckpt,
    )


def save_artifact(trainer: Any, built: Built, spec: JobSpec, train_seconds: float, run: RunState,
                  resumed_from: str | None) -> str | None:
    """The adapter (or full model), tokenizer, training args, the job's config and the run's log history, in
    ``output_dir/final``. Every rank calls ``save_model`` (it synchronises processes); rank 0 writes the rest."""
    final = Path(spec.output_dir) / "final"
    trainer.save_model(str(final))
    if not run.is_main:
        return None
    data = built.data
    built.tokenizer.save_pretrained(str(final))
    (final / "training_args.json").write_text(trainer.args.to_json_string(), encoding="utf-8")
    (final / "console_config.json").write_text(spec.config.model_dump_json(indent=2), encoding="utf-8")
    summary = {
        "job_id": spec.job_id, "base_model": spec.config.model.name, "method": spec.config.training.method,
        "format": data.fmt, "train_rows": len(data.train), "eval_rows": len(data.eval), "skipped_rows": data.skipped,
        "global_step": trainer.state.global_step, "max_steps": trainer.state.max_steps,
        "train_seconds": round(train_seconds, 2), "final_loss": run.last_loss, "stop_reason": run.stop_reason,
        "resumed_from": resumed_from, "chat_template": built.chat_template_source,
        "prediction_seconds": round(run.prediction_seconds, 3), "prediction_calls": run.prediction_calls,
    }
    (final / "run_summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    (final / "log_history.json").write_text(json.dumps(trainer.state.log_history, default=str), encoding="utf-8")
    return str(final)


def _f(x: Any) -> float | None:
    try:
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)
    except (TypeError, ValueError):
        return None

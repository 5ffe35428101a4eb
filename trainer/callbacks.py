"""TrainerCallbacks that report to the console. Each does nothing off rank 0, except the stop decisions,
which rank 0 makes and broadcasts so every process stops at the same step."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

from trainer import scoring


@dataclass
class RunState:
    """Shared between the callbacks and the run loop."""

    is_main: bool = True
    stop_reason: str | None = None  # None | "cancelled" | "budget_stopped"
    stop_detail: str | None = None
    sigterm: bool = False
    started_monotonic: float = field(default_factory=time.monotonic)
    prior_cost_usd: float = 0.0
    cost_per_hour: float = 0.0
    last_loss: float | None = None
    total_steps: int | None = None
    prediction_seconds: float = 0.0
    prediction_calls: int = 0
    current_step: int = 0

    def cost_now(self) -> float:
        return self.prior_cost_usd + (time.monotonic() - self.started_monotonic) / 3600.0 * self.cost_per_hour


def _broadcast_flag(flag: bool) -> bool:
    """Rank 0's decision, everywhere. Without a process group it is the flag itself."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return flag
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


class MetricsCallback(TrainerCallback):
    """Loss, eval loss, learning rate, grad norm, epoch, throughput and ETA at every logging step."""

    SKIP = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}

    def __init__(self, reporter: Any, run: RunState, samples_per_step: int) -> None:
        self.reporter = reporter
        self.run = run
        self.samples_per_step = samples_per_step
        self._t_last: float | None = None
        self._step_last = 0
        self._tokens_last: float | None = None
        self._t_begin = time.monotonic()
        self._pred_time_seen = 0.0

    def on_train_begin(self, args, state, control, **kw):
        self.run.total_steps = state.max_steps
        self._t_last, self._step_last = time.monotonic(), state.global_step
        self._t_begin = time.monotonic()
        if self.run.is_main:
            self.reporter.job(total_steps=state.max_steps, current_step=state.global_step)

    def on_log(self, args, state, control, logs=None, **kw):
        if not self.run.is_main or not logs:
            return
        if "train_runtime" in logs:  # the end-of-training summary, not a step
            if "train_loss" in logs:
                self.reporter.job(final_loss=float(logs["train_loss"]))
            return
        now = time.monotonic()
        row: dict[str, Any] = {"step": state.global_step, "epoch": _f(state.epoch)}
        for src, dst in (("loss", "loss"), ("eval_loss", "eval_loss"), ("learning_rate", "learning_rate"),
                         ("grad_norm", "grad_norm")):
            if src in logs:
                row[dst] = _f(logs[src])
        if "loss" in logs:
            self.run.last_loss = _f(logs["loss"])
            steps = state.global_step - self._step_last
            dt = now - (self._t_last or now)
            if steps > 0 and dt > 0:
                # Generation time is excluded so throughput reflects training alone.
                dt = max(dt - self._pending_prediction_time(), 1e-6)
                row["samples_per_sec"] = round(steps * self.samples_per_step / dt, 4)
                tokens = _tokens_seen(state, logs)
                if tokens is not None and self._tokens_last is not None:
                    row["tokens_per_sec"] = round((tokens - self._tokens_last) / dt, 2)
                self._tokens_last = tokens
            self._t_last, self._step_last = now, state.global_step
        row["cost_usd"] = round(self.run.cost_now(), 6)
        self.reporter.metrics([row])
        progress = state.global_step / state.max_steps if state.max_steps else 0.0
        elapsed = now - self._t_begin
        eta = elapsed / max(progress, 1e-9) * (1 - progress) if progress > 0 else None
        self.reporter.job(current_step=state.global_step, epoch=_f(state.epoch), progress=round(progress, 4),
                          total_cost_usd=round(self.run.cost_now(), 6),
                          estimate={"eta_seconds": round(eta, 1) if eta is not None else None})

    def _pending_prediction_time(self) -> float:
        delta = self.run.prediction_seconds - self._pred_time_seen
        self._pred_time_seen = self.run.prediction_seconds
        return delta


def _tokens_seen(state: Any, logs: dict[str, Any]) -> float | None:
    if "num_tokens" in logs:  # TRL's running count of tokens trained on
        return float(logs["num_tokens"])
    n = getattr(state, "num_input_tokens_seen", None)
    return float(n) if n else None


def _f(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


class HeartbeatCallback(TrainerCallback):
    def __init__(self, reporter: Any, run: RunState) -> None:
        self.reporter, self.run = reporter, run

    def on_step_end(self, args, state, control, **kw):
        self.run.current_step = state.global_step
        if self.run.is_main:
            from datetime import datetime, timezone

            progress = state.global_step / state.max_steps if state.max_steps else 0.0
            self.reporter.heartbeat(heartbeat_at=datetime.now(timezone.utc).isoformat(),
                                    current_step=state.global_step, progress=round(progress, 4),
                                    epoch=_f(state.epoch))


class StopCallback(TrainerCallback):
    """Cancel (the job's flag or SIGTERM) and the budget guard. Both save a checkpoint, then stop."""

    def __init__(self, reporter: Any, run: RunState, budget_usd: float | None, max_hours: float | None) -> None:
        self.reporter, self.run = reporter, run
        self.budget_usd, self.max_hours = budget_usd, max_hours
        self._step_time: float | None = None
        self._t_prev: float | None = None

    def on_step_end(self, args, state, control, **kw):
        now = time.monotonic()
        if self._t_prev is not None:
            dt = now - self._t_prev
            self._step_time = dt if self._step_time is None else 0.8 * self._step_time + 0.2 * dt
        self._t_prev = now
        reason, detail = None, None
        if self.run.is_main:
            reason, detail = self._decide(args)
        stop = _broadcast_flag(reason is not None)
        if stop:
            self.run.stop_reason = self.run.stop_reason or reason or "cancelled"
            self.run.stop_detail = self.run.stop_detail or detail
            control.should_save = True
            control.should_training_stop = True

    def _decide(self, args) -> tuple[str | None, str | None]:
        if self.run.sigterm or self.reporter.cancel_requested():
            return "cancelled", "Cancelled by the user; the last checkpoint was saved."
        # Guard one interval ahead: stop now if the next checkpoint-and-stop would land past the limit.
        lookahead = (self._step_time or 0.0) * 2
        if self.budget_usd and self.run.cost_per_hour > 0:
            projected = self.run.cost_now() + lookahead / 3600.0 * self.run.cost_per_hour
            if projected >= self.budget_usd:
                return "budget_stopped", (
                    f"Stopped at ${self.run.cost_now():.4f} before passing the ${self.budget_usd:.2f} budget;"
                    " the last checkpoint was saved.")
        if self.max_hours:
            elapsed_h = (time.monotonic() - self.run.started_monotonic + lookahead) / 3600.0
            if elapsed_h >= self.max_hours:
                return "budget_stopped", f"Stopped at the {self.max_hours:g} h time limit; the checkpoint was saved."
        return None, None


class PredictionsCallback(TrainerCallback):
    """Generates answers for a fixed set of held-out prompts and scores them against the expected answers."""

    def __init__(self, reporter: Any, run: RunState, tokenizer: Any, samples: list[dict[str, Any]],
                 frequency: str, step_interval: int | None, max_new_tokens: int, temperature: float,
                 top_p: float, batch_size: int = 8) -> None:
        self.reporter, self.run, self.tok = reporter, run, tokenizer
        self.samples = samples
        self.frequency, self.step_interval = frequency, step_interval
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.batch_size = batch_size
        self._done_steps: set[int] = set()

    def on_train_begin(self, args, state, control, model=None, **kw):
        # A baseline before any update makes "scores rise" visible from the first point.
        if state.global_step == 0:
            self._generate(model, state)

    def on_step_end(self, args, state, control, model=None, **kw):
        if self.frequency == "steps" and self.step_interval and state.global_step % self.step_interval == 0:
            self._generate(model, state)

    def on_epoch_end(self, args, state, control, model=None, **kw):
        if self.frequency == "epoch":
            self._generate(model, state)

    def on_evaluate(self, args, state, control, model=None, **kw):
        if self.frequency == "eval":
            self._generate(model, state)

    def on_train_end(self, args, state, control, model=None, **kw):
        # The final model's answers are always recorded, whatever the frequency.
        self._generate(model, state)

    def _generate(self, model: Any, state: Any) -> None:
        if not self.run.is_main or model is None or not self.samples or state.global_step in self._done_steps:
            return
        self._done_steps.add(state.global_step)
        t0 = time.monotonic()
        rows = generate_and_score(model, self.tok, self.samples, step=state.global_step, epoch=_f(state.epoch),
                                  max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                  top_p=self.top_p, batch_size=self.batch_size)
        elapsed = time.monotonic() - t0
        self.run.prediction_seconds += elapsed
        self.run.prediction_calls += 1
        self.reporter.predictions(rows)


def render_prompt(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt)
    return str(prompt)


def generate_and_score(model: Any, tokenizer: Any, samples: list[dict[str, Any]], *, step: int, epoch: float | None,
                       max_new_tokens: int, temperature: float, top_p: float, batch_size: int = 8) -> list[dict]:
    import torch

    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    pad_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation needs left padding
    device = next(model.parameters()).device
    try:
        for i in range(0, len(samples), batch_size):
            chunk = samples[i: i + batch_size]
            texts = [
                tokenizer.apply_chat_template(s["prompt"], tokenize=False, add_generation_prompt=True)
                if isinstance(s["prompt"], list) else str(s["prompt"])
                for s in chunk
            ]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            t0 = time.monotonic()
            gen_kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
            if temperature > 0:
                gen_kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
            else:
                gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.no_grad():
                out = model.generate(**enc, **gen_kwargs)
            per_sample = (time.monotonic() - t0) / len(chunk)
            new_tokens = out[:, enc["input_ids"].shape[1]:]
            for s, ids in zip(chunk, new_tokens):
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                sc = scoring.score_all(text, s.get("expected"))
                rows.append({
                    "step": step, "epoch": epoch, "sample_id": s["sample_id"], "prompt": render_prompt(s["prompt"]),
                    "generated_text": text, "expected_text": s.get("expected"), "bleu": sc["bleu"],
                    "rouge_l": sc["rouge_l"], "exact_match": sc["exact_match"], "length_ratio": sc["length_ratio"],
                    "scores": {"cer": sc["cer"], "word_overlap": sc["word_overlap"]},
                    "generation_seconds": round(per_sample, 4),
                })
    finally:
        tokenizer.padding_side = pad_side
        if was_training:
            model.train()
    return rows


class SystemMonitor:
    """Samples GPU (nvidia-ml-py) or CPU/RAM (psutil) in a thread and reports at the current step."""

    def __init__(self, reporter: Any, run: RunState, interval_s: float = 5.0) -> None:
        self.reporter, self.run, self.interval_s = reporter, run, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ftc-system", daemon=True)
        self._nvml = None

    def start(self) -> "SystemMonitor":
        if self.run.is_main:
            self._nvml = _init_nvml()
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def sample(self) -> dict[str, Any]:
        import psutil

        row: dict[str, Any] = {"cpu_pct": psutil.cpu_percent(interval=None),
                               "ram_mb": round(psutil.Process().memory_info().rss / 2**20, 1)}
        if self._nvml is not None:
            row.update(_gpu_sample(self._nvml))
        return row

    def _loop(self) -> None:
        import psutil

        psutil.cpu_percent(interval=None)  # the first call only primes the counter
        while not self._stop.wait(self.interval_s):
            try:
                row = self.sample()
            except Exception:  # noqa: BLE001 - a sensor hiccup must not end training
                continue
            row["step"] = self.run.current_step
            self.reporter.metrics([row])


def _init_nvml() -> Any:
    try:
        import pynvml
        import torch

        if not torch.cuda.is_available():
            return None
        pynvml.nvmlInit()
        idx = torch.cuda.current_device()
        return pynvml.nvmlDeviceGetHandleByIndex(idx)
    except Exception:  # noqa: BLE001 - no NVML, no GPU sampling
        return None


def _gpu_sample(handle: Any) -> dict[str, Any]:
    import pynvml

    mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
    util = pynvml.nvmlDeviceGetUtilizationRates(handle)
    out = {"gpu_memory_mb": round(mem.used / 2**20, 1), "gpu_memory_total_mb": round(mem.total / 2**20, 1),
           "gpu_util_pct": float(util.gpu)}
    try:
        out["gpu_temp_c"] = float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))
        out["gpu_power_w"] = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
    except Exception:  # noqa: BLE001 - not every board exposes these
        pass
    return out


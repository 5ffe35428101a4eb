"""TrainerCallbacks that report to the console.

Each does nothing off rank 0, except the stop decision: rank 0 makes it and broadcasts it so that every process
saves the same checkpoint and stops at the same step. The training thread only appends rows to the reporter's
spool (see report.py); nothing here waits on the network.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any

from transformers import TrainerCallback

from trainer import scoring
from trainer.state import RunState

_CONTROL_GROUP: Any = None


def _broadcast_flag(flag: bool) -> bool:
    """Rank 0's decision, everywhere. Without a process group it is the flag itself.

    The broadcast goes over a CPU (gloo) group even when training uses NCCL, so it never forces a GPU sync.
    """
    try:
        import torch
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return flag
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    global _CONTROL_GROUP
    if _CONTROL_GROUP is None:
        # new_group is collective: every rank reaches this line at the same (first) step.
        _CONTROL_GROUP = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.broadcast(t, src=0, group=_CONTROL_GROUP)
    return bool(t.item())


def _f(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


class MetricsCallback(TrainerCallback):
    """Loss, eval loss, learning rate, grad norm, epoch, throughput, cost and ETA at every logging step.

    Throughput counts the time between ``on_step_begin`` and ``on_step_end`` (forward, backward, optimizer step),
    so evaluation, checkpoint saves and prediction rounds, which happen outside that window, never depress it.
    Tokens are TRL's running ``num_tokens`` (summed over processes); it restarts at 0 with every ``train()`` call.
    The ETA is wall time: steps left times the wall time per step since the first step of this run, which
    includes the periodic evaluations, saves and predictions at their average rate.
    """

    def __init__(self, reporter: Any, run: RunState, samples_per_step: int) -> None:
        self.reporter = reporter
        self.run = run
        self.samples_per_step = samples_per_step
        self._t_step: float | None = None
        self._step_seconds = 0.0  # inside step windows since the last logged loss
        self._step_last = 0
        self._tokens_last: float | None = 0.0
        self._t_first: float | None = None
        self._first_step = 0

    def on_train_begin(self, args, state, control, **kw):
        self.run.total_steps = state.max_steps
        self.run.current_step = state.global_step
        self._step_last = self._first_step = state.global_step
        self._tokens_last = 0.0
        self._t_first = None
        if self.run.is_main:
            self.reporter.job(total_steps=state.max_steps, current_step=state.global_step)

    def on_step_begin(self, args, state, control, **kw):
        if not self.run.is_main:
            return
        now = time.perf_counter()
        self._t_step = now
        if self._t_first is None:
            self._t_first, self._first_step = now, state.global_step

    def on_step_end(self, args, state, control, **kw):
        if self._t_step is not None:
            self._step_seconds += time.perf_counter() - self._t_step
            self._t_step = None

    def on_log(self, args, state, control, logs=None, **kw):
        if not self.run.is_main or not logs:
            return
        if "train_runtime" in logs:  # the end-of-training summary, not a step
            return
        row: dict[str, Any] = {"step": state.global_step, "epoch": _f(state.epoch)}
        for key in ("loss", "eval_loss", "learning_rate", "grad_norm"):
            if key in logs:
                row[key] = _f(logs[key])
        if "loss" in logs:
            self.run.last_loss = _f(logs["loss"])
            row.update(self._throughput(state, logs))
        row["cost_usd"] = round(self.run.cost_now(), 6)
        self.reporter.metrics([row])
        self.reporter.job(**self._job_fields(state))

    def _throughput(self, state: Any, logs: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        steps = state.global_step - self._step_last
        secs = self._step_seconds
        if steps > 0 and secs > 0:
            out["samples_per_sec"] = round(steps * self.samples_per_step / secs, 4)
            tokens = _f(logs.get("num_tokens"))
            if tokens is not None and self._tokens_last is not None and tokens >= self._tokens_last:
                out["tokens_per_sec"] = round((tokens - self._tokens_last) / secs, 2)
            self._tokens_last = tokens
        self._step_last, self._step_seconds = state.global_step, 0.0
        return out

    def _job_fields(self, state: Any) -> dict[str, Any]:
        progress = state.global_step / state.max_steps if state.max_steps else 0.0
        eta = None
        done = state.global_step - self._first_step
        if self._t_first is not None and done > 0 and state.max_steps:
            per_step = (time.perf_counter() - self._t_first) / done
            eta = round(per_step * max(0, state.max_steps - state.global_step), 1)
        return {
            "current_step": state.global_step, "epoch": _f(state.epoch), "progress": round(progress, 4),
            "total_cost_usd": round(self.run.cost_now(), 6),
            "estimate": {"eta_seconds": eta, "prediction_seconds": round(self.run.prediction_seconds, 3),
                         "prediction_calls": self.run.prediction_calls},
        }


class HeartbeatCallback(TrainerCallback):
    """Step, progress and cost with a timestamp; the reporter sends the newest every few seconds."""

    def __init__(self, reporter: Any, run: RunState) -> None:
        self.reporter, self.run = reporter, run

    def on_step_end(self, args, state, control, **kw):
        self.run.current_step = state.global_step
        if self.run.is_main:
            progress = state.global_step / state.max_steps if state.max_steps else 0.0
            self.reporter.heartbeat(heartbeat_at=datetime.now(timezone.utc), current_step=state.global_step,
                                    progress=round(progress, 4), epoch=_f(state.epoch),
                                    total_cost_usd=round(self.run.cost_now(), 6))


class StopCallback(TrainerCallback):
    """Cancel (the job's flag or SIGTERM) and the budget guard. Both save a checkpoint, then stop.

    The guard looks one interval ahead: it stops now when the longest recent step (predictions and evaluations
    included) plus a checkpoint save would carry the cost past the budget or the time past ``max_hours``.
    """

    def __init__(self, reporter: Any, run: RunState, budget_usd: float | None, max_hours: float | None) -> None:
        self.reporter, self.run = reporter, run
        self.budget_usd, self.max_hours = budget_usd, max_hours
        self._intervals: collections.deque[float] = collections.deque(maxlen=8)
        self._t_prev: float | None = None
        self._save_s = 0.0

    def on_train_begin(self, args, state, control, **kw):
        self._t_prev = time.monotonic()

    def on_step_end(self, args, state, control, **kw):
        now = time.monotonic()
        if self._t_prev is not None:
            self._intervals.append(now - self._t_prev)
        self._t_prev = now
        reason, detail = self._decide() if self.run.is_main else (None, None)
        if _broadcast_flag(reason is not None):
            self.run.stop_reason = self.run.stop_reason or reason or "cancelled"
            self.run.stop_detail = self.run.stop_detail or detail
            control.should_save = True
            control.should_training_stop = True

    def on_save(self, args, state, control, **kw):
        if self._t_prev is not None:
            self._save_s = max(self._save_s, time.monotonic() - self._t_prev)

    def lookahead_s(self) -> float:
        return (max(self._intervals) if self._intervals else 0.0) + self._save_s

    def _decide(self) -> tuple[str | None, str | None]:
        if self.run.sigterm or self.reporter.cancel_requested():
            return "cancelled", "Cancelled by the user; a checkpoint was saved."
        ahead = self.lookahead_s()
        if self.budget_usd and self.run.cost_per_hour > 0:
            projected = self.run.cost_now() + ahead / 3600.0 * self.run.cost_per_hour
            if projected >= self.budget_usd:
                return "budget_stopped", (
                    f"Stopped at ${self.run.cost_now():.4f} so as not to pass the ${self.budget_usd:.2f} budget;"
                    " a checkpoint was saved.")
        if self.max_hours:
            elapsed_h = (time.monotonic() - self.run.started_monotonic + ahead) / 3600.0
            if elapsed_h >= self.max_hours:
                return "budget_stopped", f"Stopped at the {self.max_hours:g} h time limit; a checkpoint was saved."
        return None, None


class PredictionsCallback(TrainerCallback):
    """Answers for a fixed set of held-out prompts, generated in batches and scored against the expected answers.

    The time spent generating is recorded per row and in ``RunState.prediction_seconds`` so the monitor can show
    it and leave it out of throughput. Sampling runs under a forked RNG seeded by the step, so predictions are
    reproducible and never change the training run's random stream.
    """

    def __init__(self, reporter: Any, run: RunState, tokenizer: Any, samples: list[dict[str, Any]],
                 frequency: str, step_interval: int | None, max_new_tokens: int, temperature: float,
                 top_p: float, batch_size: int = 8, seed: int = 0, stop_text: str | None = None) -> None:
        self.reporter, self.run, self.tok = reporter, run, tokenizer
        self.samples = samples
        self.frequency, self.step_interval = frequency, step_interval
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.batch_size, self.seed, self.stop_text = batch_size, seed, stop_text
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
                                  top_p=self.top_p, batch_size=self.batch_size, seed=self.seed + state.global_step,
                                  stop_text=self.stop_text)
        self.run.prediction_seconds += time.monotonic() - t0
        self.run.prediction_calls += 1
        self.reporter.predictions(rows)


def render_prompt(prompt: Any) -> str:
    if isinstance(prompt, list):
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in prompt)
    return str(prompt)


def generate_and_score(model: Any, tokenizer: Any, samples: list[dict[str, Any]], *, step: int, epoch: float | None,
                       max_new_tokens: int, temperature: float, top_p: float, batch_size: int = 8, seed: int = 0,
                       stop_text: str | None = None) -> list[dict]:
    import torch

    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    pad_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only generation needs left padding
    device = next(model.parameters()).device
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            for i in range(0, len(samples), batch_size):
                chunk = samples[i: i + batch_size]
                rows += _generate_batch(model, tokenizer, chunk, device, step=step, epoch=epoch,
                                        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                        stop_text=stop_text)
    finally:
        tokenizer.padding_side = pad_side
        if was_training:
            model.train()
    return rows


def _generate_batch(model: Any, tokenizer: Any, chunk: list[dict[str, Any]], device: Any, *, step: int,
                    epoch: float | None, max_new_tokens: int, temperature: float, top_p: float,
                    stop_text: str | None) -> list[dict[str, Any]]:
    texts = [
        tokenizer.apply_chat_template(s["prompt"], tokenize=False, add_generation_prompt=True)
        if isinstance(s["prompt"], list) else str(s["prompt"])
        for s in chunk
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    gen_kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if temperature > 0:
        gen_kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
    else:
        gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    t0 = time.monotonic()
    out = model.generate(**enc, **gen_kwargs)
    per_sample = (time.monotonic() - t0) / len(chunk)
    rows = []
    for s, ids in zip(chunk, out[:, enc["input_ids"].shape[1]:]):
        text = tokenizer.decode(ids, skip_special_tokens=True)
        if stop_text and stop_text in text:
            text = text.split(stop_text, 1)[0]
        text = text.strip()
        sc = scoring.score_all(text, s.get("expected"))
        rows.append({
            "step": step, "epoch": epoch, "sample_id": s["sample_id"], "prompt": render_prompt(s["prompt"]),
            "generated_text": text, "expected_text": s.get("expected"), "bleu": sc["bleu"],
            "rouge_l": sc["rouge_l"], "exact_match": sc["exact_match"], "length_ratio": sc["length_ratio"],
            "scores": {"cer": sc["cer"], "word_overlap": sc["word_overlap"]},
            "generation_seconds": round(per_sample, 4),
        })
    return rows


class SystemMonitor:
    """Samples GPU (nvidia-ml-py) or CPU/RAM (psutil) in a thread and reports them at the current step."""

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
        # NVML numbers every GPU on the machine; torch numbers only the visible ones.
        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        entry = visible[idx] if idx < len(visible) else str(idx)
        if entry.isdigit():
            return pynvml.nvmlDeviceGetHandleByIndex(int(entry))
        return pynvml.nvmlDeviceGetHandleByUUID(entry)
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

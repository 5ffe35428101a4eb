"""Benchmark: what the console's reporting costs a training step. Baseline: plain TRL on the same config.

    python bench/trainer_overhead.py                  # 60 steps per run, 5 alternating rounds
    python bench/trainer_overhead.py --steps 100 --rounds 7
    OMP_NUM_THREADS=1 python bench/trainer_overhead.py --steps 20 --rounds 4   # on a shared, busy machine

Both sides are the same SFTTrainer (tiny demo Llama, LoRA, same data, same arguments), built once each:

- *plain TRL*: no console callback, no reporter, no sampler thread;
- *console*: every callback on (metrics at every step, heartbeat, cancel/budget guard), the reporter spooling to
  disk and flushing to a real SQLite store from its thread, and the system sampler at 1 s (five times the default
  rate); predictions off, since they are measured separately below.

Each round trains both, in alternating order, so both see the same machine load; the ratio is the median of the
per-round ratios of wall time per step (``trainer.train()`` from start to end and, on the console side, until its
rows are in SQLite; model loading excluded). Target: <= 1.03. On a shared machine, the ratio of the process's CPU
time per step (every thread: torch's, the reporter's, the sampler's) is printed too: other processes' load barely
moves it (on a busy machine pin torch to one thread: its spinning OpenMP threads otherwise collapse and the
wall times say more about the neighbours than about the console). Then the predictions callback's cost per call (8 held-out prompts, 24 new tokens, greedy), which the
monitor shows and leaves out of throughput.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def demo_dir(tmp: Path) -> Path:
    for cand in (os.environ.get("FTC_TEST_DEMO_DIR"), os.environ.get("CONSOLE_HOME") and
                 str(Path(os.environ["CONSOLE_HOME"]) / "demo")):
        if cand and (Path(cand) / "tiny-llama" / "model.safetensors").exists():
            return Path(cand)
    from core.demo import build_demo

    print("building the demo model (about a minute)...", file=sys.stderr)
    build_demo(tmp / "demo")
    return tmp / "demo"


def make_spec(demo: Path, tmp: Path, name: str, steps: int, db: Path | None):
    from core.config import TrainingConfig
    from core.demo import build_datasets
    from core.jobspec import JobSpec, SinkSpec
    from core.presets import demo_config_dict

    files = build_datasets(tmp / "data")
    d = demo_config_dict(str(demo / "tiny-llama"), str(files["sft"]), "sft")
    d["data"]["eval_split"] = 0.0  # no evaluation pauses: every step is a training step
    d["training"].update(max_steps=steps, logging_steps=1, save_steps=10**6, warmup_steps=0)
    d["predictions"]["enabled"] = False
    cfg = TrainingConfig.model_validate(d)
    out = tmp / name
    return JobSpec(job_id=f"job_bench_{name}", config=cfg, dataset_path=cfg.data.train_path, output_dir=str(out),
                   sink=SinkSpec(kind="sqlite" if db else "none", path=str(db) if db else None),
                   spool_path=str(out / "spool.jsonl"), system_sample_s=1.0)


class Side:
    def __init__(self, name: str, spec, console: bool) -> None:
        from trainer.callbacks import RunState, SystemMonitor
        from trainer.report import NullReporter, Reporter, SQLiteSink
        from trainer.run import build_trainer

        self.name, self.spec, self.console = name, spec, console
        self.run = RunState()
        self.monitor = None
        if console:
            self.reporter = Reporter(SQLiteSink(spec.sink.path, spec.job_id), spec.job_id, spec.spool_path)
            self.trainer = build_trainer(spec, self.reporter, self.run).trainer
        else:
            self.reporter = NullReporter()
            self.trainer = build_trainer(spec, self.reporter, self.run, with_console_callbacks=False).trainer
        from transformers.trainer_callback import PrinterCallback

        # Both sides would print every step's log dict to stdout: noise here, and a cost that hides the console's.
        self.trainer.remove_callback(PrinterCallback)
        self._monitor_cls = SystemMonitor
        self.per_step: list[float] = []
        self.cpu_per_step: list[float] = []
        self.events_per_step: list[float] = []
        self._event_s = 0.0
        # Time inside the Trainer's callback events on the training thread: what the callbacks themselves cost a
        # step, a figure that the neighbours' load barely moves (the wall-time ratio above it is noisier).
        handler = self.trainer.callback_handler
        call_event = handler.call_event

        def timed(event, *args, **kwargs):
            t = time.perf_counter()
            try:
                return call_event(event, *args, **kwargs)
            finally:
                self._event_s += time.perf_counter() - t

        handler.call_event = timed

    def train_once(self) -> float:
        monitor = self._monitor_cls(self.reporter, self.run, 1.0).start() if self.console else None
        self._event_s = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        self.trainer.train()
        if self.console:
            self.reporter.flush(60)  # the rows of this run are written inside its timing
        steps = self.trainer.state.global_step
        dt, cpu = (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps
        if monitor:
            monitor.stop()
        self.per_step.append(dt)
        self.cpu_per_step.append(cpu)
        self.events_per_step.append(self._event_s / steps)
        return dt


def predictions_cost(demo: Path, tmp: Path, calls: int) -> tuple[float, int, int]:
    from core.config import TrainingConfig
    from core.demo import build_datasets
    from core.presets import demo_config_dict
    from trainer import modeling
    from trainer.callbacks import generate_and_score
    from trainer.data import prepare

    files = build_datasets(tmp / "data")
    cfg = TrainingConfig.model_validate(demo_config_dict(str(demo / "tiny-llama"), str(files["sft"]), "sft"))
    data = prepare(cfg, cfg.data.train_path)
    tok, _ = modeling.load_tokenizer(cfg)
    model = modeling.load_model(cfg)
    p = cfg.predictions
    times = []
    for i in range(calls + 1):
        t0 = time.perf_counter()
        generate_and_score(model, tok, data.samples, step=i, epoch=None, max_new_tokens=p.max_new_tokens,
                           temperature=p.temperature, top_p=p.top_p)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]), len(data.samples), p.max_new_tokens


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="training steps per run")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (each trains both sides)")
    ap.add_argument("--prediction-calls", type=int, default=5)
    args = ap.parse_args()

    import transformers

    transformers.logging.set_verbosity_error()
    from core.store.records import JobRecord
    from core.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory(prefix="ftc-bench-") as t:
        tmp = Path(t)
        demo = demo_dir(tmp)
        db = tmp / "console.db"
        store = SQLiteStore(db)
        store.create_job(JobRecord(id="job_bench_console", status="running"))
        plain = Side("plain TRL", make_spec(demo, tmp, "plain", args.steps, None), console=False)
        ours = Side("console", make_spec(demo, tmp, "console", args.steps, db), console=True)
        plain.train_once(), ours.train_once()  # warm-up: allocator, kernels, caches; not counted
        for side in (plain, ours):
            side.per_step.clear(), side.cpu_per_step.clear(), side.events_per_step.clear()
        ratios, cpu_ratios = [], []
        for r in range(args.rounds):
            first, second = (plain, ours) if r % 2 == 0 else (ours, plain)
            first.train_once(), second.train_once()
            ratios.append(ours.per_step[-1] / plain.per_step[-1])
            cpu_ratios.append(ours.cpu_per_step[-1] / plain.cpu_per_step[-1])
            print(f"round {r + 1}: plain {plain.per_step[-1] * 1e3:7.2f} ms/step   console "
                  f"{ours.per_step[-1] * 1e3:7.2f} ms/step   ratio {ratios[-1]:.3f}   (CPU time ratio "
                  f"{cpu_ratios[-1]:.3f})", flush=True)
        ours.reporter.finish(timeout=60)
        rows = store.count_metrics("job_bench_console")
        pred_s, n_prompts, new_tokens = predictions_cost(demo, tmp, args.prediction_calls)

    print()
    print(f"trainer overhead: tiny Llama SFT (LoRA), {args.steps} steps per run, {args.rounds} alternating rounds, "
          f"torch threads {__import__('torch').get_num_threads()}")
    for side in (plain, ours):
        print(f"  {side.name:<10} {statistics.median(side.per_step) * 1e3:8.2f} ms/step (median; min "
              f"{min(side.per_step) * 1e3:.2f})")
    ratio = statistics.median(ratios)
    print(f"  ratio console / plain TRL: {ratio:.3f} (median of rounds; ratio of minimums "
          f"{min(ours.per_step) / min(plain.per_step):.3f})   target <= 1.03   "
          f"{'OK' if ratio <= 1.03 else 'OVER'}")
    print(f"  CPU time of the process per step (all threads; insensitive to other processes' load): ratio "
          f"{statistics.median(cpu_ratios):.3f} (plain {statistics.median(plain.cpu_per_step) * 1e3:.2f} ms, console "
          f"{statistics.median(ours.cpu_per_step) * 1e3:.2f} ms)")
    ev_ours, ev_plain = statistics.median(ours.events_per_step), statistics.median(plain.events_per_step)
    print(f"  callbacks on the training thread: {(ev_ours - ev_plain) * 1e3:.3f} ms/step more than plain TRL's "
          f"({(ev_ours - ev_plain) / statistics.median(plain.per_step) * 100:.2f}% of its step; console "
          f"{ev_ours * 1e3:.3f} ms, plain {ev_plain * 1e3:.3f} ms)")
    print(f"  the console side wrote {rows} metric rows to SQLite")
    print(f"predictions callback: {pred_s:.3f} s per call ({n_prompts} prompts, {new_tokens} new tokens, greedy) = "
          f"{pred_s / n_prompts * 1e3:.1f} ms per prompt; recorded per row and left out of throughput")
    return 0


if __name__ == "__main__":
    sys.exit(main())

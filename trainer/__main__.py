"""``python -m trainer --config job.json [--resume]``: what runs on the GPU machine.

Exit status: 0 when training finished, was cancelled or stopped at its budget (the job row says which);
1 when it failed (a ``training_errors`` row and the job ``failed`` with a readable reason).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def make_reporter(spec, is_main: bool):
    from trainer.report import NullReporter, Reporter, make_sink

    if not is_main:
        return NullReporter()
    s = spec.sink
    sink = make_sink(s.kind, spec.job_id, path=s.path, url=s.url, token=s.token, port=s.port)
    spool = spec.spool_path or str(Path(spec.output_dir) / "spool.jsonl")
    return Reporter(sink, spec.job_id, spool, cancel_poll_s=spec.cancel_poll_s,
                    heartbeat_interval_s=spec.heartbeat_interval_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="FineTune Console trainer")
    parser.add_argument("--config", required=True, help="job.json written by the console")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    args = parser.parse_args(argv)

    from core.jobspec import JobSpec
    from trainer.callbacks import RunState
    from trainer.failures import classify
    from trainer.run import train, world

    spec = JobSpec.read(args.config)
    rank, _ = world()
    is_main = rank == 0
    Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
    reporter = make_reporter(spec, is_main)
    run = RunState(is_main=is_main, cost_per_hour=spec.cost_per_hour)

    def on_sigterm(signum, frame):  # graceful stop: the StopCallback saves a checkpoint at the next step
        run.sigterm = True

    signal.signal(signal.SIGTERM, on_sigterm)
    reporter.status("running", reason=None)
    try:
        result = train(spec, reporter, resume=args.resume, run=run)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a readable job state
        info = classify(exc)
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        reporter.error(info.error_type, info.message, tb, info.hint)
        reporter.finish("failed", reason=info.message, error_message=info.message)
        return 1
    fields = {"reason": result.reason, "final_loss": result.final_loss, "current_step": result.total_steps,
              "artifact_path": result.artifact_path, "dataset_size": result.dataset_size}
    if result.status == "completing":
        fields["progress"] = 1.0
    print(f"[trainer] {result.status}: {result.total_steps} steps in {result.train_seconds:.1f}s "
          f"(predictions {result.prediction_seconds:.1f}s over {result.prediction_calls} calls)", flush=True)
    if not reporter.finish(result.status, **{k: v for k, v in fields.items() if v is not None}):
        print("[trainer] the store stayed unreachable; rows are kept in the spool for the console to replay",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

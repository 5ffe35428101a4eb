"""``python -m trainer --config job.json [--resume]``: what runs on the GPU machine.

Under ``torchrun`` / ``accelerate launch`` every process runs this; only rank 0 reports (the others get a
``NullReporter``), and all of them stop together when rank 0 decides to (cancel, budget).

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
    # A remote machine gets its sink's token through the provider's secret env, never in the job file it is sent.
    token = s.token or os.environ.get("FTC_SINK_TOKEN") or None
    sink = make_sink(s.kind, spec.job_id, path=s.path, url=s.url, token=token, port=s.port)
    spool = spec.spool_path or str(Path(spec.output_dir) / "spool.jsonl")
    return Reporter(sink, spec.job_id, spool, cancel_poll_s=spec.cancel_poll_s,
                    heartbeat_interval_s=spec.heartbeat_interval_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description="FineTune Console trainer")
    parser.add_argument("--config", required=True, help="job.json written by the console")
    parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    args = parser.parse_args(argv)

    from core.jobspec import JobSpec
    from trainer.state import RunState, world

    spec = JobSpec.read(args.config)
    run = RunState(is_main=world()[0] == 0, cost_per_hour=spec.cost_per_hour)

    def on_sigterm(signum, frame):  # graceful stop: the StopCallback saves a checkpoint at the next step
        run.sigterm = True

    signal.signal(signal.SIGTERM, on_sigterm)
    return run_job(spec, resume=args.resume, run=run)


def run_job(spec, *, resume: bool = False, run=None, extra_callbacks: list | None = None) -> int:
    """Report ``running``, train, and end the job with its final status; returns the process exit status."""
    from trainer.failures import classify
    from trainer.state import RunState, world

    rank, _ = world()
    run = run or RunState(is_main=rank == 0, cost_per_hour=spec.cost_per_hour)
    Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
    reporter = make_reporter(spec, run.is_main)
    reporter.status("running", reason=None)
    try:
        from trainer.data import prepare

        # Pure Python, before torch loads: a dataset nothing can be trained from fails in a second, not after
        # the seconds-to-minutes of importing torch, transformers and TRL.
        data = prepare(spec.config, spec.dataset_path)
        from trainer.run import train  # torch, transformers and TRL load here, inside the error handling

        result = train(spec, reporter, resume=resume, run=run, extra_callbacks=extra_callbacks, data=data)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a readable job state
        info = classify(exc)
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        print(f"[trainer] rank {rank} failed: {info.error_type}: {info.message}\n[trainer] hint: {info.hint}",
              file=sys.stderr, flush=True)
        reporter.error(info.error_type, info.message, tb, info.hint)
        reporter.finish("failed", reason=info.message, error_message=info.message)
        return 1
    fields = {"reason": result.reason, "final_loss": result.final_loss, "current_step": result.total_steps,
              "artifact_path": result.artifact_path, "dataset_size": result.dataset_size,
              "total_cost_usd": result.cost_usd}
    if result.status == "completing":
        fields["progress"] = 1.0
    print(f"[trainer] {result.status}: {result.total_steps} steps in {result.train_seconds:.1f}s "
          f"(predictions {result.prediction_seconds:.1f}s over {result.prediction_calls} calls)", flush=True)
    ok = reporter.finish(result.status, **{k: v for k, v in fields.items() if v is not None})
    if run.is_main:
        print(f"[trainer] reporting: {reporter.sent} entries sent, {reporter.sink_errors} sink errors retried, "
              f"{reporter.rejected} refused", flush=True)
    if not ok:
        print("[trainer] the store stayed unreachable; rows are kept in the spool for the console to replay",
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

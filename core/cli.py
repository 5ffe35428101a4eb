"""``python -m core <command>``: the console's API on the command line (design.md §7).

Exit status: 0 success, 1 a user error (message on stderr), 2 unusable input. ``--json`` prints one JSON
document on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any, Callable

from core.errors import ConsoleError, InputError


def _emit(args: argparse.Namespace, data: Any, human: Callable[[Any], str] | None = None) -> None:
    if getattr(args, "json", False) or human is None:
        print(json.dumps(data, indent=None if getattr(args, "json", False) else 2, default=str))
    else:
        print(human(data))


def _store():
    from core.store import open_store

    return open_store()


def _service():
    from core.team_jobs import job_service_for

    return job_service_for(_store())


# -- commands -----------------------------------------------------------------------------------------------

def cmd_demo(args: argparse.Namespace) -> int:
    from core.demo import build_demo
    from core.paths import demo_dir

    from core.demo import demo_ready

    if args.if_missing and demo_ready(demo_dir()):
        print(f"Demo assets are ready in {demo_dir()}.", file=sys.stderr)
        return 0
    print("Building the tiny demo model and datasets (about a minute on 2 cores)...", file=sys.stderr)
    out = build_demo(demo_dir(), force=args.force)
    _emit(args, out, lambda d: "\n".join([f"model: {d['model_path']}",
                                          *[f"config {k}: {v}" for k, v in d["configs"].items()]]))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from core.datasets.validate import validate_file

    rep = validate_file(args.file, method=args.method, model=args.model, max_length=args.max_length)
    data = rep.to_json()

    def human(d: dict[str, Any]) -> str:
        if d.get("fatal"):
            return f"Cannot read {args.file} as JSON Lines [{d['fatal']}]: {d['message']}"
        counts = d["stats"].get("error_counts", {})
        lines = [f"format: {d['format']}  rows: {d['rows']}  valid: {d['valid_rows']}  "
                 f"errors: {sum(counts.values())}  warnings: {len(d['warnings'])}"]
        lines += [f"  line {e['line'] or '-'}: {e['field'] or '-'}: [{e['rule']}] {e['message']}" for e in d["errors"][:50]]
        return "\n".join(lines)

    _emit(args, data, human)
    return rep.exit_code


def cmd_estimate(args: argparse.Namespace) -> int:
    from core.config import load_config_file

    cfg = load_config_file(args.config)
    try:
        from core.estimate import estimate_for_config
    except ImportError:
        raise ConsoleError("The estimator is not available in this build.") from None
    est = estimate_for_config(cfg, store=_store(), provider=args.provider, gpu=args.gpu, gpu_count=args.gpu_count,
                              budget_usd=args.budget)
    _emit(args, est if isinstance(est, dict) else est.model_dump(mode="json"))
    return 0


def cmd_configs(args: argparse.Namespace) -> int:
    store = _store()
    if args.action == "save":
        from core.config import load_config_file

        cfg = load_config_file(args.file)
        if args.name:
            cfg.name = args.name
        rec = store.save_config(cfg.name, cfg.to_dict())
        _emit(args, {"training_config_id": rec.id, "name": rec.name}, lambda d: f"saved {d['name']} as {d['training_config_id']}")
    elif args.action == "list":
        rows = [{"id": c.id, "name": c.name, "method": c.method, "model_name": c.model_name,
                 "updated_at": c.updated_at} for c in store.list_configs()]
        _emit(args, rows, lambda rs: "\n".join(f"{r['id']}  {r['name']}  {r['method']}  {r['model_name']}" for r in rs)
              or "no saved configs")
    elif args.action == "show":
        if not args.file:
            raise InputError("configs show needs a config id or name.")
        rec = store.get_config(args.file)
        _emit(args, rec.model_dump(mode="json"))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from core.config import load_config_file
    from core.jobs import deployment_response

    store = _store()
    config_id = None
    if args.config.startswith("cfg_") or not args.config.endswith((".yaml", ".yml", ".json")):
        from core.config import parse_config

        rec = store.get_config(args.config)
        cfg, config_id = parse_config(rec.config), rec.id
    else:
        cfg = load_config_file(args.config)
    svc = _service()
    job = svc.deploy(cfg, provider=args.provider, gpu_type=args.gpu, gpu_count=args.gpu_count,
                     budget_usd=args.budget, config_id=config_id, params=_provider_params(args.param) or None)
    if args.wait:
        last = [None]

        def progress(j):
            key = (j.status, j.current_step)
            if key != last[0] and not args.json:
                print(f"  {j.status} step {j.current_step}/{j.total_steps or '?'}", file=sys.stderr)
            last[0] = key

        job = svc.wait(job.id, timeout_s=args.timeout, interval_s=1.0, on_poll=progress)
    data = deployment_response(job)
    _emit(args, data, lambda d: f"{d['job_id']}: {d['status']}" + (f" ({d['reason']})" if d.get("reason") else ""))
    if args.wait and job.status != "completed":
        return 1
    return 1 if job.status == "failed" else 0  # the launch itself failed (a missing key, no capacity...)


def _provider_params(pairs: list[str]) -> dict[str, Any]:
    """``--param key=value`` pairs; values are read as JSON when they parse (numbers, true/false), else text."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--param takes KEY=VALUE, not {pair!r}.")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _job_dict(job) -> dict[str, Any]:
    d = job.model_dump(mode="json")
    d["deployment_id"] = job.deployment_id
    d.pop("config", None)
    return d


def cmd_jobs(args: argparse.Namespace) -> int:
    jobs = _store().list_jobs(statuses=[args.status] if args.status else None, limit=args.limit)
    rows = [_job_dict(j) for j in jobs]
    _emit(args, rows, lambda rs: "\n".join(
        f"{r['id']}  {r['status']:<14} {r['provider']:<8} {r['model_name']}  step {r['current_step']}/{r['total_steps']}"
        for r in rs) or "no jobs")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    svc = _service()
    job = svc.poll(args.job)
    d = _job_dict(job)
    d["stale"] = svc.is_stale(job)
    d["errors"] = [e.model_dump(mode="json") for e in svc.store.get_errors(job.id)]
    metrics = svc.store.get_metrics(job.id)
    last = next((m for m in reversed(metrics) if m.get("loss") is not None), None)
    d["metrics"] = {"step": job.current_step, "epoch": job.epoch, "loss": last and last["loss"],
                    "learning_rate": last and last["learning_rate"], "progress_percentage": round(job.progress * 100, 1)}
    _emit(args, d, lambda x: f"{x['id']}: {x['status']} step {x['current_step']}/{x['total_steps']}"
          + (f" — {x['reason']}" if x.get("reason") else ""))
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    store = _store()
    store.get_job(args.job)
    rows = store.get_metrics(args.job, since_step=args.since, limit=args.limit, offset=args.offset)
    if args.json:
        print(json.dumps(rows, default=str))
    else:
        for r in rows:
            print(f"step {r['step']:>6}  loss {r['loss']}  eval_loss {r['eval_loss']}  lr {r['learning_rate']}")
    return 0


def cmd_predictions(args: argparse.Namespace) -> int:
    store = _store()
    store.get_job(args.job)
    if args.summary:
        from core.monitor import JobMonitor

        jm = JobMonitor(args.job)
        jm.refresh(store)
        agg = jm.predictions.aggregates()
        data = {"steps": agg["step"], "bleu": agg["bleu"], "rouge_l": agg["rouge_l"], "samples": agg["samples"],
                **jm.predictions.rankings(args.rank_by)}
        _emit(args, data, lambda d: "\n".join(
            [f"step {s}: bleu {b} rouge_l {r}" for s, b, r in zip(d["steps"], d["bleu"], d["rouge_l"])]
            + [f"{k}: " + ", ".join(f"{x['sample_id']} ({x['latest']:.3g})" for x in d[k])
               for k in ("worst", "best", "regressed")]))
        return 0
    rows = store.get_predictions(args.job, epoch=args.epoch, since_step=args.since, sample_id=args.sample,
                                 limit=args.limit)
    if args.json:
        print(json.dumps(rows, default=str))
    else:
        for r in rows:
            print(f"step {r['step']} {r['sample_id']}: bleu {r['bleu']} rouge_l {r['rouge_l']}\n"
                  f"  got:      {r['generated_text']}\n  expected: {r['expected_text']}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    svc = _service()
    job = svc.cancel(args.job, keep_checkpoint=not args.now)
    if args.wait:
        job = svc.wait(job.id, timeout_s=args.timeout)
    _emit(args, _job_dict(job), lambda d: f"{d['id']}: {d['status']}" + (" (cancel requested)" if d["cancel_requested"] and d["status"] != "cancelled" else ""))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    svc = _service()
    job = svc.resume(args.job, budget_usd=args.budget)
    if args.wait:
        job = svc.wait(job.id, timeout_s=args.timeout)
    _emit(args, _job_dict(job), lambda d: f"{d['id']}: {d['status']}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    store = _store()
    if args.action == "show":
        if not args.id:
            raise InputError("models show needs a model id.")
        from core.registry import describe

        _emit(args, store.get_model(args.id).model_dump(mode="json"), describe)
        return 0
    rows = [m.model_dump(mode="json") for m in store.list_models()]
    _emit(args, rows, lambda rs: "\n".join(
        f"{r['id']}  {r['name']}  loss {r['metrics'].get('final_loss', '—')}  {r['artifact_path']}" for r in rs)
        or "no models")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from core.poller import run_forever

    run_forever(_service(), interval_s=args.interval, iterations=args.iterations)
    return 0


def _plugin_commands(sub: argparse._SubParsersAction) -> None:
    """Commands contributed by optional modules (serving, export), each registering its own parser."""
    for mod in ("core.serving",):
        try:
            module = __import__(mod, fromlist=["register_cli"])
        except ImportError:
            continue
        reg = getattr(module, "register_cli", None)
        if reg:
            reg(sub)


def _gpu_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"takes a whole number of GPUs, 1 or more, not {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m core", description="FineTune Console command line")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--json", action="store_true", help="print JSON")
        sp.set_defaults(fn=fn)
        return sp

    sp = add("demo", cmd_demo, "build the tiny demo model, datasets and configs under $CONSOLE_HOME/demo")
    sp.add_argument("--force", action="store_true", help="rebuild the model even if it exists")
    sp.add_argument("--if-missing", action="store_true", dest="if_missing", help="do nothing when already built")

    sp = add("validate", cmd_validate, "validate a JSONL dataset line by line")
    sp.add_argument("file")
    sp.add_argument("--model", help="model id or path whose tokenizer measures token lengths")
    sp.add_argument("--max-length", type=int, dest="max_length")
    sp.add_argument("--method", choices=["sft", "dpo", "kto", "orpo"])

    sp = add("estimate", cmd_estimate, "VRAM fit, time and cost for a config")
    sp.add_argument("config")
    sp.add_argument("--provider")
    sp.add_argument("--gpu")
    sp.add_argument("--gpu-count", type=_gpu_count, default=1, dest="gpu_count")
    sp.add_argument("--budget", type=float, help="USD limit to check the estimate against")

    sp = add("configs", cmd_configs, "save, list or show named configs")
    sp.add_argument("action", choices=["save", "list", "show"])
    sp.add_argument("file", nargs="?", help="config file (save) or id/name (show)")
    sp.add_argument("--name", help="save under this name")

    sp = add("deploy", cmd_deploy, "launch a config (file or saved id/name) on a provider")
    sp.add_argument("config")
    sp.add_argument("--provider", default="local")
    sp.add_argument("--gpu")
    sp.add_argument("--gpu-count", type=_gpu_count, default=1, dest="gpu_count")
    sp.add_argument("--budget", type=float, help="USD limit")
    sp.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a provider setting, e.g. cloud_type=SECURE or region=us-east-1 (repeatable)")
    sp.add_argument("--wait", action="store_true", help="wait until the job ends")
    sp.add_argument("--timeout", type=float, help="seconds to wait at most")

    from core.lifecycle import STATES

    sp = add("jobs", cmd_jobs, "list jobs")
    sp.add_argument("--status", choices=STATES)
    sp.add_argument("--limit", type=int)

    sp = add("status", cmd_status, "one job's status (polls its provider)")
    sp.add_argument("job")

    sp = add("metrics", cmd_metrics, "a job's metric rows")
    sp.add_argument("job")
    sp.add_argument("--since", type=int, help="only steps after this one")
    sp.add_argument("--limit", type=int)
    sp.add_argument("--offset", type=int, default=0)

    sp = add("predictions", cmd_predictions, "a job's sample predictions")
    sp.add_argument("job")
    sp.add_argument("--epoch", type=float)
    sp.add_argument("--limit", type=int)
    sp.add_argument("--since", type=int, help="only rounds after this step")
    sp.add_argument("--sample", help="one sample's generations across rounds")
    sp.add_argument("--summary", action="store_true",
                    help="mean BLEU and ROUGE-L per round, and the worst, best and most regressed samples")
    sp.add_argument("--rank-by", dest="rank_by", choices=["rouge_l", "bleu"], default="rouge_l")

    sp = add("cancel", cmd_cancel, "cancel a job (the trainer saves a checkpoint first)")
    sp.add_argument("job")
    sp.add_argument("--now", action="store_true", help="release the machine at once, keeping no checkpoint")
    sp.add_argument("--wait", action="store_true")
    sp.add_argument("--timeout", type=float, default=120)

    sp = add("resume", cmd_resume, "relaunch a failed, cancelled or budget-stopped job from its last checkpoint")
    sp.add_argument("job")
    sp.add_argument("--budget", type=float, help="a new USD limit (for a budget-stopped job)")
    sp.add_argument("--wait", action="store_true")
    sp.add_argument("--timeout", type=float, help="seconds to wait at most")

    sp = add("models", cmd_models, "the model registry")
    sp.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    sp.add_argument("id", nargs="?")

    sp = add("worker", cmd_worker, "run the job poller headless (hosted dashboards)")
    sp.add_argument("--interval", type=float, default=5.0)
    sp.add_argument("--iterations", type=int, help="stop after N rounds (default: forever)")

    _plugin_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    try:
        return int(args.fn(args) or 0)
    except ConsoleError as exc:
        if getattr(args, "json", False):
            print(json.dumps({"error": type(exc).__name__, "message": str(exc),
                              "problems": getattr(exc, "problems", None)}))
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug still gets one line, not a traceback
        if os.environ.get("FTC_DEBUG"):
            raise
        # Only the type: an SDK's message may quote a URL or header with a key in it.
        print(f"error: unexpected {type(exc).__name__} (a bug in the console, not in your input). Run again with "
              "FTC_DEBUG=1 to see the traceback, and report it.", file=sys.stderr)
        return 1

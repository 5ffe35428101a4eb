"""The console's hands inside SkyPilot's own virtualenv: one command per call, one JSON document on stdout.

Run as ``.venv-sky/bin/python sky_driver.py <command> [args]`` by ``core/providers/skypilot.py``; it imports only
the standard library and ``sky``, because SkyPilot pins ``click`` below what the console's other SDKs need and so
lives in a virtualenv of its own. Output is always one line ``{"ok": true, ...}`` or ``{"ok": false, "error":
{"type": <SkyPilot exception class>, "message": ...}}`` (exit status 0 / 3), so the console never parses tables.

API used (skypilot 0.14, ``sky/client/sdk.py``): ``launch`` / ``status`` / ``queue`` / ``down`` / ``cost_report`` /
``client.sdk.enabled_clouds`` / ``api_cancel`` return request ids resolved with ``get``; ``api_status``; ``tail_logs(cluster, job_id,
follow=False, tail=N, output_stream=...)``; ``Task.from_yaml_config(config, secrets_overrides=...)``
(``sky/task.py``) parses and schema-checks a task read by ``sky.utils.yaml_utils.read_yaml``;
``catalog.list_accelerators`` for offers; ``optimizer.Optimizer.optimize`` and ``execution.launch(dryrun=True)``
for the dry run. ``launch`` is submitted to SkyPilot's API server and waited for only ``--wait`` seconds: fast
refusals (no cloud offers the GPU, no credentials) come back from the call, a slow provisioning is followed by
``request <id>``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
from typing import Any


def _enum(v: Any) -> Any:
    return getattr(v, "value", v)


def _secrets(names: list[str]) -> list[tuple[str, str]]:
    # Secret values come through this process's environment, never through the task file on disk.
    return [(n, os.environ[n]) for n in names if os.environ.get(n)]


def load_task(path: str, secret_names: list[str] | None = None):
    import sky
    from sky.utils import yaml_utils

    config = yaml_utils.read_yaml(path)
    return sky.Task.from_yaml_config(config, secrets_overrides=_secrets(secret_names or []))


def cmd_validate(a: argparse.Namespace) -> dict[str, Any]:
    task = load_task(a.task)
    res = sorted(task.resources, key=str)
    return {"name": task.name, "num_nodes": task.num_nodes, "resources": [str(r) for r in res],
            "accelerators": [r.accelerators for r in res], "use_spot": [r.use_spot for r in res],
            "envs": sorted(task.envs), "file_mounts": sorted(task.file_mounts or {}),
            "storage_mounts": {path: {"source": st.source, "mode": st.mode.value}
                               for path, st in (task.storage_mounts or {}).items()}}


def _wait(request_id: Any, seconds: float) -> tuple[bool, Any, BaseException | None]:
    import sky

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = sky.get(request_id)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        return False, None, None
    return True, box.get("value"), box.get("error")


def cmd_launch(a: argparse.Namespace) -> dict[str, Any]:
    import sky

    task = load_task(a.task, a.secret)
    request_id = sky.launch(task, cluster_name=a.cluster, down=True, idle_minutes_to_autostop=a.idle_minutes,
                            dryrun=a.dryrun, retry_until_up=False)
    done, value, error = _wait(request_id, a.wait)
    if error is not None:
        raise error
    out: dict[str, Any] = {"request_id": str(request_id), "done": done}
    if done and value:
        out["job_id"] = value[0]
    return out


def cmd_dryrun(a: argparse.Namespace) -> dict[str, Any]:
    """The launch path without the API server or a cloud call: SkyPilot's optimizer picks the machine from its
    catalog and ``execution.launch(dryrun=True)`` (what the API server runs for ``sky launch --dryrun``) checks
    the rest. Works offline with catalog files and the enabled clouds cached in SkyPilot's state."""
    import sky
    from sky import execution
    from sky.optimizer import Optimizer

    task = load_task(a.task, a.secret)
    with sky.Dag() as dag:
        dag.add(task)
    Optimizer.optimize(dag, quiet=True)
    best = task.best_resources
    chosen = {"cloud": str(best.cloud), "region": best.region, "instance_type": best.instance_type,
              "accelerators": best.accelerators, "use_spot": best.use_spot,
              "cost_per_hour": best.get_cost(3600) * task.num_nodes}
    execution.launch(task, cluster_name=a.cluster, dryrun=True, down=True, idle_minutes_to_autostop=a.idle_minutes)
    return {"chosen": chosen, "num_nodes": task.num_nodes}


def cmd_request(a: argparse.Namespace) -> dict[str, Any]:
    import sky

    rows = sky.api_status([a.request_id])
    if not rows:
        return {"request": None}
    status = str(_enum(rows[0].status)).upper()
    out: dict[str, Any] = {"request": {"status": status}}
    if status in ("SUCCEEDED", "FAILED", "CANCELLED"):
        done, value, error = _wait(a.request_id, 30)
        if error is not None:
            out["request"]["error"] = {"type": type(error).__name__, "message": str(error)}
        elif done and value:
            out["request"]["job_id"] = value[0]
    return out


def _cluster(rec: Any) -> dict[str, Any]:
    get = rec.get if isinstance(rec, dict) else lambda k, d=None: getattr(rec, k, d)
    return {"name": get("name"), "status": str(_enum(get("status"))).split(".")[-1],
            "launched_at": get("launched_at"), "to_down": get("to_down"), "autostop": get("autostop")}


def _job(rec: Any) -> dict[str, Any]:
    get = rec.get if isinstance(rec, dict) else lambda k, d=None: getattr(rec, k, d)
    return {"job_id": get("job_id"), "status": str(_enum(get("status"))).split(".")[-1],
            "submitted_at": get("submitted_at"), "start_at": get("start_at"), "end_at": get("end_at")}


def cmd_status(a: argparse.Namespace) -> dict[str, Any]:
    import sky
    from sky.utils import common

    mode = common.StatusRefreshMode.FORCE if a.refresh else common.StatusRefreshMode.NONE
    clusters = [_cluster(r) for r in sky.get(sky.status(a.cluster or None, refresh=mode))]
    out: dict[str, Any] = {"clusters": clusters}
    if a.jobs and len(a.cluster) == 1 and clusters and clusters[0]["status"] == "UP":
        out["jobs"] = [_job(r) for r in sky.get(sky.queue(a.cluster[0], skip_finished=False))]
    return out


def cmd_logs(a: argparse.Namespace) -> dict[str, Any]:
    import sky

    buf = io.StringIO()
    rc = sky.tail_logs(a.cluster, a.job_id, follow=False, tail=a.tail, output_stream=buf)
    return {"log": buf.getvalue(), "exit_code": rc}


def cmd_down(a: argparse.Namespace) -> dict[str, Any]:
    import sky
    from sky import exceptions

    if a.request_id:
        # A launch still provisioning on the API server would otherwise bring the cluster up after this down.
        rows = sky.api_status([a.request_id])
        if rows and str(_enum(rows[0].status)).upper() in ("PENDING", "RUNNING"):
            sky.get(sky.api_cancel(a.request_id, silent=True))
    try:
        sky.get(sky.down(a.cluster))
    except exceptions.ClusterDoesNotExist:
        return {"gone": True}
    return {"gone": False}


def cmd_cost(a: argparse.Namespace) -> dict[str, Any]:
    import sky

    rows = sky.get(sky.cost_report(days=a.days))
    names = set(a.cluster)
    return {"clusters": [{"name": r.get("name"), "total_cost": r.get("total_cost"), "duration": r.get("duration"),
                          "num_nodes": r.get("num_nodes"), "status": str(_enum(r.get("status"))).split(".")[-1]}
                         for r in rows if not names or r.get("name") in names]}


def cmd_check(a: argparse.Namespace) -> dict[str, Any]:
    import sky
    from sky.client import sdk  # enabled_clouds is not re-exported at the package top

    return {"version": getattr(sky, "__version__", None),
            "enabled_clouds": [str(c) for c in sky.get(sdk.enabled_clouds())]}


def cmd_offers(a: argparse.Namespace) -> dict[str, Any]:
    from sky import catalog

    found = catalog.list_accelerators(gpus_only=True, clouds=a.cloud, all_regions=False)
    out = []
    for name, infos in found.items():
        for i in infos:
            out.append({"name": name, "count": i.accelerator_count, "cloud": i.cloud,
                        "price": i.price, "spot_price": i.spot_price, "region": i.region,
                        "memory_gb": getattr(i, "device_memory", None), "instance_type": i.instance_type})
    return {"offers": out}


COMMANDS = {"validate": cmd_validate, "launch": cmd_launch, "dryrun": cmd_dryrun, "request": cmd_request,
            "status": cmd_status, "logs": cmd_logs, "down": cmd_down, "cost": cmd_cost, "check": cmd_check,
            "offers": cmd_offers}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sky_driver")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("validate").add_argument("task")
    s = sub.add_parser("launch")
    s.add_argument("task")
    s.add_argument("--cluster", required=True)
    s.add_argument("--secret", action="append", default=[])
    s.add_argument("--idle-minutes", type=int, default=None)
    s.add_argument("--wait", type=float, default=30.0)
    s.add_argument("--dryrun", action="store_true")
    s = sub.add_parser("dryrun")
    s.add_argument("task")
    s.add_argument("--cluster", required=True)
    s.add_argument("--secret", action="append", default=[])
    s.add_argument("--idle-minutes", type=int, default=None)
    sub.add_parser("request").add_argument("request_id")
    s = sub.add_parser("status")
    s.add_argument("cluster", nargs="*")
    s.add_argument("--refresh", action="store_true")
    s.add_argument("--jobs", action="store_true")
    s = sub.add_parser("logs")
    s.add_argument("cluster")
    s.add_argument("--job-id", type=int, default=None)
    s.add_argument("--tail", type=int, default=0)
    s = sub.add_parser("down")
    s.add_argument("cluster")
    s.add_argument("--request-id", default=None)
    s = sub.add_parser("cost")
    s.add_argument("cluster", nargs="*")
    s.add_argument("--days", type=int, default=None)
    sub.add_parser("check")
    sub.add_parser("offers").add_argument("--cloud", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    real_stdout = sys.stdout
    # SkyPilot prints progress to stdout; only our one JSON line may reach the console's parser.
    sys.stdout = sys.stderr
    try:
        doc: dict[str, Any] = {"ok": True, **COMMANDS[a.command](a)}
        code = 0
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a typed JSON error
        if isinstance(exc, KeyboardInterrupt):
            raise
        doc = {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)[-2000:]}}
        code = 3
    finally:
        sys.stdout = real_stdout
    real_stdout.write(json.dumps(doc, default=str) + "\n")
    real_stdout.flush()
    return code


if __name__ == "__main__":
    raise SystemExit(main())

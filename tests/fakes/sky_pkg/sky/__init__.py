"""A fake ``sky`` package for the SkyPilot provider's tests: the same names and signatures as skypilot 0.14.1.

Mirrors ``sky/client/sdk.py`` (``launch``, ``status``, ``queue``, ``tail_logs``, ``down``, ``cost_report``,
``enabled_clouds``, ``api_status``, ``api_cancel``, ``get``: calls return a request id resolved by ``get``), ``sky/task.py``
(``Task.from_yaml_config(config, env_overrides, secrets_overrides)``) and ``sky/exceptions.py``. State lives in
the JSON file named by ``FTC_FAKE_SKY_STATE`` so each driver process sees what the test set up and what earlier
calls did; tests/providers/test_skypilot_real.py checks every signature here against the installed SkyPilot.

State: ``clusters`` {name: {status, launched_at, jobs: [{job_id, status, ...}], log, total_cost, duration}},
``enabled_clouds``, ``launch`` ({"mode": "done"|"pending", "error": {type, message}}), ``requests`` {id: {status,
value | error}}, and the calls made: ``launched`` (task, cluster, down, idle minutes, secrets), ``downed``.
"""

from __future__ import annotations

import io
import json
import os
import time
from typing import Any, List, Optional

from sky import exceptions  # noqa: F401 - the real package exposes it as sky.exceptions
from sky.utils import common

__version__ = "0.14.1-fake"


def _path() -> str:
    return os.environ["FTC_FAKE_SKY_STATE"]


def _load() -> dict[str, Any]:
    with open(_path(), encoding="utf-8") as f:
        return json.load(f)


def _save(state: dict[str, Any]) -> None:
    with open(_path(), "w", encoding="utf-8") as f:
        json.dump(state, f, indent=1)


def _request(value: Any = None, error: dict[str, str] | None = None, status: str = "SUCCEEDED") -> str:
    state = _load()
    reqs = state.setdefault("requests", {})
    rid = f"req-{len(reqs) + 1}"
    reqs[rid] = {"status": status, "value": value, "error": error}
    _save(state)
    return rid


class Task:
    def __init__(self, name: Optional[str] = None, **kw: Any) -> None:
        self.name = name
        self.config: dict[str, Any] = {}
        self.secrets: dict[str, str] = {}

    @staticmethod
    def from_yaml_config(config, env_overrides=None, secrets_overrides=None) -> "Task":
        t = Task(config.get("name"))
        t.config = config
        t.num_nodes = config.get("num_nodes", 1)
        t.secrets = {k: v for k, v in (config.get("secrets") or {}).items() if v is not None}
        t.secrets.update(dict(secrets_overrides or []))
        t.envs = config.get("envs") or {}
        t.file_mounts = config.get("file_mounts") or {}
        t.resources = {json.dumps(config.get("resources"), sort_keys=True)}
        return t


def launch(task, cluster_name=None, retry_until_up=False, idle_minutes_to_autostop=None, wait_for=None,
           dryrun=False, down=False, backend=None, optimize_target=None, no_setup=False, clone_disk_from=None,
           fast=False, resize=False, **internal):
    state = _load()
    state.setdefault("launched", []).append({"config": task.config, "cluster": cluster_name, "down": down,
                                              "idle": idle_minutes_to_autostop, "secrets": task.secrets})
    _save(state)
    spec = state.get("launch") or {}
    if spec.get("error"):
        return _request(error=spec["error"], status="FAILED")
    if spec.get("mode") == "pending":
        return _request(status="RUNNING")
    state = _load()
    state.setdefault("clusters", {})[cluster_name] = {
        "status": "UP", "launched_at": int(time.time()), "jobs": [{"job_id": 1, "status": "PENDING"}], "log": ""}
    _save(state)
    return _request(value=[1, None])


def get(request_id):
    req = _load()["requests"][str(request_id)]
    if req["status"] in ("PENDING", "RUNNING"):
        while True:  # a real get() blocks until the API server finished the request
            time.sleep(3600)
    if req.get("error"):
        raise getattr(exceptions, req["error"]["type"])(req["error"]["message"])
    return req["value"]


def api_status(request_ids=None, all_status=False, limit=None, fields=None, cluster_name=None):
    reqs = _load().get("requests", {})
    return [RequestPayload(request_id=r, status=reqs[r]["status"]) for r in (request_ids or reqs) if r in reqs]


class RequestPayload:
    def __init__(self, request_id: str, status: str) -> None:
        self.request_id, self.status = request_id, status


def api_cancel(request_ids=None, all_users=False, silent=False):
    state = _load()
    ids = [request_ids] if isinstance(request_ids, str) else list(request_ids or [])
    for rid in ids:
        state["requests"][rid]["status"] = "CANCELLED"
    state.setdefault("cancelled_requests", []).extend(ids)
    _save(state)
    return _request(value=ids)


def status(cluster_names: Optional[List[str]] = None, refresh=common.StatusRefreshMode.NONE, all_users=False,
           *, _include_credentials=False, _summary_response=False):
    state = _load()
    if refresh == common.StatusRefreshMode.FORCE:
        state["refreshes"] = state.get("refreshes", 0) + 1
        _save(state)
    rows = [{"name": n, "status": c["status"], "launched_at": c.get("launched_at"), "to_down": True,
             "autostop": c.get("autostop", 2)}
            for n, c in (state.get("clusters") or {}).items() if not cluster_names or n in cluster_names]
    return _request(value=rows)


def queue(cluster_name, skip_finished=False, all_users=False):
    c = (_load().get("clusters") or {}).get(cluster_name)
    if c is None:
        return _request(error={"type": "ClusterDoesNotExist", "message": f"Cluster {cluster_name!r} not found."},
                        status="FAILED")
    return _request(value=c.get("jobs") or [])


def tail_logs(cluster_name, job_id, follow, tail=0, output_stream=None, *, preload_content=True):
    c = (_load().get("clusters") or {}).get(cluster_name)
    if c is None:
        raise exceptions.ClusterDoesNotExist(f"Cluster {cluster_name!r} does not exist.")
    text = c.get("log", "")
    if tail:
        text = "".join(text.splitlines(keepends=True)[-tail:])
    (output_stream or io.StringIO()).write(text)
    return 0


def down(cluster_name, purge=False, graceful=False, graceful_timeout=None):
    state = _load()
    state.setdefault("downed", []).append(cluster_name)
    if cluster_name not in (state.get("clusters") or {}):
        _save(state)
        return _request(error={"type": "ClusterDoesNotExist", "message": f"Cluster {cluster_name!r} does not "
                                                                          "exist."}, status="FAILED")
    del state["clusters"][cluster_name]
    _save(state)
    return _request(value=None)


def cost_report(days=None):
    rows = [{"name": n, "total_cost": c.get("total_cost", 0.0), "duration": c.get("duration", 0),
             "num_nodes": c.get("num_nodes", 1), "status": c["status"]}
            for n, c in (_load().get("clusters") or {}).items()]
    return _request(value=rows)


def enabled_clouds(workspace=None, expand=False):
    return _request(value=_load().get("enabled_clouds", []))

"""A loopback Hugging Face Hub for ``HfApi(endpoint=...)`` (Jobs, Spaces, repo create/commit/delete, resolve).

Paths, fields and error shapes as read from ``huggingface_hub`` 2.4.0's source:

- ``hf_api.py: HfApi.whoami`` -> ``GET /api/whoami-v2`` (``{"type", "name", "orgs", "auth": {"accessToken":
  {"role"}}}``); a bad token is 401 with ``X-Error-Message: Invalid credentials in Authorization header``.
- ``run_job`` -> ``POST /api/jobs/{ns}`` with the spec of ``_jobs_api.py: _create_job_spec`` (``command``,
  ``arguments``, ``environment``, ``secrets``, ``flavor``, ``timeoutSeconds``, ``labels``, ``dockerImage``); answers
  a ``JobInfo`` body (``_jobs_api.py: JobInfo.__init__``: ``id``, ``createdAt``, ``startedAt``, ``finishedAt``,
  ``owner {id, name, type}``, ``status {stage, message}``, ``durations {runningSecs, ...}``, secrets masked).
- ``inspect_job`` -> ``GET /api/jobs/{ns}/{id}`` (404 is ``JobNotFoundError`` through ``utils/_http.py:
  hf_raise_for_status``); ``cancel_job`` -> ``POST /api/jobs/{ns}/{id}/cancel``; ``list_jobs`` -> ``GET
  /api/jobs/{ns}`` with repeated ``label=k=v`` / ``stage=`` params (``utils/_pagination.py``: no ``Link`` header,
  one page); ``list_jobs_hardware`` -> ``GET /api/jobs/hardware`` (``JobHardwareInfo``: ``name``, ``prettyName``,
  ``cpu``, ``ram``, ``accelerator {type, model, quantity, vram, manufacturer}``, ``unitCostMicroUSD``,
  ``unitCostUSD``, ``unitLabel``).
- ``fetch_job_logs`` / ``fetch_space_logs`` -> SSE at ``/api/jobs/{ns}/{id}/logs`` and ``/api/spaces/{id}/logs/run``
  (``HfApi._stream_sse_events``: ``data: {"data": line, "timestamp": iso}`` events; without ``follow`` the client stops
  at events stamped after the response's ``Date``, which ``http.server`` sends).
- ``create_repo`` -> ``POST /api/repos/create`` (``name``, ``organization``, ``type``, ``visibility``, ``sdk``,
  ``hardware``, ``secrets``; 409 when it exists, which ``exist_ok`` swallows) answering ``{"url"}``;
  ``delete_repo`` -> ``DELETE /api/repos/delete`` (404 swallowed by ``missing_ok``).
- ``create_commit`` -> ``POST /api/{type}s/{id}/preupload/main`` (``_commit_api.py: _fetch_upload_modes``; this fake
  answers ``uploadMode: regular`` for every file, so no LFS/Xet transfer is needed) then ``POST
  /api/{type}s/{id}/commit/main`` with the ndjson of ``_prepare_commit_payload`` (``header``, ``file`` with base64
  ``content``), answering ``{"commitUrl", "commitOid"}`` (``_send_commit``).
- ``get_space_runtime`` / ``pause_space`` / ``request_space_hardware`` -> ``GET /api/spaces/{id}/runtime``, ``POST
  .../pause``, ``POST .../hardware`` answering ``_space_api.py: SpaceRuntime`` (``stage``, ``hardware {current,
  requested}``); ``list_spaces`` -> ``GET /api/spaces?author=&search=``.
- ``HfApi._validate_yaml`` -> ``POST /api/validate-yaml`` (``{"errors", "warnings"}``) for a README.md in a commit.
- Files download from ``/datasets/{id}/resolve/main/{path}`` (the machine's ``ftc fetch`` with ``$HF_TOKEN``).

Not in the SDK's source, so modelled and marked as such: a 402 ``{"error": ...}`` when the account cannot pay for
a flavor, a 429 with ``Retry-After`` (tests inject it with ``fail_next``), and a job that ends in ``ERROR`` with a
"no capacity" message when ``no_capacity`` holds its flavor.

With ``machines_root``, ``run_job`` starts the job's command as a local process (``tests/fakes/machine.py``) with its
environment and secrets, serves its output as the job's log, and ends the job COMPLETED/ERROR with its exit status.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.fakes.loopback import LoopbackFake, Request, Response

HARDWARE = [
    # name, pretty, cpu, ram, accelerator (model, quantity, vram) or None, micro-USD per minute
    ("cpu-basic", "CPU Basic", "2 vCPU", "16 GB", None, 167),
    ("t4-small", "Nvidia T4 - small", "4 vCPU", "15 GB", ("T4", "1", "16 GB"), 6667),
    ("a10g-small", "Nvidia A10G - small", "4 vCPU", "15 GB", ("A10G", "1", "24 GB"), 16667),
    ("a10g-large", "Nvidia A10G - large", "12 vCPU", "46 GB", ("A10G", "1", "24 GB"), 25000),
    ("a10g-largex2", "2x Nvidia A10G - large", "24 vCPU", "92 GB", ("A10G", "2", "48 GB"), 50000),
    ("a100-large", "Nvidia A100 - large", "12 vCPU", "142 GB", ("A100", "1", "80 GB"), 41667),
]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z") if ts else None


def _err(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error": message}, {"X-Error-Message": message, **(headers or {})})


class FakeHub(LoopbackFake):
    def __init__(self, token: str = "hf_test_token", user: str = "alice", *, machines_root: Path | None = None,
                 machine_env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.user = user
        self.jobs: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[tuple[float, str]]] = {}
        self.repos: dict[tuple[str, str], dict[str, Any]] = {}  # (type, id) -> {"files": {path: bytes}, ...}
        self.spaces: dict[str, dict[str, Any]] = {}  # id -> runtime
        self.cannot_pay: set[str] = set()  # flavors the account may not run (402)
        self.no_capacity: set[str] = set()  # flavors that end in ERROR for lack of capacity
        self.machines_root = Path(machines_root) if machines_root else None
        self.machine_env = machine_env or {}
        self.machines: dict[str, Any] = {}
        self._ids = itertools.count(1)

    # -- test controls ----------------------------------------------------------------------------------------
    def set_stage(self, job_id: str, stage: str, message: str | None = None) -> None:
        job = self.jobs[job_id]
        job["status"] = {"stage": stage, "message": message}
        now = time.time()
        if stage == "RUNNING" and not job["_started"]:
            job["_started"] = now
        if stage in ("COMPLETED", "ERROR", "CANCELED", "DELETED") and not job["_finished"]:
            job["_finished"] = now

    def append_log(self, ref: str, text: str) -> None:
        for line in text.splitlines():
            self.logs.setdefault(ref, []).append((time.time(), line))

    def kill_all(self) -> None:
        for m in self.machines.values():
            m.kill()

    # -- HTTP -------------------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        path = unquote(req.path)
        if path.startswith("/datasets/") and "/resolve/" in path:
            return self._resolve(req, path)
        if req.bearer != self.token:
            return _err(401, "Invalid credentials in Authorization header")
        with self._lock:
            if path == "/api/whoami-v2":
                return Response(200, {"type": "user", "name": self.user, "fullname": "Alice", "orgs": [],
                                      "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
            if path == "/api/validate-yaml" and req.method == "POST":  # README.md in a commit (model cards)
                return Response(200, {"errors": [], "warnings": []})
            if path in ("/api/jobs/hardware", "/api/spaces/hardware"):
                return Response(200, [self._hw(h) for h in HARDWARE])
            if path.startswith("/api/jobs/"):
                return self._jobs(req, path.split("/")[3:])
            if path == "/api/repos/create" and req.method == "POST":
                return self._create_repo(req.json())
            if path == "/api/repos/delete" and req.method == "DELETE":
                body = req.json()
                ident = f"{body.get('organization') or self.user}/{body['name']}"
                kind = body.get("type") or "model"
                if self.repos.pop((kind, ident), None) is None:
                    return _err(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
                if kind == "space":
                    self.spaces.pop(ident, None)
                return Response(200, {})
            if path == "/api/spaces" and req.method == "GET":
                q = req.query
                return Response(200, [{"id": i, "author": i.split("/")[0]} for (t, i) in self.repos
                                      if t == "space" and i.startswith(f"{q.get('author', '')}/")
                                      and q.get("search", "") in i])
            for kind in ("model", "dataset", "space"):
                prefix = f"/api/{kind}s/"
                if path.startswith(prefix) and ("/preupload/" in path or "/commit/" in path):
                    return self._commit(req, kind, path[len(prefix):])
            if path.startswith("/api/spaces/"):
                return self._space(req, path[len("/api/spaces/"):])
        return _err(404, f"No route {req.method} {req.path}")

    @staticmethod
    def _hw(h: tuple) -> dict[str, Any]:
        name, pretty, cpu, ram, acc, micro = h
        return {"name": name, "prettyName": pretty, "cpu": cpu, "ram": ram, "ephemeralStorage": "50 GB",
                "accelerator": None if acc is None else {"type": "gpu", "model": acc[0], "quantity": acc[1],
                                                         "vram": acc[2], "manufacturer": "Nvidia"},
                "unitCostMicroUSD": micro, "unitCostUSD": micro / 1e6, "unitLabel": "minute"}

    # -- jobs -------------------------------------------------------------------------------------------------
    def _jobs(self, req: Request, parts: list[str]) -> Response:
        ns = parts[0]
        if ns != self.user:
            return _err(403, f"You don't have the rights to run jobs in '{ns}'")
        if len(parts) == 1 and req.method == "POST":
            return self._run(ns, req.json())
        if len(parts) == 1 and req.method == "GET":
            return Response(200, [self._public(j) for j in self.jobs.values() if self._matches(j, req)])
        job = self.jobs.get(parts[1])
        if job is None:
            return _err(404, "Job not found")
        self._refresh(job)
        if len(parts) == 2 and req.method == "GET":
            return Response(200, self._public(job))
        if len(parts) == 3 and parts[2] == "cancel" and req.method == "POST":
            if job["status"]["stage"] in ("SCHEDULING", "RUNNING"):
                machine = self.machines.get(job["id"])
                if machine:
                    machine.kill()
                self.set_stage(job["id"], "CANCELED")
            return Response(200, {})
        if len(parts) == 3 and parts[2] == "logs":
            return self._sse(job["id"])
        return _err(404, "Not found")

    def _matches(self, job: dict[str, Any], req: Request) -> bool:
        # The loopback server keeps the last value of a repeated param; label filters come one per request here.
        label = req.query.get("label")
        if label:
            k, _, v = label.partition("=")
            if (job.get("labels") or {}).get(k) != v:
                return False
        stage = req.query.get("stage")
        return not stage or job["status"]["stage"] == stage

    def _run(self, ns: str, spec: dict[str, Any]) -> Response:
        flavor = spec.get("flavor") or "cpu-basic"
        if flavor not in {h[0] for h in HARDWARE}:
            return _err(400, f"Invalid flavor '{flavor}'")
        if flavor in self.cannot_pay:
            return _err(402, "Please add a payment method to your account to run jobs on this hardware")
        jid = f"6870{next(self._ids):020x}"
        job = {
            "id": jid, "createdAt": _iso(time.time()), "dockerImage": spec.get("dockerImage"),
            "spaceId": spec.get("spaceId"), "command": spec["command"], "arguments": spec.get("arguments") or [],
            "environment": spec.get("environment") or {}, "secrets": spec.get("secrets") or {},
            "flavor": flavor, "labels": spec.get("labels"), "timeoutSeconds": spec.get("timeoutSeconds"),
            "owner": {"id": "5e9ecfc04957053f60648a3e", "name": ns, "type": "user"},
            "status": {"stage": "SCHEDULING", "message": None}, "_started": None, "_finished": None,
        }
        self.jobs[jid] = job
        if flavor in self.no_capacity:
            self.set_stage(jid, "ERROR", "No capacity available for this hardware flavor right now")
        elif self.machines_root is not None:
            from tests.fakes.machine import LocalMachine

            m = LocalMachine(self.machines_root / jid)
            env = {**job["environment"], **job["secrets"], **self.machine_env, "FTC_WORK": str(m.work)}
            self.machines[jid] = m.start_argv(list(spec["command"]) + list(spec.get("arguments") or []), env)
            self.set_stage(jid, "RUNNING")
        return Response(200, self._public(job))

    def _refresh(self, job: dict[str, Any]) -> None:
        m = self.machines.get(job["id"])
        if m is not None and job["status"]["stage"] == "RUNNING" and not m.alive:
            self.set_stage(job["id"], "COMPLETED" if m.proc.returncode == 0 else "ERROR",
                           None if m.proc.returncode == 0 else f"Job failed with exit code: {m.proc.returncode}")

    def _public(self, job: dict[str, Any]) -> dict[str, Any]:
        self._refresh(job)
        out = {k: v for k, v in job.items() if not k.startswith("_") and k != "timeoutSeconds"}
        out["secrets"] = {k: "*****" for k in job["secrets"]}  # the Hub never returns secret values
        out["startedAt"], out["finishedAt"] = _iso(job["_started"]), _iso(job["_finished"])
        if job["_started"]:
            end = job["_finished"] or time.time()
            out["durations"] = {"schedulingSecs": 0, "runningSecs": int(end - job["_started"]),
                                "totalSecs": int(end - job["_started"])}
        return out

    def _log_lines(self, ref: str) -> list[tuple[float, str]]:
        m = self.machines.get(ref)
        if m is not None:
            now = time.time()
            return [(now, line) for line in m.output().splitlines()]
        return list(self.logs.get(ref, []))

    def _sse(self, ref: str) -> Response:
        events = [("===== Job started at {} =====".format(_iso(time.time())), time.time())]
        events += [(line, ts) for ts, line in self._log_lines(ref)]
        body = "".join(f"data: {json.dumps({'data': line, 'timestamp': _iso(ts)})}\n\n" for line, ts in events)
        return Response(200, body, {"Content-Type": "text/event-stream"})

    # -- repos ------------------------------------------------------------------------------------------------
    def _create_repo(self, body: dict[str, Any]) -> Response:
        kind = body.get("type") or "model"
        ident = f"{body.get('organization') or self.user}/{body['name']}"
        if kind == "space" and body.get("hardware") in self.cannot_pay:
            return _err(402, "Please add a payment method to your account to use this Space hardware")
        if (kind, ident) in self.repos:
            return _err(409, "You already created this repo", {"X-Error-Code": "RepoExists"})
        self.repos[(kind, ident)] = {"files": {}, "private": body.get("visibility") == "private",
                                     "sdk": body.get("sdk"), "secrets": body.get("secrets") or [],
                                     "hardware": body.get("hardware")}
        if kind == "space":
            self.spaces[ident] = {"stage": "NO_APP_FILE",
                                  "hardware": {"current": None, "requested": body.get("hardware")}}
        prefix = "" if kind == "model" else f"{kind}s/"
        return Response(200, {"url": f"{self.url}/{prefix}{ident}", "name": ident, "id": ident})

    def _commit(self, req: Request, kind: str, rest: str) -> Response:
        op = "preupload" if "/preupload/" in rest else "commit"
        ident = rest.split(f"/{op}/")[0]
        repo = self.repos.get((kind, ident))
        if repo is None:
            return _err(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        if op == "preupload":
            files = req.json()["files"]
            return Response(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                            for f in files]})
        for line in req.body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        if kind == "space" and "Dockerfile" in repo["files"]:
            self.spaces[ident] = {"stage": "BUILDING", "hardware": {"current": None,
                                                                    "requested": repo["hardware"]}}
        oid = f"{next(self._ids):040x}"
        prefix = "" if kind == "model" else f"{kind}s/"
        return Response(200, {"commitUrl": f"{self.url}/{prefix}{ident}/commit/{oid}", "commitOid": oid})

    def _resolve(self, req: Request, path: str) -> Response:
        ident, _, file = path[len("/datasets/"):].partition("/resolve/main/")
        repo = self.repos.get(("dataset", ident))
        if repo is not None and repo["private"] and req.bearer != self.token:
            return _err(401, "Invalid credentials in Authorization header")
        if repo is None or file not in repo["files"]:
            return _err(404, "Entry not found", {"X-Error-Code": "EntryNotFound"})
        return Response(200, repo["files"][file], {"Content-Type": "application/octet-stream"})

    # -- spaces -----------------------------------------------------------------------------------------------
    def _space(self, req: Request, rest: str) -> Response:
        for suffix in ("/runtime", "/pause", "/hardware", "/logs/run"):
            if rest.endswith(suffix):
                ident = rest[: -len(suffix)]
                break
        else:
            return _err(404, f"No route {req.method} {req.path}")
        rt = self.spaces.get(ident)
        if rt is None:
            return _err(404, "Repository not found", {"X-Error-Code": "RepoNotFound"})
        if suffix == "/pause" and req.method == "POST":
            rt["stage"] = "PAUSED"
            rt["hardware"]["current"] = None
        elif suffix == "/hardware" and req.method == "POST":
            rt["hardware"]["requested"] = req.json()["flavor"]
        elif suffix == "/logs/run":
            return self._sse(f"space:{ident}")
        return Response(200, rt)

"""A loopback RunPod GraphQL API, spoken to by the real ``runpod`` SDK (1.12) through ``RUNPOD_API_BASE_URL``.

Wire format, as read from the SDK's source:

- transport: ``runpod/api/graphql.py::run_graphql_query`` POSTs ``{"query": ...}`` to ``$RUNPOD_API_BASE_URL/graphql``
  with ``Authorization: Bearer <key>``; HTTP 401 becomes ``AuthenticationError``; a body with ``errors`` becomes
  ``QueryError(errors[0].message)``; any other body is returned as is (so a non-JSON 429/5xx surfaces as a JSON
  decoding error, which the provider treats as retryable).
- ``get_gpus`` (``queries/gpus.py::QUERY_GPU_TYPES``: ``gpuTypes { id displayName memoryInGb }``) and ``get_gpu``
  (``generate_gpu_query``: ``gpuTypes(input: {id})`` with ``maxGpuCount secureCloud communityCloud securePrice
  communityPrice ... lowestPrice(input: {gpuCount}) { minimumBidPrice uninterruptablePrice }``).
- ``get_pod`` (``queries/pods.py::generate_pod_query``: ``pod(input: {podId})`` with ``costPerHr desiredStatus
  uptimeSeconds runtime { ports {...} } machine { gpuDisplayName } ...``) and ``get_pods`` (``myself { pods }``);
  ``get_user`` (``queries/user.py``: ``myself { id pubKey networkVolumes {...} }``).
- ``mutations/pods.py``: ``podFindAndDeployOnDemand(input: {name imageName cloudType gpuTypeId gpuCount volumeInGb
  containerDiskInGb dockerArgs ports volumeMountPath env: [{key, value}] ...})`` selecting ``id imageName env
  machineId machine { podHostId }``; ``podStop(input: {podId})``; ``podTerminate(input: {podId})``.

Behaviour beyond the SDK, from RunPod's docs and public reports (cited where used): a pod is ``RUNNING`` with
``runtime: null`` until its container is up; ``costPerHr`` covers all of the pod's GPUs; the no-capacity answer is
"There are no longer any instances available with the requested specifications. Please refresh and try again."
(recorded from live calls in several public projects); a terminated pod is gone (``pod`` answers ``null``); every pod
gets ``RUNPOD_POD_ID`` and a pod-scoped key that lets ``runpodctl remove pod $RUNPOD_POD_ID`` remove the pod itself
(docs.runpod.io/runpodctl: "All Pods come with runpodctl installed with a Pod-scoped API key"). Assumptions: the
error text for terminating an unknown pod, and a plain-text 429 body, are not documented; the provider does not
depend on either.

With ``machines_root`` set, deploying a pod starts its container command (``dockerArgs``) as a local process group
(``tests/fakes/machine.py``) with the pod's env, so the console's generated bootstrap really runs; a ``runpodctl``
shim on its PATH calls this fake back. A container whose process ends by itself shows ``EXITED``.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from tests.fakes.graphql_mini import Field, GraphQLSyntaxError, parse, plain, project
from tests.fakes.loopback import LoopbackFake, Request, Response
from tests.fakes.machine import LocalMachine

NO_CAPACITY = ("There are no longer any instances available with the requested specifications. "
               "Please refresh and try again.")

GPU_TYPES = [
    {"id": "NVIDIA GeForce RTX 4090", "displayName": "RTX 4090", "manufacturer": "Nvidia", "memoryInGb": 24,
     "cudaCores": 16384, "maxGpuCount": 8, "secureCloud": True, "communityCloud": True, "securePrice": 0.69,
     "communityPrice": 0.34, "secureSpotPrice": 0.35, "communitySpotPrice": 0.2},
    {"id": "NVIDIA A100 80GB PCIe", "displayName": "A100 PCIe", "manufacturer": "Nvidia", "memoryInGb": 80,
     "cudaCores": 6912, "maxGpuCount": 8, "secureCloud": True, "communityCloud": True, "securePrice": 1.64,
     "communityPrice": 1.19, "secureSpotPrice": 0.82, "communitySpotPrice": 0.6},
    {"id": "NVIDIA H100 80GB HBM3", "displayName": "H100 SXM", "manufacturer": "Nvidia", "memoryInGb": 80,
     "cudaCores": 16896, "maxGpuCount": 8, "secureCloud": True, "communityCloud": False, "securePrice": 2.99,
     "communityPrice": None, "secureSpotPrice": 1.75, "communitySpotPrice": None},
]

RUNPODCTL = '''#!{python}
"""runpodctl stand-in: `remove pod ID` / `stop pod ID` through the fake's GraphQL, with the pod-scoped key."""
import json, os, sys, urllib.request
verb, kind, pod = sys.argv[1:4]
op = {{"remove": "podTerminate", "stop": "podStop"}}[verb]
q = 'mutation {{ %s(input: {{podId: "%s"}}) }}' % (op, pod) if op == "podTerminate" else \\
    'mutation {{ %s(input: {{podId: "%s"}}) {{ id desiredStatus }} }}' % (op, pod)
req = urllib.request.Request(os.environ["RUNPOD_API_BASE_URL"] + "/graphql", data=json.dumps({{"query": q}}).encode(),
                             headers={{"Authorization": "Bearer " + os.environ["RUNPOD_API_KEY"],
                                      "Content-Type": "application/json"}})
body = json.load(urllib.request.urlopen(req, timeout=30))
if body.get("errors"):
    print(body["errors"][0]["message"], file=sys.stderr)
    sys.exit(1)
print(f"pod \\"{{pod}}\\" {{'removed' if verb == 'remove' else 'stopped'}}")
'''


class FakeRunPod(LoopbackFake):
    def __init__(self, api_key: str = "rp_test_key", *, machines_root: Path | None = None,
                 machine_env: dict[str, str] | None = None, clock: Callable[[], float] = time.time,
                 install: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        self.machines_root = machines_root
        self.machine_env = machine_env or {}
        self.install = install  # run the bootstrap's pip step (offline, against this interpreter's packages)
        self.clock = clock
        self.gpus = [dict(g) for g in GPU_TYPES]
        # Free GPUs per (gpu id, cloud): what a deploy may take.
        self.capacity: dict[tuple[str, str], int] = {(g["id"], c): 8 for g in self.gpus for c in ("SECURE", "COMMUNITY")
                                                     if g[f"{c.lower()}Cloud"]}
        self.pods: dict[str, dict[str, Any]] = {}
        self.machines: dict[str, LocalMachine] = {}
        self.terminated: list[str] = []
        self.deploy_inputs: list[dict[str, Any]] = []
        self._n = 0

    # -- test controls ----------------------------------------------------------------------------------------
    def set_running(self, pod_id: str) -> None:
        """The container came up (no machine process: unit tests drive the state by hand)."""
        pod = self.pods[pod_id]
        pod["_started"] = self.clock()
        pod["runtime"] = self._runtime(pod)

    def set_exited(self, pod_id: str) -> None:
        pod = self.pods[pod_id]
        pod.update(desiredStatus="EXITED", runtime=None)
        pod["_uptime_frozen"] = self._uptime(pod)

    # -- GraphQL ----------------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        if req.path != "/graphql" or req.method != "POST":
            return Response(404, "Not Found")
        key = req.bearer
        pod_scoped = next((pid for pid, p in self.pods.items() if p["_key"] == key), None)
        if key != self.api_key and pod_scoped is None:
            return Response(401, {"errors": [{"message": "Unauthorized"}]})
        try:
            op, fields = parse(req.json()["query"])
        except (GraphQLSyntaxError, KeyError, ValueError) as exc:
            return Response(400, {"errors": [{"message": str(exc)}]})
        data: dict[str, Any] = {}
        with self._lock:
            for f in fields:
                if pod_scoped is not None and not (
                        f.name in ("podTerminate", "podStop") and plain(f.args["input"]).get("podId") == pod_scoped):
                    return Response(200, {"errors": [{"message": "Unauthorized: pod-scoped key"}], "data": None})
                try:
                    data[f.name] = getattr(self, f"_{op}_{f.name}")(f)
                except AttributeError:
                    return Response(400, {"errors": [{"message": f'Cannot query field "{f.name}" on type '
                                                                 f'"{op.capitalize()}".'}]})
                except _GqlError as exc:
                    return Response(200, {"errors": [{"message": str(exc), "path": [f.name]}], "data": None})
        return Response(200, {"data": data})

    # queries ------------------------------------------------------------------------------------------------
    def _query_gpuTypes(self, f: Field) -> Any:
        wanted = plain(f.args.get("input") or {}).get("id")
        rows = [g for g in self.gpus if wanted is None or g["id"] == wanted]
        out = []
        for g in rows:
            row = dict(g)
            sub = next((s for s in f.selections or [] if s.name == "lowestPrice"), None)
            if sub is not None:
                n = plain(sub.args.get("input") or {}).get("gpuCount", 1)
                prices = [p for p in (g["communityPrice"], g["securePrice"]) if p]
                spot = [p for p in (g["communitySpotPrice"], g["secureSpotPrice"]) if p]
                free = max(self.capacity.get((g["id"], c), 0) for c in ("SECURE", "COMMUNITY"))
                row["lowestPrice"] = {"minimumBidPrice": min(spot) if spot and free >= n else None,
                                      "uninterruptablePrice": min(prices) if prices and free >= n else None}
            out.append(row)
        return project(out, f.selections)

    def _query_pod(self, f: Field) -> Any:
        pod = self.pods.get(plain(f.args["input"])["podId"])
        return project(self._view(pod), f.selections) if pod else None

    def _query_myself(self, f: Field) -> Any:
        me = {"id": "user_fake123", "pubKey": "", "networkVolumes": [],
              "pods": [self._view(p) for p in self.pods.values()]}
        return project(me, f.selections)

    # mutations ----------------------------------------------------------------------------------------------
    def _mutation_podFindAndDeployOnDemand(self, f: Field) -> Any:
        inp = plain(f.args["input"])
        self.deploy_inputs.append(inp)
        gpu = next((g for g in self.gpus if g["id"] == inp.get("gpuTypeId")), None)
        if gpu is None:
            raise _GqlError("Invalid GPU type")
        cloud = inp.get("cloudType", "ALL")
        count = int(inp.get("gpuCount", 1))
        clouds = ["SECURE", "COMMUNITY"] if cloud == "ALL" else [cloud]
        pick = next((c for c in clouds if self.capacity.get((gpu["id"], c), 0) >= count), None)
        if pick is None:
            raise _GqlError(NO_CAPACITY)
        self.capacity[(gpu["id"], pick)] -= count
        self._n += 1
        pod_id = f"fakepod{self._n:04d}x"
        env = {e["key"]: e["value"] for e in inp.get("env") or []}
        pod = {
            "id": pod_id, "name": inp["name"], "imageName": inp["imageName"], "desiredStatus": "RUNNING",
            "costPerHr": round(gpu[f"{pick.lower()}Price"] * count, 4), "gpuCount": count,
            "containerDiskInGb": inp.get("containerDiskInGb"), "volumeInGb": inp.get("volumeInGb"),
            "volumeMountPath": inp.get("volumeMountPath"), "dockerArgs": inp.get("dockerArgs", ""),
            "ports": inp.get("ports"), "port": None, "podType": "RESERVED", "machineId": f"m-{pod_id}",
            "dockerId": None, "memoryInGb": 62, "vcpuCount": 8, "lastStatusChange": "Rented by User",
            "env": [f"{k}={v}" for k, v in env.items()], "machine": {"gpuDisplayName": gpu["displayName"],
                                                                      "podHostId": f"{pod_id}-host"},
            "runtime": None, "_cloud": pick, "_gpu": gpu["id"], "_env": env, "_key": f"pod-key-{pod_id}",
            "_started": None, "_uptime_frozen": None,
        }
        self.pods[pod_id] = pod
        if self.machines_root is not None:
            self._boot(pod)
        return project(pod, f.selections)

    def _mutation_podStop(self, f: Field) -> Any:
        pod = self.pods.get(plain(f.args["input"])["podId"])
        if pod is None:
            raise _GqlError("Pod not found")
        self._halt(pod)
        self.set_exited(pod["id"])
        return project(pod, f.selections)

    def _mutation_podTerminate(self, f: Field) -> Any:
        pod = self.pods.pop(plain(f.args["input"])["podId"], None)
        if pod is None:
            raise _GqlError("Pod not found")
        self.terminated.append(pod["id"])
        self.capacity[(pod["_gpu"], pod["_cloud"])] += pod["gpuCount"]
        self._halt(pod)
        return None

    # -- pods as machines ---------------------------------------------------------------------------------------
    def _boot(self, pod: dict[str, Any]) -> None:
        assert self.machines_root is not None
        root = self.machines_root / pod["id"]
        bindir = root / "bin"
        bindir.mkdir(parents=True, exist_ok=True)
        shim = bindir / "runpodctl"
        shim.write_text(RUNPODCTL.format(python=sys.executable))
        shim.chmod(0o755)
        env = {**pod["_env"], **self.machine_env, "RUNPOD_POD_ID": pod["id"], "RUNPOD_API_KEY": pod["_key"],
               "RUNPOD_API_BASE_URL": self.url}
        m = LocalMachine(root, env, install=self.install)
        m.env["PATH"] = f"{bindir}:{m.env.get('PATH', '')}"
        m.start_command(pod["dockerArgs"])
        self.machines[pod["id"]] = m
        self.set_running(pod["id"])
        threading.Thread(target=self._watch, args=(pod["id"], m), daemon=True).start()

    def _watch(self, pod_id: str, m: LocalMachine) -> None:
        m.proc.wait()
        with self._lock:
            pod = self.pods.get(pod_id)
            if pod is not None and pod["desiredStatus"] == "RUNNING":
                self.set_exited(pod_id)  # RunPod may restart it; the bootstrap's .finished guard covers that

    def _halt(self, pod: dict[str, Any]) -> None:
        m = self.machines.get(pod["id"])
        if m is not None:
            # The API answers first; the container is removed a moment later (as the runpodctl caller sees).
            threading.Timer(0.3, m.kill).start()

    def kill_all(self) -> None:
        for m in self.machines.values():
            m.kill()

    def _uptime(self, pod: dict[str, Any]) -> int:
        if pod.get("_uptime_frozen") is not None:
            return pod["_uptime_frozen"]
        return int(self.clock() - pod["_started"]) if pod.get("_started") else 0

    def _runtime(self, pod: dict[str, Any]) -> dict[str, Any]:
        port = int(str(pod.get("ports") or "8765/http").split("/")[0].split(",")[0])
        return {"uptimeInSeconds": self._uptime(pod),
                "ports": [{"ip": "100.65.0.2", "isIpPublic": False, "privatePort": port, "publicPort": port,
                           "type": "http"}]}

    def _view(self, pod: dict[str, Any] | None) -> dict[str, Any] | None:
        if pod is None:
            return None
        view = {k: v for k, v in pod.items() if not k.startswith("_")}
        view["uptimeSeconds"] = self._uptime(pod)
        if view["runtime"] is not None:
            view["runtime"] = self._runtime(pod)
        return view


class _GqlError(Exception):
    pass

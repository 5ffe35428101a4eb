"""A loopback Lambda Cloud API v1, for ``LambdaClient(base_url=...)``.

Paths, fields, status codes and error bodies follow Lambda's OpenAPI 1.10 (https://cloud.lambda.ai/api/v1/openapi.json)
as generated into the ``lambda-ai-cloud-api-client`` 2.4.1 package (read from its source):

- ``api/instances/list_instance_types.py``: ``GET /api/v1/instance-types`` -> ``{"data": {name: {"instance_type":
  {name, description, gpu_description, price_cents_per_hour, specs: {vcpus, memory_gib, storage_gib, gpus}},
  "regions_with_capacity_available": [{name, description}]}}}`` (``models/instance_types.py`` example).
- ``api/instances/launch_instance.py``: ``POST /api/v1/instance-operations/launch`` with ``models/
  instance_launch_request.py`` (region_name, instance_type_name, ssh_key_names — exactly one —, file_system_names,
  name <= 64 chars, user_data <= 1 MB, tags [{key, value}]) -> ``{"data": {"instance_ids": [...]}}``; 400 with
  ``instance-operations/launch/insufficient-capacity`` / ``global/invalid-parameters`` / ``global/quota-exceeded``;
  404 ``global/object-does-not-exist`` for an unknown SSH key or file system (``launch_instance_response_40x.py``).
- ``get_instance.py``: ``GET /api/v1/instances/{id}`` -> ``{"data": Instance}`` or 404 ``global/object-does-not-exist``
  "Specified instance does not exist." (``api_error_instance_not_found.py``); ``Instance.status`` in
  booting/active/unhealthy/terminating/terminated/preempted (``instance_status.py``).
- ``list_instances.py``: ``GET /api/v1/instances``; ``terminate_instance.py``: ``POST /api/v1/instance-operations/
  terminate`` {instance_ids} -> ``{"data": {"terminated_instances": [...]}}``, 404 for unknown ids.
- ``list_ssh_keys.py``: ``GET /api/v1/ssh-keys`` -> ``{"data": [{id, name, public_key}]}``.
- Every error body is ``{"error": {"code", "message", "suggestion"}}``; 401 is ``global/invalid-api-key`` "API key was
  invalid, expired, or deleted." (``api_error_unauthorized.py``); auth is Bearer or Basic (key as user name).

Rate limits ("1 request per second, launch 1 per 10 s", Lambda's docs) are not in the spec; tests inject 429s with
``fail_next``. Instances report ``ip`` 127.0.0.1 so the console reaches a channel served on this machine.

With ``machines_root``, a launched instance boots as a local process (``tests/fakes/machine.py``) that runs its
cloud-init user data, as cloud-init would, and is ``active`` from then on; terminating it kills the machine. The user
data's ``setsid`` is dropped, so the detached bootstrap stays in the machine's process group and dies with it.
"""

from __future__ import annotations

import base64
import itertools
import threading
from pathlib import Path
from typing import Any

from tests.fakes.loopback import LoopbackFake, Request, Response

TYPES = {
    "gpu_1x_a10": ("1x A10 (24 GB PCIe)", "A10 (24 GB PCIe)", 75, 1, ["us-east-1", "us-west-1"]),
    "gpu_1x_a100_sxm4": ("1x A100 (40 GB SXM4)", "A100 (40 GB SXM4)", 129, 1, ["us-east-1"]),
    "gpu_8x_a100_80gb_sxm4": ("8x A100 (80 GB SXM4)", "A100 (80 GB SXM4)", 1432, 8, []),
    "gpu_1x_gh200": ("1x GH200 (96 GB)", "GH200 (96 GB)", 149, 1, ["us-west-1"]),
}
REGION_NAMES = {"us-east-1": "Virginia, USA", "us-west-1": "California, USA", "us-south-1": "Texas, USA"}


def _err(status: int, code: str, message: str, suggestion: str | None = None) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if suggestion:
        body["suggestion"] = suggestion
    return Response(status, {"error": body})


class FakeLambda(LoopbackFake):
    def __init__(self, api_key: str = "lambda_test_key", *, ssh_keys: list[str] | None = None,
                 machines_root: Path | None = None) -> None:
        super().__init__()
        self.machines_root = Path(machines_root) if machines_root else None
        self.machines: dict[str, Any] = {}
        self.api_key = api_key
        self.ssh_keys = ["laptop"] if ssh_keys is None else ssh_keys
        self.capacity = {name: list(t[4]) for name, t in TYPES.items()}
        self.instances: dict[str, dict[str, Any]] = {}
        self.launch_bodies: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    # -- test controls ----------------------------------------------------------------------------------------
    def set_status(self, instance_id: str, status: str) -> None:
        self.instances[instance_id]["status"] = status

    def kill_all(self) -> None:
        for m in self.machines.values():
            m.kill()

    def _boot(self, iid: str, user_data: str) -> None:
        from tests.fakes.machine import LocalMachine

        m = LocalMachine(self.machines_root / iid)
        self.machines[iid] = m.start_script(user_data.replace("nohup setsid bash -c", "nohup bash -c"))
        self.instances[iid]["status"] = "active"

    # -- HTTP -------------------------------------------------------------------------------------------------
    def _authorized(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        if req.bearer is not None:
            return req.bearer == self.api_key
        if auth.lower().startswith("basic "):
            return base64.b64decode(auth[6:]).decode().split(":", 1)[0] == self.api_key
        return False

    def handle(self, req: Request) -> Response:
        if not self._authorized(req):
            return _err(401, "global/invalid-api-key", "API key was invalid, expired, or deleted.",
                        "Check your API key or create a new one, then try again.")
        path = req.path.removeprefix("/api/v1")
        with self._lock:
            if req.method == "GET" and path == "/instance-types":
                return Response(200, {"data": {name: self._type_entry(name) for name in TYPES}})
            if req.method == "GET" and path == "/ssh-keys":
                return Response(200, {"data": [{"id": f"k{i}", "name": n, "public_key": "ssh-ed25519 AAAA"}
                                               for i, n in enumerate(self.ssh_keys)]})
            if req.method == "GET" and path == "/instances":
                return Response(200, {"data": [i for i in self.instances.values() if i["status"] != "terminated"]})
            if req.method == "GET" and path.startswith("/instances/"):
                inst = self.instances.get(path.split("/")[2])
                if inst is None:
                    return _err(404, "global/object-does-not-exist", "Specified instance does not exist.")
                return Response(200, {"data": inst})
            if req.method == "POST" and path == "/instance-operations/launch":
                return self._launch(req.json() or {})
            if req.method == "POST" and path == "/instance-operations/terminate":
                return self._terminate(req.json() or {})
        return _err(404, "global/not-found", f"No route {req.method} {req.path}.")

    def _type_entry(self, name: str) -> dict[str, Any]:
        desc, gpu_desc, cents, gpus, _ = TYPES[name]
        return {
            "instance_type": {"name": name, "description": desc, "gpu_description": gpu_desc,
                              "price_cents_per_hour": cents,
                              "specs": {"vcpus": 30 * gpus, "memory_gib": 200 * gpus, "storage_gib": 512 * gpus,
                                        "gpus": gpus}},
            "regions_with_capacity_available": [{"name": r, "description": REGION_NAMES[r]}
                                                for r in self.capacity[name]],
        }

    def _launch(self, body: dict[str, Any]) -> Response:
        self.launch_bodies.append(body)
        missing = [k for k in ("region_name", "instance_type_name", "ssh_key_names") if k not in body]
        if missing:
            return _err(400, "global/invalid-parameters", f"Missing fields: {', '.join(missing)}.")
        if len(body["ssh_key_names"]) != 1:
            return _err(400, "global/invalid-parameters", "Exactly one SSH key must be specified.")
        if len(body.get("name") or "") > 64:
            return _err(400, "global/invalid-parameters", "Name must be 64 characters or fewer.")
        if len((body.get("user_data") or "").encode()) > 1_000_000:
            return _err(400, "global/invalid-parameters", "User data cannot exceed 1MB.")
        if body["ssh_key_names"][0] not in self.ssh_keys:
            return _err(404, "global/object-does-not-exist", "SSH key not found.",
                        "Check the name of the SSH key.")
        name = body["instance_type_name"]
        if name not in TYPES:
            return _err(400, "global/invalid-parameters", f"Invalid instance type {name}.")
        if body["region_name"] not in self.capacity[name]:
            return _err(400, "instance-operations/launch/insufficient-capacity",
                        "Not enough capacity to fulfill launch request.",
                        "Choose an instance type with more availability, or try again later.")
        iid = f"0920582c7ff041399e34823a0be6{next(self._ids):04d}"
        self.instances[iid] = {
            "id": iid, "name": body.get("name"), "ip": "127.0.0.1", "private_ip": "10.0.0.2", "status": "booting",
            "ssh_key_names": body["ssh_key_names"], "file_system_names": body.get("file_system_names") or [],
            "region": {"name": body["region_name"], "description": REGION_NAMES[body["region_name"]]},
            "instance_type": self._type_entry(name)["instance_type"], "hostname": "127-0-0-1.cloud.lambda.ai",
            "tags": body.get("tags") or [], "actions": {},
        }
        if self.machines_root is not None:
            self._boot(iid, body.get("user_data") or "")
        return Response(200, {"data": {"instance_ids": [iid]}})

    def _terminate(self, body: dict[str, Any]) -> Response:
        ids = body.get("instance_ids") or []
        unknown = [i for i in ids if i not in self.instances or self.instances[i]["status"] == "terminated"]
        if unknown:
            return _err(404, "global/object-does-not-exist", "Specified instance does not exist.")
        done = []
        for i in ids:
            self.instances[i]["status"] = "terminated"
            done.append(self.instances[i])
            if i in self.machines:  # the API answers first; the machine goes a moment later
                threading.Timer(0.3, self.machines[i].kill).start()
        return Response(200, {"data": {"terminated_instances": done}})

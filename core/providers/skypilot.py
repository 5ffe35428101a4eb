"""Any cloud or Kubernetes cluster through SkyPilot; the one provider for several nodes.

SkyPilot pins ``click<8.2``, which the console's other SDKs outgrow, so it lives in its own virtualenv
(``.venv-sky`` in the repo root, made by ``ensure_sky_venv`` / ``make sky``) and is driven as a subprocess: the
console runs ``core/providers/sky_driver.py`` with that venv's Python and reads one JSON line back
(``FTC_SKY_PYTHON`` points at another interpreter, e.g. in tests one that imports a fake ``sky``).

Per job the console writes ``jobs/<id>/sky/task.yaml``: ``resources`` (accelerators ``A100:8``, cloud/region or
any, ``use_spot``, ``disk_size``), ``num_nodes``, ``file_mounts`` carrying the trainer bundle, the dataset, the
local model and the bootstrap script (``core/bootstrap.py``) to every node, ``setup`` installing the trainer's
requirements, and ``run`` mapping ``SKYPILOT_NODE_RANK`` / ``SKYPILOT_NODE_IPS`` onto the bootstrap's
``FTC_NODE_RANK`` / ``FTC_MASTER_ADDR``, so the bootstrap's torchrun line does the multi-GPU and multi-node launch.
``HF_TOKEN`` is a task *secret* whose value reaches the driver through its environment, never the file.

Launch is ``sky launch -c <cluster> --down -d`` through the SDK: the cluster tears itself down once the job
ended and ``idle_minutes`` passed (the wait lets the console read the last log lines). The cluster name is the
console's label (``ftc-<console>-<job>``), which the orphan reaper lists. Reporting channel: ``stdout`` — the
trainer prints ``@@FTC {json}`` lines, the console reads them from ``sky logs`` and keeps a copy of the log, since
the log goes with the cluster. Cost is SkyPilot's own ``cost-report`` for the cluster.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator

from core.errors import (
    AuthError, LaunchError, NoCapacityError, ProviderError, ProviderUnavailable, QuotaError, ResourceNotFound,
)
from core.paths import PROJECT_ROOT
from core.providers.base import (
    GPUOffer, LaunchRequest, Provider, ProviderParams, ProviderRef, ProviderStatus, map_state, register,
)
from core.providers.http_channel import job_for_ref, job_from_name, load_remote, resource_name, save_remote
from core.providers.log_channel import LogChannelProvider

SKY_VENV = PROJECT_ROOT / ".venv-sky"
SKY_REQUIREMENT = "skypilot==0.14.1"
DRIVER = Path(__file__).with_name("sky_driver.py")
WORK_DIR = "~/ftc"
PAYLOAD_DIR = f"{WORK_DIR}/payload"  # where file_mounts put the job's files on every node
OUTPUT_MOUNT = f"{WORK_DIR}/output-bucket"  # where the output bucket, if any, is mounted
SECRET_NAMES = ("HF_TOKEN", "FTC_SINK_TOKEN")
FALLBACK_GPUS = {"T4": 16.0, "L4": 24.0, "A10G": 24.0, "L40S": 48.0, "A100": 40.0, "A100-80GB": 80.0,
                 "H100": 80.0, "H200": 141.0}

CLUSTER_STATUS = {"INIT": "provisioning", "UP": "running", "STOPPED": "failed"}
JOB_STATUS = {
    "INIT": "provisioning", "PENDING": "provisioning", "SETTING_UP": "running", "RUNNING": "running",
    "SUCCEEDED": "exited", "FAILED": "failed", "FAILED_SETUP": "failed", "FAILED_DRIVER": "failed",
    "CANCELLED": "terminated",
}
JOB_MESSAGES = {
    "FAILED": "The trainer failed on the cluster; see the log.",
    "FAILED_SETUP": "Installing the trainer's requirements failed on the cluster; see the log.",
    "FAILED_DRIVER": "SkyPilot's job driver failed on the cluster.",
    "CANCELLED": "The SkyPilot job was cancelled.",
}

# SkyPilot's exception class names (sky/exceptions.py) -> the console's error and what to do.
_AUTH = {"NoCloudAccessError", "CloudUserIdentityError", "InvalidCloudCredentials", "ApiServerAuthenticationError",
         "ClusterOwnerIdentityMismatchError"}
_CAPACITY = {"ResourcesUnavailableError", "KubeAPIUnreachableError", "ResourcesMismatchError"}
_UNAVAILABLE = {"ApiServerConnectionError", "NetworkError", "ClusterStatusFetchingError", "TimeoutExpired"}
_INPUT = {"ValidationError", "InvalidSkyPilotConfigError", "InvalidClusterNameError", "ValueError",
          "InvalidCloudConfigs", "NotSupportedError", "ProvisionUnsupportedError"}


class SkyParams(ProviderParams):
    cloud: str | None = Field(default=None, description="aws, gcp, azure, kubernetes, runpod, lambda...; empty: any")
    region: str | None = Field(default=None, description="Empty lets SkyPilot pick and fail over")
    accelerators: str | None = Field(
        default=None, description="Per node, e.g. A100:8 or H100-80GB:4; empty: the chosen GPU x count")
    num_nodes: int = Field(default=1, ge=1, le=64, description="Machines; more than one trains across nodes")
    use_spot: bool = Field(default=False, description="Spot / preemptible instances (cheaper, may be taken back)")
    disk_size: int = Field(default=256, ge=32, le=16384, description="Disk per node in GB")
    idle_minutes: int = Field(default=2, ge=0, le=60,
                              description="Minutes the finished cluster waits before it tears itself down")
    output_bucket: str | None = Field(
        default=None, description="A bucket the trained model is copied to when no HF token is given, e.g. "
                                  "s3://my-bucket/models (mounted on the cluster; the cluster itself is torn down)")

    @field_validator("output_bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not re.fullmatch(r"(s3|gs|r2|az|cos|oci)://[a-z0-9][a-z0-9._-]{1,62}(/[A-Za-z0-9_.-]+)*/?", v):
            raise ValueError("write it as s3://BUCKET or s3://BUCKET/PREFIX (also gs, r2, az, cos, oci)")
        return v.rstrip("/")

    @field_validator("cloud", "region")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        if v in (None, "", "any"):
            return None
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("letters, digits, '.', '_' and '-' only")
        return v.lower() if v.isalpha() else v

    @field_validator("accelerators")
    @classmethod
    def _acc(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*(:\d{1,2})?", v):
            raise ValueError("write it as NAME or NAME:COUNT, e.g. A100:8")
        return v


# -- the sky virtualenv -------------------------------------------------------------------------------------------

def sky_python() -> str:
    return os.environ.get("FTC_SKY_PYTHON") or str(SKY_VENV / "bin" / "python")


def ensure_sky_venv(venv: Path = SKY_VENV, *, requirement: str = SKY_REQUIREMENT, python: str = sys.executable,
                    timeout_s: float = 1800.0) -> Path:
    """Create ``.venv-sky`` with SkyPilot when it is missing (about 1.5 min and 460 MB from a local index)."""
    py = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.is_file() and marker.read_text().strip() == requirement:
        return py
    try:
        subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, text=True, timeout=120)
        subprocess.run([str(py), "-m", "pip", "install", "-q", requirement], check=True, capture_output=True,
                       text=True, timeout=timeout_s)
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "")[-500:]
        raise ProviderError(f"Could not install SkyPilot into {venv}: {tail.strip() or exc}",
                            hint="Check the package index, then run `make sky`.") from None
    marker.write_text(requirement + "\n")
    return py


# -- the task -----------------------------------------------------------------------------------------------------

def accelerators_for(params: SkyParams, gpu_type: str | None, gpu_count: int) -> tuple[str, int]:
    """SkyPilot's ``NAME:COUNT`` per node, and the count (torchrun's processes per node)."""
    acc = params.accelerators
    if not acc:
        if not gpu_type:
            raise LaunchError("Choose a GPU, or set accelerators (e.g. A100:8) in the SkyPilot settings.")
        # An offer id may carry its count ("A100:8"); the GPUs chosen on the page decide.
        name = re.sub(r"\s+", "-", gpu_type.split(":")[0].strip()).replace("NVIDIA-", "")
        acc = f"{name}:{gpu_count}"
        try:
            SkyParams(accelerators=acc)  # the same check as a typed value
        except ValidationError:
            raise LaunchError(f"SkyPilot has no accelerator name for the GPU '{gpu_type}'.",
                              hint="Set accelerators (e.g. A100:8) in the SkyPilot settings.") from None
    name, _, count = acc.partition(":")
    return f"{name}:{int(count or 1)}", int(count or 1)


def build_task(*, name: str, accelerators: str, params: SkyParams, mounts: dict[str, Any], gpus_per_node: int,
               secret_names: list[str] | None = None, extra_requirements: list[str] | None = None,
               python: str = "python3") -> dict[str, Any]:
    """The SkyPilot task (YAML schema of ``sky/utils/schemas.py``: get_task_schema) for one job.

    ``secret_names`` are listed without a value: the driver supplies each from its environment. SkyPilot refuses
    to launch a task with a secret it has no value for, so only secrets the user gave are listed.
    """
    resources: dict[str, Any] = {"accelerators": accelerators, "use_spot": params.use_spot,
                                 "disk_size": params.disk_size}
    if params.cloud:
        resources["cloud"] = params.cloud
    if params.region:
        resources["region"] = params.region
    reqs = " ".join(shlex.quote(r) for r in (extra_requirements or []))
    py = f'"${{FTC_PYTHON:-{python}}}"'  # the image's Python; FTC_PYTHON for an image (or a test) that differs
    setup = "\n".join([
        "set -euo pipefail",
        f"mkdir -p {WORK_DIR}/setup && tar -xzf {PAYLOAD_DIR}/bundle.tar.gz -C {WORK_DIR}/setup",
        f'{py} -c "import torch" 2>/dev/null || {py} -m pip install -q torch',
        f"{py} -m pip install -q -r {WORK_DIR}/setup/trainer/requirements.txt" + (f" {reqs}" if reqs else ""),
    ])
    run = "\n".join([
        "set -euo pipefail",
        # SkyPilot lists the nodes' IPs one per line, node 0 first; torchrun meets there.
        'export FTC_NODE_RANK="${SKYPILOT_NODE_RANK:-0}"',
        'export FTC_MASTER_ADDR="$(echo "${SKYPILOT_NODE_IPS:-127.0.0.1}" | head -n1)"',
        "export FTC_MASTER_PORT=29500 FTC_SKIP_INSTALL=1",
        f'export FTC_WORK="$HOME/ftc/work" FTC_PYTHON={py}',
        f'if [ "${{SKYPILOT_NUM_GPUS_PER_NODE:-{gpus_per_node}}}" != {gpus_per_node} ]; then',
        f'  echo "[ftc] SkyPilot gave $SKYPILOT_NUM_GPUS_PER_NODE GPUs per node; the job was planned for '
        f'{gpus_per_node}"; exit 3',
        "fi",
        f"exec bash {PAYLOAD_DIR}/bootstrap.sh",
    ])
    task: dict[str, Any] = {
        "name": name,
        "resources": resources,
        "num_nodes": params.num_nodes,
        "file_mounts": dict(mounts),
        "envs": {"FTC_CONSOLE": "1"},
        "setup": setup,
        "run": run,
    }
    if secret_names:
        task["secrets"] = {n: None for n in secret_names}
    return task


def dump_task(task: dict[str, Any], path: Path) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(task, sort_keys=False, default_flow_style=False), encoding="utf-8")
    return path


# -- the provider -------------------------------------------------------------------------------------------------

def _error(kind: str, message: str) -> ProviderError:
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)  # SkyPilot colours its messages for a terminal
    short = message.strip().splitlines()[-1] if message.strip() else kind
    if kind in _AUTH or "credential" in message.lower():
        return AuthError(f"SkyPilot cannot use any cloud account: {short}",
                         hint="Set up a cloud's credentials and run `.venv-sky/bin/sky check`.")
    if kind in _CAPACITY:
        return NoCapacityError(f"SkyPilot found no machine for this job: {short}",
                               hint="Try another accelerator, cloud or region, allow spot, or try again later.")
    if "quota" in message.lower():
        return QuotaError(f"A cloud quota stops the launch: {short}")
    if kind == "ClusterDoesNotExist":
        return ResourceNotFound(f"SkyPilot has no such cluster: {short}")
    if kind in _UNAVAILABLE or (kind == "CloudError" and "ConnectionError" in message):
        return ProviderUnavailable(f"SkyPilot is not reachable right now ({kind}): {short}")
    if kind in _INPUT:
        return LaunchError(f"SkyPilot refused the task: {short}")
    return ProviderError(f"SkyPilot failed ({kind}): {short}")


@register
class SkyPilotProvider(LogChannelProvider, Provider):
    name = "skypilot"
    display_name = "SkyPilot (any cloud)"
    Params = SkyParams
    report_channel = "stdout"
    capabilities = {
        "gpu": None,
        "multi_gpu": None,
        "multi_node": None,
        "spot": None,
        "budget_enforced_by_provider": None,
        "live_metrics": None,
        "self_release": None,
        "artifact_download": "Without a Hugging Face token or an output bucket the model goes with the cluster.",
    }

    def __init__(self, credentials: dict[str, str] | None = None, *, timeout_s: float = 180.0) -> None:
        super().__init__(credentials)
        self.timeout_s = timeout_s
        # How long a launch waits for SkyPilot's answer: fast refusals (no offer, no credentials) come back in it;
        # a slower provisioning is then followed by status().
        self.launch_wait_s = 30.0

    # -- the subprocess -------------------------------------------------------------------------------------
    def driver(self, *args: str, env: dict[str, str] | None = None, timeout_s: float | None = None) -> dict[str, Any]:
        py = sky_python()
        if not os.path.exists(py) and os.sep in py:
            raise ProviderError("SkyPilot is not installed for the console.",
                                hint="Run `make sky` (it creates .venv-sky with SkyPilot).")
        try:
            proc = subprocess.run([py, str(DRIVER), *args], capture_output=True, text=True,
                                  timeout=timeout_s or self.timeout_s, env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired:
            raise ProviderUnavailable(f"SkyPilot did not answer '{args[0]}' in time.") from None
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        try:
            doc = json.loads(lines[-1])
        except (IndexError, ValueError):
            tail = (proc.stderr or proc.stdout).strip()[-300:]
            raise ProviderError(f"SkyPilot's driver gave no answer (exit {proc.returncode}): {tail}") from None
        if not doc.get("ok"):
            err = doc.get("error") or {}
            raise _error(err.get("type", "Error"), err.get("message", ""))
        return doc

    # -- interface ------------------------------------------------------------------------------------------
    def validate_credentials(self) -> dict[str, Any]:
        doc = self.driver("check")
        if not doc.get("enabled_clouds"):
            raise AuthError("SkyPilot has no cloud enabled.",
                            hint="Set up a cloud's credentials and run `.venv-sky/bin/sky check`.")
        return {"account": f"SkyPilot {doc.get('version') or ''}".strip(), "clouds": doc["enabled_clouds"]}

    def offers(self) -> list[GPUOffer]:
        try:
            rows = self.driver("offers").get("offers") or []
        except ProviderError:
            rows = []
        if not rows:
            # SkyPilot's catalog is fetched from the web; without it the common GPUs are still offered, priced by
            # SkyPilot's optimizer at launch.
            return [GPUOffer(gpu_type=n, vram_gb=v, price_per_hour=None, provider_gpu_id=n, max_count=8,
                             notes="SkyPilot's catalog is not reachable; the price is decided at launch.")
                    for n, v in FALLBACK_GPUS.items()]
        best: dict[tuple[str, int], dict[str, Any]] = {}
        for r in rows:
            if not r.get("price") or not r.get("count"):
                continue
            key = (r["name"], int(r["count"]))
            if key not in best or r["price"] < best[key]["price"]:
                best[key] = r
        # No region: SkyPilot picks one and fails over; the cheapest place is only named in the notes.
        out = [GPUOffer(gpu_type=n, vram_gb=float(r.get("memory_gb") or 0), price_per_hour=r["price"] / c,
                        provider_gpu_id=n, max_count=c, cloud=r.get("cloud"),
                        notes=f"cheapest: {r.get('cloud')} {r.get('region') or ''} {r.get('instance_type') or ''}"
                              .strip())
               for (n, c), r in best.items()]
        return sorted(out, key=lambda o: (o.price_per_hour or 0, o.max_count))

    @staticmethod
    def secrets(req: LaunchRequest) -> dict[str, str]:
        return {k: v for k, v in req.env.items() if k in SECRET_NAMES and v}

    def prepare(self, req: LaunchRequest) -> tuple[Path, SkyParams, str]:
        """Write the job's payload files and task.yaml; returns (task path, params, cluster name)."""
        import dataclasses

        from core.providers.log_channel import prepare_log_payload

        params = req.params if isinstance(req.params, SkyParams) else SkyParams()
        acc, per_node = accelerators_for(params, req.gpu_type, req.gpu_count)
        sky_dir = Path(req.job_dir) / "sky"
        mounts: dict[str, Any] = {}

        def stage(files: dict[str, Path]) -> dict[str, dict[str, Any]]:
            # file_mounts copy each file to every node; the bootstrap finds them as paths on the machine.
            fetch = {}
            for name, local in files.items():
                remote = f"{PAYLOAD_DIR}/{name}" + (".jsonl" if name == "dataset" else ".tar.gz")
                mounts[remote] = str(Path(local).resolve())
                # Relative to the bootstrap's work folder ($HOME/ftc/work): the home differs between clouds.
                fetch[name] = {"source": "path", "path": "../payload/" + remote.rsplit("/", 1)[1]}
            return fetch

        # The quoted price is per node; the machine's budget guard and deadline price the whole cluster.
        from core.jobspec import JobSpec

        quoted = JobSpec.read(req.spec_path).cost_per_hour
        price = quoted * params.num_nodes if quoted else None
        keep: dict[str, str] = {}
        if params.output_bucket:
            # SkyPilot mounts the bucket on every node (MOUNT mode); the model copied there outlives the cluster.
            scheme, _, rest = params.output_bucket.partition("://")
            bucket, _, prefix = rest.partition("/")
            mounts[OUTPUT_MOUNT] = {"source": f"{scheme}://{bucket}", "mode": "MOUNT"}
            sub = f"{prefix}/{req.job_id}" if prefix else req.job_id
            keep = {"keep_dir": f"{OUTPUT_MOUNT}/{sub}", "keep_uri": f"{scheme}://{bucket}/{sub}"}
        payload = prepare_log_payload(
            dataclasses.replace(req, gpu_count=per_node), provider=self.name, price_per_hour=price,
            work_dir=f"{WORK_DIR}/work", stage=stage, nodes=params.num_nodes, install=False,
            artifact_fallback="keep", **keep)
        boot = sky_dir / "bootstrap.sh"
        boot.parent.mkdir(parents=True, exist_ok=True)
        boot.write_text(payload.script, encoding="utf-8")
        mounts[f"{PAYLOAD_DIR}/bootstrap.sh"] = str(boot.resolve())
        extra = ["bitsandbytes>=0.45"] if payload.spec.config.quantization.mode != "none" else []
        cluster = resource_name(req.job_id)
        task = build_task(name=cluster, accelerators=acc, params=params, mounts=mounts, gpus_per_node=per_node,
                          secret_names=sorted(self.secrets(req)), extra_requirements=extra)
        return dump_task(task, sky_dir / "task.yaml"), params, cluster

    def launch(self, req: LaunchRequest) -> ProviderRef:
        path, params, cluster = self.prepare(req)
        secrets = self.secrets(req)
        args = ["launch", str(path), "--cluster", cluster, "--idle-minutes", str(params.idle_minutes),
                "--wait", str(self.launch_wait_s)]
        for k in secrets:
            args += ["--secret", k]
        save_remote(req.job_id, provider=self.name, ref=cluster, launched_at=time.time(), ended_at=None,
                    num_nodes=params.num_nodes)
        doc = self.driver(*args, env=secrets, timeout_s=self.timeout_s + 60)
        save_remote(req.job_id, request_id=doc.get("request_id"), sky_job_id=doc.get("job_id"))
        return ProviderRef(ref=cluster, gpu_type=params.accelerators or req.gpu_type,
                           extra={"request_id": doc.get("request_id"), "num_nodes": params.num_nodes})

    def _remote(self, ref: str) -> tuple[str | None, dict[str, Any]]:
        job_id = job_for_ref(self.name, ref)
        return job_id, (load_remote(job_id) or {}) if job_id else {}

    def status(self, ref: str) -> ProviderStatus:
        job_id, doc = self._remote(ref)
        st = self.driver("status", ref, "--refresh", "--jobs")
        cluster = next((c for c in st.get("clusters") or [] if c["name"] == ref), None)
        if cluster is None:
            return self._vanished(ref, job_id, doc)
        raw = cluster["status"]
        jobs = sorted(st.get("jobs") or [], key=lambda j: j.get("job_id") or 0)
        job = next((j for j in jobs if j["job_id"] == doc.get("sky_job_id")), jobs[-1] if jobs else None)
        uptime = time.time() - cluster["launched_at"] if cluster.get("launched_at") else None
        if raw == "UP" and job:
            state = map_state(job["status"], JOB_STATUS)
            if job_id:
                save_remote(job_id, sky_job_id=job["job_id"], last_job_status=job["status"])
            exit_code = 0 if state == "exited" else (1 if state == "failed" else None)
            return ProviderStatus(state=state, exit_code=exit_code, message=JOB_MESSAGES.get(job["status"]),
                                  uptime_s=uptime, raw={"cluster": raw, "job": job["status"]})
        state = map_state(raw, CLUSTER_STATUS)
        if raw == "UP" and not jobs:
            state = "provisioning"  # up, but SkyPilot has not queued the job yet
        message = ("SkyPilot reports the cluster stopped (a spot preemption, or stopped outside the console)."
                   if raw == "STOPPED" else None)
        return ProviderStatus(state=state, message=message, uptime_s=uptime, raw={"cluster": raw})

    def _vanished(self, ref: str, job_id: str | None, doc: dict[str, Any]) -> ProviderStatus:
        if doc.get("request_id") and not doc.get("last_job_status"):
            # Still being provisioned by SkyPilot's API server, or the launch failed there.
            req = (self.driver("request", doc["request_id"]).get("request") or {})
            if req.get("status") in ("PENDING", "RUNNING"):
                return ProviderStatus(state="provisioning", raw={"request": req["status"]})
            if req.get("error"):
                exc = _error(req["error"]["type"], req["error"]["message"])
                return ProviderStatus(state="failed", exit_code=None, message=str(exc), raw={"request": req})
        if job_id and not doc.get("ended_at"):
            save_remote(job_id, ended_at=time.time())
        last = doc.get("last_job_status")
        if last == "SUCCEEDED":
            return ProviderStatus(state="exited", exit_code=0, message="The cluster finished and tore itself down.")
        if last in JOB_MESSAGES:
            return ProviderStatus(state=map_state(last, JOB_STATUS), exit_code=1, message=JOB_MESSAGES[last])
        return ProviderStatus(state="terminated", message="The cluster no longer exists.")

    def log_text(self, ref: str) -> str:
        """The job's whole log; a copy is kept because the log goes when the cluster tears itself down."""
        job_id, doc = self._remote(ref)
        copy = Path(_job_dir(job_id)) / "sky" / "job.log" if job_id else None
        try:
            args = ["logs", ref] + (["--job-id", str(doc["sky_job_id"])] if doc.get("sky_job_id") else [])
            text = self.driver(*args).get("log") or ""
        except (ResourceNotFound, ProviderError):
            text = ""
        if copy is not None:
            old = copy.read_text(encoding="utf-8") if copy.is_file() else ""
            if len(text) >= len(old) and text:
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(text, encoding="utf-8")
            else:
                text = old
        return text

    def cost(self, ref: str) -> float | None:
        rows = self.driver("cost", ref).get("clusters") or []
        costs = [r["total_cost"] for r in rows if r.get("name") == ref and r.get("total_cost") is not None]
        return float(costs[0]) if costs else None

    def cancel(self, ref: str) -> None:
        job_id, doc = self._remote(ref)
        pending = ["--request-id", doc["request_id"]] if doc.get("request_id") else []
        try:
            self.driver("down", ref, *pending, timeout_s=self.timeout_s + 300)
        except ResourceNotFound:
            pass  # already gone
        if job_id and not (load_remote(job_id) or {}).get("ended_at"):
            save_remote(job_id, ended_at=time.time())

    def list_owned(self) -> list[str]:
        return list(self.list_owned_jobs())

    def list_owned_jobs(self) -> dict[str, str | None]:
        owned = {}
        for c in self.driver("status").get("clusters") or []:
            job = job_from_name(c["name"])
            if job:
                owned[c["name"]] = job
        return owned


def _job_dir(job_id: str) -> Path:
    from core.paths import job_dir

    return job_dir(job_id)


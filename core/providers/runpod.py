"""RunPod on-demand pods through the ``runpod`` SDK (GraphQL), reporting through the pod's HTTPS proxy.

- Offers: ``get_gpus`` for the catalogue, ``get_gpu`` per type for live community and secure prices (one offer per
  cloud type); the launch quotes the cloud type it launches (``RunPodParams.cloud_type``) and the GPU count.
- Launch: ``podFindAndDeployOnDemand`` (the SDK's own mutation builder and transport, called with this provider's
  key rather than the SDK's process-global one). The bootstrap travels gzip+base64 in ``FTC_BOOTSTRAP`` and the
  start command decodes and runs it; the per-job channel token and ``HF_TOKEN`` go in the pod's env. The pod's name
  (``ftc-<console>-<job>``) is the console's label, which the orphan reaper looks for.
- The pod serves the report channel on ``port``; the console reaches it at ``https://<pod>-<port>.proxy.runpod.net``,
  pushes the bundle and dataset there, and pulls rows and the artifact back.
- The pod removes itself (``runpodctl remove pod $RUNPOD_POD_ID``, with the pod-scoped key RunPod puts in every
  pod) when the script ends, fails, or reaches the budget deadline; the console terminates it as well on every
  terminal state, and when the machine finished but did not go.
- Status: ``get_pod``; cost: ``costPerHr`` (all GPUs of the pod) x uptime.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from pydantic import Field, field_validator

from core.errors import (
    AuthError, LaunchError, NoCapacityError, ProviderError, ProviderUnavailable, RateLimited, ResourceNotFound,
)
from core.providers.base import (
    GPUOffer, LaunchRequest, Provider, ProviderParams, ProviderRef, ProviderStatus, call_with_retries, map_state,
    register,
)
from core.providers.http_channel import (
    ChannelProvider, estimated_cost, job_for_ref, job_from_name, job_token, load_remote, resource_name, save_remote,
)

DEFAULT_IMAGE = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
WORK_DIR = "/workspace/ftc"
RELEASE_CMD = 'runpodctl remove pod "$RUNPOD_POD_ID" || runpodctl stop pod "$RUNPOD_POD_ID"'
PROXY_URL = "https://{pod_id}-{port}.proxy.runpod.net"

# RunPod desiredStatus -> ProviderStatus.state. RUNNING is refined by whether the container runtime is up.
STATUS = {
    "CREATED": "provisioning",
    "RESTARTING": "provisioning",
    "RUNNING": "running",
    "EXITED": "exited",
    "PAUSED": "exited",
    "DEAD": "failed",
    "TERMINATED": "terminated",
}
_NO_CAPACITY = ("no longer any instances available", "no instances currently available", "not enough free",
                "no available", "out of stock")
_GQL_SAFE = re.compile(r'^[^"\\\n\r]*$')


class RunPodParams(ProviderParams):
    cloud_type: Literal["COMMUNITY", "SECURE"] = Field(
        default="COMMUNITY", description="The cloud the price is quoted for and the pod launched on")
    image: str = Field(default=DEFAULT_IMAGE, description="A CUDA image with Python 3.10+ and torch")
    volume_gb: int = Field(default=50, ge=10, le=4000, description="Pod volume at /workspace (checkpoints)")
    container_disk_gb: int = Field(default=30, ge=10, le=1000)
    network_volume_id: str | None = None
    data_center_id: str | None = None
    port: int = Field(default=8765, ge=1024, le=65535, description="Port of the report channel")
    env: dict[str, str] = Field(default_factory=dict, description=(
        "Extra environment variables for the pod. Not for secrets: they are kept with the job; keys come from the "
        "credentials"))

    @field_validator("image", "network_volume_id", "data_center_id")
    @classmethod
    def _gql_safe(cls, v: str | None) -> str | None:
        if v is not None and not _GQL_SAFE.match(v):
            raise ValueError("may not contain quotes, backslashes or line breaks")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise ValueError(f"{key!r} is not an environment variable name")
            if key.startswith("FTC_"):
                raise ValueError(f"{key} is reserved for the console")
            if not _GQL_SAFE.match(value):
                raise ValueError(f"the value of {key} may not contain quotes, backslashes or line breaks")
        return v


@register
class RunPodProvider(ChannelProvider, Provider):
    name = "runpod"
    display_name = "RunPod"
    Params = RunPodParams
    report_channel = "http"
    capabilities = {
        "gpu": None,
        "multi_gpu": None,
        "multi_node": "A pod is one machine; use SkyPilot for several nodes.",
        "spot": "Interruptible pods are not offered here: a preempted pod would lose the run.",
        "budget_enforced_by_provider": None,
        "live_metrics": None,
        "self_release": None,
        "artifact_download": None,
    }

    def __init__(self, credentials: dict[str, str] | None = None, *, proxy_url: str = PROXY_URL,
                 offers_ttl_s: float = 300.0) -> None:
        super().__init__(credentials)
        self.proxy_url = proxy_url
        self.offers_ttl_s = offers_ttl_s
        self._offers: tuple[float, list[GPUOffer]] | None = None
        self._lock = threading.Lock()

    # -- SDK calls, errors mapped ---------------------------------------------------------------------------
    @property
    def _key(self) -> str:
        return self.credential("api_key", hint="Paste it on the Deploy page, or set RUNPOD_API_KEY or [runpod] "
                                               "api_key in .streamlit/secrets.toml.")

    def _call(self, fn: Any, *args: Any, retry: bool = True, **kw: Any) -> Any:
        """Run one SDK call with this provider's key; idempotent calls retry on 429/5xx."""
        def once() -> Any:
            import requests
            from runpod import error as rp_error

            try:
                return fn(*args, api_key=self._key, **kw)
            except rp_error.AuthenticationError:
                raise AuthError("RunPod refused the API key.",
                                hint="Check it at https://www.runpod.io/console/user/settings.") from None
            except rp_error.QueryError as exc:
                raise _query_error(str(exc)) from None
            except (ValueError, KeyError, TypeError) as exc:
                # The SDK parses every body as JSON and indexes ["data"]: a 429 or 5xx page surfaces here.
                if isinstance(exc, ValueError) and "No GPU found" in str(exc):
                    raise LaunchError(str(exc)) from None
                raise ProviderUnavailable("RunPod answered with an error page (rate limit or outage).") from None
            except requests.RequestException as exc:
                raise ProviderUnavailable(f"RunPod is not reachable ({type(exc).__name__}).") from None

        return call_with_retries(once) if retry else once()

    def _gql(self, query: str, *, retry: bool) -> dict[str, Any]:
        from runpod.api.graphql import run_graphql_query

        return self._call(lambda api_key: run_graphql_query(query, api_key=api_key), retry=retry)

    # -- interface ------------------------------------------------------------------------------------------
    def validate_credentials(self) -> dict[str, Any]:
        from runpod.api.ctl_commands import get_user

        me = self._call(get_user)
        if not me:
            raise AuthError("RunPod did not recognise the API key.")
        return {"account": me.get("id"), "network_volumes": len(me.get("networkVolumes") or [])}

    def offers(self) -> list[GPUOffer]:
        from runpod.api.ctl_commands import get_gpu, get_gpus

        with self._lock:
            if self._offers and time.monotonic() - self._offers[0] < self.offers_ttl_s:
                return list(self._offers[1])
        types = self._call(get_gpus)
        with ThreadPoolExecutor(max_workers=6) as pool:
            details = list(pool.map(lambda t: self._call(get_gpu, t["id"]), types))
        out = []
        for d in details:
            for cloud in ("COMMUNITY", "SECURE"):
                price = d.get(f"{cloud.lower()}Price")
                offered = bool(d.get(f"{cloud.lower()}Cloud"))
                if not price:
                    continue
                out.append(GPUOffer(
                    gpu_type=d["displayName"], vram_gb=float(d["memoryInGb"]), price_per_hour=float(price),
                    provider_gpu_id=d["id"], available=offered, max_count=int(d.get("maxGpuCount") or 1),
                    cloud=cloud, source="live",
                    notes=None if offered else f"Not offered on {cloud.lower()} cloud right now",
                ))
        out.sort(key=lambda o: (o.price_per_hour or 0, o.gpu_type))
        with self._lock:
            self._offers = (time.monotonic(), out)
        return list(out)

    def launch(self, req: LaunchRequest) -> ProviderRef:
        from runpod.api.ctl_commands import get_gpu
        from runpod.api.mutations.pods import generate_pod_deployment_mutation

        from core.bootstrap import encode_for_env, env_start_command
        from core.providers.remote import prepare_payload

        params = req.params if isinstance(req.params, RunPodParams) else RunPodParams()
        gpu = self._resolve_gpu(req.gpu_type)
        quote = self._call(get_gpu, gpu["id"], req.gpu_count)
        cloud = params.cloud_type.lower()
        if not quote.get(f"{cloud}Cloud") or not quote.get(f"{cloud}Price"):
            other = "SECURE" if params.cloud_type == "COMMUNITY" else "COMMUNITY"
            raise NoCapacityError(f"RunPod offers no {gpu['displayName']} on {cloud} cloud right now.",
                                  hint=f"Pick the {other.lower()} cloud offer or another GPU.")
        if req.gpu_count > int(quote.get("maxGpuCount") or 1):
            raise LaunchError(f"A {gpu['displayName']} pod takes at most {quote.get('maxGpuCount')} GPUs.")
        price = round(float(quote[f"{cloud}Price"]) * req.gpu_count, 4)
        payload = prepare_payload(req, provider=self.name, price_per_hour=price, work_dir=WORK_DIR,
                                  release_cmd=RELEASE_CMD, port=params.port)
        env = {**params.env, **req.env, "FTC_BOOTSTRAP": encode_for_env(payload.script),
               "FTC_REPORT_TOKEN": job_token(req.job_id)}
        bad = [k for k, v in env.items() if not _GQL_SAFE.match(v)]
        if bad:
            raise LaunchError(f"The pod's environment values {bad} contain quotes or line breaks; remove them.")
        mutation = generate_pod_deployment_mutation(
            name=resource_name(req.job_id), image_name=params.image, gpu_type_id=gpu["id"],
            cloud_type=params.cloud_type, support_public_ip=True, start_ssh=True,
            data_center_id=params.data_center_id, gpu_count=req.gpu_count, volume_in_gb=params.volume_gb,
            container_disk_in_gb=params.container_disk_gb, docker_args=env_start_command("FTC_BOOTSTRAP", WORK_DIR),
            ports=f"{params.port}/http", volume_mount_path="/workspace", env=env,
            network_volume_id=params.network_volume_id,
        )
        # Not retried: a deploy that timed out may have created a pod (the orphan reaper finds it by its name).
        data = self._gql(mutation, retry=False)
        pod = (data.get("data") or {}).get("podFindAndDeployOnDemand") if isinstance(data, dict) else None
        if not pod or not pod.get("id"):
            raise NoCapacityError(f"RunPod returned no pod for {gpu['displayName']} x{req.gpu_count} on {cloud} "
                                  "cloud.", hint="Try the other cloud type, fewer GPUs or another GPU.")
        save_remote(req.job_id, ref=pod["id"], launched_at=time.time())
        return ProviderRef(ref=pod["id"], url=self.channel_url(pod["id"], req.job_id), cost_per_hour=price,
                           gpu_type=gpu["displayName"], extra={"deadline_epoch": payload.deadline_epoch,
                                                               "cloud_type": params.cloud_type})

    def _resolve_gpu(self, gpu_type: str | None) -> dict[str, Any]:
        from runpod.api.ctl_commands import get_gpus

        types = self._call(get_gpus)
        if not gpu_type:
            raise LaunchError("Pick a GPU type for the pod.",
                              hint=f"RunPod offers: {', '.join(t['displayName'] for t in types)}.")
        want = gpu_type.strip().lower()
        for t in types:
            if want in (t["id"].lower(), t["displayName"].lower()):
                return t
        raise LaunchError(f"RunPod has no GPU type '{gpu_type}'.",
                          hint=f"Valid types: {', '.join(t['displayName'] for t in types)}.")

    def _pod(self, ref: str) -> dict[str, Any] | None:
        """The pod, or None once it is gone (RunPod answers null, or 'not found', for a terminated pod)."""
        from runpod.api.ctl_commands import get_pod

        try:
            return self._call(get_pod, ref)
        except ResourceNotFound:
            return None

    def status(self, ref: str) -> ProviderStatus:
        pod = self._pod(ref)
        if pod is None:
            self.note_gone(ref)
            return ProviderStatus(state="terminated", message="The pod no longer exists (it removed itself when "
                                  "the job ended, or it was terminated).")
        raw = (pod.get("desiredStatus") or "").upper()
        state = map_state(raw, STATUS)
        if state == "running" and not pod.get("runtime"):
            state = "provisioning"  # rented, container still pulling the image or starting
        if state == "running" and self.channel_settled(ref):
            state = "exited"  # the job is done and collected, but the pod did not remove itself
        message = None
        if state in ("exited", "failed"):
            message = f"RunPod reports the pod {raw.lower()}."
        return ProviderStatus(state=state, message=message, cost_per_hour=pod.get("costPerHr"),
                              uptime_s=float(pod.get("uptimeSeconds") or 0),
                              raw={"desiredStatus": raw, "gpu": (pod.get("machine") or {}).get("gpuDisplayName")})

    def cost(self, ref: str) -> float | None:
        pod = self._pod(ref)
        if pod is not None and pod.get("costPerHr") is not None:
            return float(pod["costPerHr"]) * float(pod.get("uptimeSeconds") or 0) / 3600.0
        job_id = job_for_ref(self.name, ref)
        return estimated_cost(job_id, alive=False) if job_id else None

    def cancel(self, ref: str) -> None:
        """Terminate the pod (billing ends, the volume goes); a pod already gone is fine."""
        from runpod.api.mutations.pods import generate_pod_terminate_mutation

        if self._pod(ref) is not None:
            try:
                self._gql(generate_pod_terminate_mutation(ref), retry=True)
            except ResourceNotFound:
                pass  # it went between the two calls
        self.note_gone(ref)

    def list_owned(self) -> list[str]:
        return list(self.list_owned_jobs())

    def list_owned_jobs(self) -> dict[str, str | None]:
        from runpod.api.ctl_commands import get_pods

        pods = self._call(get_pods) or []
        return {p["id"]: job_from_name(p.get("name")) for p in pods
                if job_from_name(p.get("name")) and (p.get("desiredStatus") or "").upper() != "TERMINATED"}

    def channel_url(self, ref: str, job_id: str) -> str | None:
        port = (load_remote(job_id) or {}).get("port")
        return self.proxy_url.format(pod_id=ref, port=port) if port else None



def _query_error(message: str) -> ProviderError:
    low = message.lower()
    if any(k in low for k in _NO_CAPACITY):
        return NoCapacityError(f"RunPod: {message}", hint="Try the other cloud type, fewer GPUs or another GPU.")
    if "too many" in low or "rate limit" in low:
        return RateLimited(f"RunPod is rate limiting the console ({message}).")
    if "not found" in low or "does not exist" in low:
        return ResourceNotFound(f"RunPod: {message}")
    if "unauthorized" in low or "api key" in low:
        return AuthError(f"RunPod refused the request: {message}")
    return ProviderError(f"RunPod: {message}")

"""Lambda Cloud GPU instances through a small client of its REST API (Lambda publishes no Python SDK).

API: Lambda Cloud API v1 (OpenAPI 1.10, https://cloud.lambda.ai/api/v1/openapi.json): ``GET /instance-types`` (price
in cents per hour per instance, regions with capacity), ``GET /ssh-keys``, ``POST /instance-operations/launch``
(exactly one SSH key; ``user_data`` is cloud-init, at most 1 MB), ``GET /instances[/<id>]``,
``POST /instance-operations/terminate``. Errors are ``{"error": {"code", "message", "suggestion"}}``. The base
URL is a constructor argument (tests point it at a loopback fake).

The bootstrap goes in as cloud-init user data: a shell script that writes an env file (the channel token, and
``HF_TOKEN`` / ``LAMBDA_API_KEY`` when given) and the bootstrap, both base64, and starts it detached. Lambda bills an
instance until it is terminated (shutting it down from inside does not stop billing), so the machine can only
release itself with the account key; ``self_terminate`` (on by default) ships the key in the user data for that
and for the budget deadline. Turned off, the console terminates the instance when the job ends, but a closed
console then cannot stop the bill at the deadline.

The instance serves the report channel on its public IP; the console pulls rows from ``https://<ip>:<port>``,
accepting only the self-signed certificate it issued for the job (``channel_tls.py``), whose key travels in the
env file beside the channel token.
Cost is estimated as price x time since launch (the API reports no per-instance spend).
"""

from __future__ import annotations

import base64
import re
import shlex
import time
from typing import Any

from pydantic import Field

from core.errors import LaunchError, NoCapacityError, ProviderError, RateLimited, ResourceNotFound
from core.providers.base import (
    GPUOffer, LaunchRequest, Provider, ProviderParams, ProviderRef, ProviderStatus, call_with_retries,
    map_http_error, map_state, register,
)
from core.providers.channel_tls import issue_channel_cert
from core.providers.http_channel import (
    ChannelProvider, console_id, estimated_cost, job_for_ref, job_from_name, job_token, load_remote,
    resource_name, save_remote,
)

DEFAULT_BASE_URL = "https://cloud.lambda.ai/api/v1"
WORK_DIR = "/home/ubuntu/ftc"
USER_DATA_MAX = 1_000_000

STATUS = {
    "BOOTING": "provisioning",
    "ACTIVE": "running",
    "UNHEALTHY": "running",  # Lambda may recover it; the heartbeat and the provisioning timeout watch it
    "TERMINATING": "terminated",
    "TERMINATED": "terminated",
    "PREEMPTED": "failed",
}


class LambdaParams(ProviderParams):
    region: str | None = Field(default=None, description="A region code; empty picks one with capacity")
    ssh_key_name: str | None = Field(default=None, description="A registered SSH key; empty takes the first")
    file_system_names: list[str] = Field(default_factory=list, max_length=1)
    port: int = Field(default=8765, ge=1024, le=65535, description="Port of the report channel")
    self_terminate: bool = Field(
        default=True, description="Let the instance terminate itself (ships the API key in its user data)")


class LambdaClient:
    """A thin client: one method per endpoint, errors mapped to the console's hierarchy, GETs retried."""

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, *, timeout: float = 30.0) -> None:
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _once(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import requests

        try:
            r = requests.request(method, self.base_url + path, json=body, timeout=self.timeout,
                                 headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"})
        except requests.RequestException as exc:
            from core.errors import ProviderUnavailable

            raise ProviderUnavailable(f"Lambda Cloud is not reachable ({type(exc).__name__}).") from None
        if r.status_code < 400:
            return r.json().get("data")
        try:
            err = r.json().get("error") or {}
        except ValueError:
            err = {}
        message = err.get("message") or r.reason or f"HTTP {r.status_code}"
        if err.get("suggestion"):
            message = f"{message.rstrip('.')}. {err['suggestion']}"
        retry_after = r.headers.get("Retry-After")
        return _raise(map_http_error("Lambda Cloud", r.status_code, message, code=err.get("code"),
                                     retry_after=float(retry_after) if retry_after and retry_after.isdigit()
                                     else None), err.get("code"))

    def _get(self, path: str) -> Any:
        return call_with_retries(lambda: self._once("GET", path))

    def instance_types(self) -> dict[str, Any]:
        return self._get("/instance-types") or {}

    def ssh_keys(self) -> list[dict[str, Any]]:
        return self._get("/ssh-keys") or []

    def instances(self) -> list[dict[str, Any]]:
        return self._get("/instances") or []

    def instance(self, instance_id: str) -> dict[str, Any]:
        return self._get(f"/instances/{instance_id}")

    def launch(self, body: dict[str, Any]) -> list[str]:
        # Only a rate-limit refusal is retried: after a 5xx the instance may exist (the reaper finds strays).
        def once() -> Any:
            return self._once("POST", "/instance-operations/launch", body)

        for attempt in range(3):
            try:
                return (once() or {}).get("instance_ids") or []
            except RateLimited as exc:
                if attempt == 2:
                    raise
                time.sleep(min(12.0, exc.retry_after or 2.0 * (attempt + 1)))
        return []

    def terminate(self, instance_ids: list[str]) -> list[dict[str, Any]]:
        data = call_with_retries(lambda: self._once("POST", "/instance-operations/terminate",
                                                    {"instance_ids": instance_ids}))
        return (data or {}).get("terminated_instances") or []


def _raise(exc: ProviderError, code: str | None) -> Any:
    if isinstance(exc, ResourceNotFound) or code == "global/object-does-not-exist":
        raise ResourceNotFound(exc.message) from None
    raise exc


@register
class LambdaProvider(ChannelProvider, Provider):
    name = "lambda"
    display_name = "Lambda"
    Params = LambdaParams
    report_channel = "http"
    capabilities = {
        "gpu": None,
        "multi_gpu": None,
        "multi_node": "One instance per job; use SkyPilot for several nodes.",
        "spot": "Lambda sells on-demand instances only.",
        "budget_enforced_by_provider": None,
        "live_metrics": None,
        "self_release": None,
        "artifact_download": None,
    }

    def __init__(self, credentials: dict[str, str] | None = None, *, base_url: str = DEFAULT_BASE_URL) -> None:
        super().__init__(credentials)
        self.base_url = base_url

    @property
    def client(self) -> LambdaClient:
        key = self.credential("api_key", hint="Create one at https://cloud.lambda.ai/api-keys and paste it on the "
                                              "Deploy page, or set LAMBDA_API_KEY.")
        return LambdaClient(key, self.base_url)

    # -- interface ------------------------------------------------------------------------------------------
    def validate_credentials(self) -> dict[str, Any]:
        types = self.client.instance_types()
        keys = self.client.ssh_keys()
        return {"account": "Lambda Cloud", "instance_types": len(types), "ssh_keys": [k["name"] for k in keys]}

    def offers(self) -> list[GPUOffer]:
        out = []
        for name, entry in self.client.instance_types().items():
            t = entry["instance_type"]
            gpus = int((t.get("specs") or {}).get("gpus") or 0)
            if gpus < 1:
                continue
            regions = [r["name"] for r in entry.get("regions_with_capacity_available") or []]
            desc = t.get("gpu_description") or t.get("description") or name
            out.append(GPUOffer(
                gpu_type=desc.split(" (")[0], vram_gb=_vram(desc), provider_gpu_id=name, max_count=gpus,
                price_per_hour=round(t["price_cents_per_hour"] / 100 / gpus, 4), available=bool(regions),
                region=", ".join(regions) or None, source="live",
                notes=f"{t.get('description', name)}: ${t['price_cents_per_hour'] / 100:.2f}/h per instance",
            ))
        out.sort(key=lambda o: (o.price_per_hour or 0, o.max_count))
        return out

    def launch(self, req: LaunchRequest) -> ProviderRef:
        from core.providers.remote import prepare_payload

        params = req.params if isinstance(req.params, LambdaParams) else LambdaParams()
        client = self.client
        name, entry = self._resolve_type(client.instance_types(), req.gpu_type, req.gpu_count)
        regions = [r["name"] for r in entry.get("regions_with_capacity_available") or []]
        if not regions:
            raise NoCapacityError(f"No Lambda region has a {name} free right now.",
                                  hint="Try another instance type, or try again in a few minutes.")
        region = params.region or regions[0]
        if region not in regions:
            raise NoCapacityError(f"{region} has no {name} free right now.",
                                  hint=f"Regions with capacity: {', '.join(regions)}.")
        key = self._ssh_key(client, params.ssh_key_name)
        price = entry["instance_type"]["price_cents_per_hour"] / 100
        rname = resource_name(req.job_id)
        release = None
        if params.self_terminate:
            release = ('"$FTC_PY" "$FTC_WORK/ftc_channel.py" --dir "$FTC_WORK/report" release-lambda '
                       f"--base-url {shlex.quote(self.base_url)} --name {shlex.quote(rname)}")
        payload = prepare_payload(req, provider=self.name, price_per_hour=price, work_dir=WORK_DIR,
                                  release_cmd=release, port=params.port)
        cert = issue_channel_cert(req.job_id)
        save_remote(req.job_id, tls_sha256=cert.sha256)
        env = {**req.env, "FTC_REPORT_TOKEN": job_token(req.job_id),
               "FTC_REPORT_TLS_CERT": cert.cert_pem, "FTC_REPORT_TLS_KEY": cert.key_pem}
        if params.self_terminate:
            env["LAMBDA_API_KEY"] = client.api_key
        user_data = build_user_data(payload.script, env)
        if len(user_data.encode()) > USER_DATA_MAX:
            raise LaunchError("The launch script is larger than Lambda's 1 MB user-data limit.")
        body = {
            "region_name": region, "instance_type_name": name, "ssh_key_names": [key],
            "file_system_names": params.file_system_names, "name": rname, "user_data": user_data,
            "tags": [{"key": "finetune-console", "value": console_id()}, {"key": "ftc-job", "value": req.job_id}],
        }
        ids = client.launch(body)
        if not ids:
            raise NoCapacityError(f"Lambda launched no {name} in {region}.", hint="Try another region or type.")
        save_remote(req.job_id, ref=ids[0], launched_at=time.time(), region=region)
        return ProviderRef(ref=ids[0], cost_per_hour=price, gpu_type=entry["instance_type"].get("description", name),
                           extra={"deadline_epoch": payload.deadline_epoch if params.self_terminate else None,
                                  "region": region})

    @staticmethod
    def _resolve_type(types: dict[str, Any], gpu_type: str | None, gpu_count: int) -> tuple[str, dict[str, Any]]:
        if gpu_type and gpu_type in types:
            return gpu_type, types[gpu_type]
        want = (gpu_type or "").strip().lower()
        for name, entry in sorted(types.items()):
            t = entry["instance_type"]
            names = {t.get("gpu_description", "").lower(), t.get("gpu_description", "").split(" (")[0].lower(),
                     t.get("description", "").lower()}
            if want and want in names and int(t["specs"]["gpus"]) == gpu_count:
                return name, entry
        listing = ", ".join(sorted(types))
        raise LaunchError(f"Lambda has no instance type for {gpu_count} x '{gpu_type}'.",
                          hint=f"Instance types: {listing}.")

    @staticmethod
    def _ssh_key(client: LambdaClient, wanted: str | None) -> str:
        keys = [k["name"] for k in client.ssh_keys()]
        if not keys:
            raise LaunchError(
                "No SSH key is registered in your Lambda account, and Lambda requires one for every instance.",
                hint="Add your public key at https://cloud.lambda.ai/ssh-keys (or POST /ssh-keys), then launch "
                     "again.")
        if wanted and wanted not in keys:
            raise LaunchError(f"Lambda has no SSH key named '{wanted}'.", hint=f"Registered keys: {', '.join(keys)}.")
        return wanted or keys[0]

    def status(self, ref: str) -> ProviderStatus:
        try:
            inst = self.client.instance(ref)
        except ResourceNotFound:
            self.note_gone(ref)
            return ProviderStatus(state="terminated", message="The instance no longer exists.")
        raw = (inst.get("status") or "").upper()
        state = map_state(raw, STATUS)
        job_id = job_for_ref(self.name, ref)
        if job_id and inst.get("ip") and (load_remote(job_id) or {}).get("ip") != inst["ip"]:
            save_remote(job_id, ip=inst["ip"])
        if state == "terminated":
            self.note_gone(ref)
        if state == "running" and self.channel_settled(ref):
            state = "exited"  # the job is done and collected; the instance still bills until terminated
        message = {"UNHEALTHY": "Lambda reports the instance unhealthy.",
                   "PREEMPTED": "Lambda preempted the instance."}.get(raw)
        return ProviderStatus(state=state, message=message, cost_per_hour=_price(inst),
                              raw={"status": raw, "region": (inst.get("region") or {}).get("name")})

    def cost(self, ref: str) -> float | None:
        job_id = job_for_ref(self.name, ref)
        if not job_id:
            return None
        ended = (load_remote(job_id) or {}).get("ended_at")
        return estimated_cost(job_id, alive=not ended)

    def cancel(self, ref: str) -> None:
        try:
            self.client.terminate([ref])
        except ResourceNotFound:
            pass  # already gone
        self.note_gone(ref)

    def list_owned(self) -> list[str]:
        return list(self.list_owned_jobs())

    def list_owned_jobs(self) -> dict[str, str | None]:
        return {i["id"]: job_from_name(i.get("name")) for i in self.client.instances()
                if job_from_name(i.get("name")) and i.get("status") not in ("terminated", "terminating")}

    def channel_url(self, ref: str, job_id: str) -> str | None:
        doc = load_remote(job_id) or {}
        if not (doc.get("ip") and doc.get("port")):
            return None
        # A launch from before the channel had TLS left no pin; its machine serves plain http.
        return f"{'https' if doc.get('tls_sha256') else 'http'}://{doc['ip']}:{doc['port']}"



def build_user_data(script: str, env: dict[str, str]) -> str:
    """cloud-init user data (a shell script): the env file and the bootstrap, both base64, started detached."""
    for k in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise LaunchError(f"{k!r} is not an environment variable name.")
    env_file = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    w = f"${{FTC_WORK:-{WORK_DIR}}}"
    return "\n".join([
        "#!/bin/bash",
        "# FineTune Console: cloud-init user data. The env file holds secrets; it is readable by root only.",
        "set -euo pipefail",
        "umask 077",
        f'mkdir -p "{w}"',
        f"printf '%s' '{b64(env_file)}' | base64 -d > \"{w}/.env\"",
        f"printf '%s' '{b64(script)}' | base64 -d > \"{w}/bootstrap.sh\"",
        f"nohup setsid bash -c 'set -a; . \"$0/.env\"; set +a; exec bash \"$0/bootstrap.sh\"' \"{w}\" "
        f"> \"{w}/boot.out\" 2>&1 < /dev/null &",
        "",
    ])


def _vram(desc: str) -> float:
    m = re.search(r"(\d+(?:\.\d+)?)\s*GB", desc)
    return float(m.group(1)) if m else 0.0


def _price(inst: dict[str, Any]) -> float | None:
    cents = (inst.get("instance_type") or {}).get("price_cents_per_hour")
    return cents / 100 if cents is not None else None

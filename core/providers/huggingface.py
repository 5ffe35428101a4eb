"""Hugging Face hardware through ``huggingface_hub``: Jobs (the default) or a Docker Space (``mode="space"``).

- Offers and prices: ``list_jobs_hardware`` (``GET /api/jobs/hardware``; price per ``unit_label``, usually a minute).
- Files: the bundle, the dataset and a local model go to a private Hub dataset repo ``<ns>/ftc-<console>-<job>``
  (``create_repo`` + one ``create_commit``); the machine downloads them from its ``resolve`` URLs with ``$HF_TOKEN``.
  The repo is deleted when the job is released.
- Jobs: ``run_job`` with the flavor, ``timeoutSeconds`` = what the budget buys at the flavor's price (capped by the
  config's time limit; ``timeout_hours`` without either), labels ``finetune-console=<console id>`` and
  ``ftc-job=<job>``, the bootstrap gzip+base64 in the env and ``HF_TOKEN`` only in ``secrets`` (the API returns
  secrets masked). Status from ``inspect_job``; cost from the job's running seconds x price; ``cancel_job``.
- Space: ``create_repo(repo_type="space", space_sdk="docker", space_hardware=..., space_secrets=[HF_TOKEN])`` and a
  commit of a Dockerfile + the bootstrap; the container serves an empty page on 7860 (a Space must answer there)
  while the bootstrap trains; when it ends it lingers a minute for the console to read the last log lines and pauses
  its own Space (``POST /api/spaces/<id>/pause`` with its token). The console pauses it too on every terminal state.
  Status from ``get_space_runtime``; cost is price x time since launch (a Space bills while it runs).
- Reporting: the ``stdout`` channel (``LogChannelProvider``), read with ``fetch_job_logs`` / ``fetch_space_logs``.

The client is ``HfApi(endpoint=..., token=...)``; ``endpoint`` defaults to ``HF_ENDPOINT`` (tests point it at a
loopback fake). The SDK is imported inside the methods.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from core.errors import LaunchError, ProviderError, ProviderUnavailable, QuotaError, ResourceNotFound
from core.providers.base import (
    CONSOLE_LABEL, GPUOffer, LaunchRequest, Provider, ProviderParams, ProviderRef, ProviderStatus, call_with_retries,
    map_http_error, map_state, register,
)
from core.providers.http_channel import (
    console_id, estimated_cost, job_for_ref, job_from_name, load_remote, resource_name, save_remote,
)
from core.providers.log_channel import LogChannelProvider, prepare_log_payload

DEFAULT_IMAGE = "pytorch/pytorch:2.6.0-cuda12.4-cudnn9-devel"
WORK_DIR = "/tmp/ftc"
SPACE = "space:"  # ref prefix of a Space; a Job's ref is its id
JOB_LABEL = "ftc-job"
RELEASE_MARK = "[ftc] releasing this machine"  # printed by the bootstrap's release step

JOB_STATUS = {
    "SCHEDULING": "provisioning",
    "RUNNING": "running",
    "COMPLETED": "exited",
    "ERROR": "failed",
    "CANCELED": "terminated",
    "DELETED": "terminated",
}
SPACE_STATUS = {
    "NO_APP_FILE": "provisioning",
    "BUILDING": "provisioning",
    "APP_STARTING": "provisioning",
    "RUNNING_BUILDING": "running",
    "RUNNING_APP_STARTING": "running",
    "RUNNING": "running",
    "PAUSED": "exited",
    "STOPPED": "exited",
    "SLEEPING": "exited",
    "BUILD_ERROR": "failed",
    "CONFIG_ERROR": "failed",
    "RUNTIME_ERROR": "failed",
    "DELETING": "terminated",
}
_PER_HOUR = {"second": 3600.0, "minute": 60.0, "hour": 1.0}
_TERMINAL_STAGES = ("COMPLETED", "ERROR", "CANCELED", "DELETED")


class HuggingFaceParams(ProviderParams):
    mode: Literal["jobs", "space"] = Field(
        default="jobs", description="A Job (ends with the run) or a Docker Space (paused when training ends)")
    image: str = Field(default=DEFAULT_IMAGE, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$",
                       description="A CUDA image with Python 3.10+, torch and bash")
    namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                                  description="User or organization that runs and pays; empty: the token's user")
    timeout_hours: float = Field(default=12.0, gt=0, le=168,
                                 description="Time limit when the job has no budget and no time limit")
    space_linger_s: int = Field(default=60, ge=0, le=3600,
                                description="Space mode: seconds the ended Space waits for the console before pausing")


def _hub_error(exc: Exception, what: str) -> ProviderError:
    """An ``HfHubHTTPError`` (or a transport error) as the console's error."""
    response = getattr(exc, "response", None)
    if response is None:
        return ProviderUnavailable(f"Hugging Face is not reachable ({type(exc).__name__}).")
    status = response.status_code
    message = getattr(exc, "server_message", None) or response.headers.get("X-Error-Message") or what
    message = str(message).strip().splitlines()[0] if str(message).strip() else what
    if status == 402:
        return QuotaError(f"Hugging Face refused {what}: {message}.",
                          hint="Add a payment method or credits at https://huggingface.co/settings/billing.")
    retry_after = response.headers.get("Retry-After")
    return map_http_error("Hugging Face", status, message,
                          retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None)


@register
class HuggingFaceProvider(LogChannelProvider, Provider):
    name = "huggingface"
    display_name = "Hugging Face"
    Params = HuggingFaceParams
    report_channel = "stdout"
    capabilities = {
        "gpu": None,
        "multi_gpu": None,
        "multi_node": "A Job or Space is one machine; use SkyPilot for several nodes.",
        "spot": "Hugging Face sells on-demand hardware only.",
        "budget_enforced_by_provider": None,  # the Job's timeout; a Space pauses itself at the deadline
        "live_metrics": None,
        "self_release": None,
        "artifact_download": "The model goes to a private Hub repo under your token.",
    }

    def __init__(self, credentials: dict[str, str] | None = None, *, endpoint: str | None = None) -> None:
        super().__init__(credentials)
        self.endpoint = endpoint
        self._ns: str | None = None

    # -- the SDK, errors mapped -----------------------------------------------------------------------------
    @property
    def token(self) -> str:
        return self.credential("token", hint="Create a token with write access at https://huggingface.co/settings/"
                                             "tokens and paste it on the Deploy page, or set HF_TOKEN.")

    @property
    def api(self) -> Any:
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=self.token)

    @property
    def base_url(self) -> str:
        from huggingface_hub import constants

        return (self.endpoint or constants.ENDPOINT).rstrip("/")

    def _call(self, what: str, fn: Any, *args: Any, retry: bool = True, **kw: Any) -> Any:
        def once() -> Any:
            import httpx2
            from huggingface_hub.errors import HfHubHTTPError

            try:
                return fn(*args, **kw)
            except HfHubHTTPError as exc:
                raise _hub_error(exc, what) from None
            except httpx2.HTTPError as exc:
                raise ProviderUnavailable(f"Hugging Face is not reachable ({type(exc).__name__}).") from None

        return call_with_retries(once) if retry else once()

    def namespace(self, params: HuggingFaceParams | None = None) -> str:
        if params and params.namespace:
            return params.namespace
        if self._ns is None:
            self._ns = self._call("the token check", self.api.whoami, token=self.token)["name"]
        return self._ns

    # -- interface ------------------------------------------------------------------------------------------
    def validate_credentials(self) -> dict[str, Any]:
        me = self._call("the token check", self.api.whoami, token=self.token)
        self._ns = me["name"]
        role = ((me.get("auth") or {}).get("accessToken") or {}).get("role")
        return {"account": me["name"], "orgs": [o.get("name") for o in me.get("orgs") or []], "token_role": role}

    def _hardware(self) -> list[Any]:
        return self._call("the hardware list", self.api.list_jobs_hardware)

    def offers(self) -> list[GPUOffer]:
        out = []
        for hw in self._hardware():
            acc = hw.accelerator
            if acc is None or acc.type != "gpu":
                continue
            count = max(1, int(re.sub(r"\D", "", str(acc.quantity)) or 1))
            price = _hourly(hw)
            out.append(GPUOffer(
                gpu_type=acc.model, vram_gb=_gb(acc.vram), price_per_hour=round(price / count, 4),
                provider_gpu_id=hw.name, max_count=count, available=None, source="live",
                notes=f"{hw.pretty_name}: ${price:.2f}/h per machine, {hw.cpu}, {hw.ram} RAM",
            ))
        out.sort(key=lambda o: (o.price_per_hour or 0, o.max_count))
        return out

    def _flavor(self, gpu_type: str | None, gpu_count: int) -> Any:
        hardware = [h for h in self._hardware() if h.accelerator is not None and h.accelerator.type == "gpu"]
        want = (gpu_type or "").strip().lower()
        for hw in hardware:
            if hw.name.lower() == want:
                return hw
        fits = [h for h in hardware if h.accelerator.model.lower() == want
                and int(re.sub(r"\D", "", str(h.accelerator.quantity)) or 1) == gpu_count]
        if fits:
            return min(fits, key=_hourly)
        names = ", ".join(h.name for h in hardware)
        raise LaunchError(f"Hugging Face has no flavor for {gpu_count} x '{gpu_type}'.", hint=f"Flavors: {names}.")

    def launch(self, req: LaunchRequest) -> ProviderRef:
        params = req.params if isinstance(req.params, HuggingFaceParams) else HuggingFaceParams()
        ns = self.namespace(params)
        hw = self._flavor(req.gpu_type, req.gpu_count)
        price = _hourly(hw)
        rname = resource_name(req.job_id)
        files_repo = f"{ns}/{rname}"
        space_repo = f"{ns}/{rname}"
        release = None
        if params.mode == "space":
            # Linger so the console reads the last log lines, then pause this Space (billing stops).
            release = (f'sleep {params.space_linger_s}; "$FTC_PY" -c "import os, urllib.request as u; '
                       "u.urlopen(u.Request(os.environ['FTC_PAUSE_URL'], method='POST', headers={'Authorization': "
                       "'Bearer ' + os.environ['HF_TOKEN']}), timeout=30)\"")
        payload = prepare_log_payload(
            req, provider=self.name, price_per_hour=price, work_dir=WORK_DIR, release_cmd=release,
            stage=lambda files: self._stage(files_repo, files),
        )
        from core.bootstrap import deadline_from_budget, encode_for_env

        deadline_s = deadline_from_budget(req.budget_usd, price, req.max_hours)
        save_remote(req.job_id, namespace=ns, files_repo=files_repo, mode=params.mode, flavor=hw.name)
        if params.mode == "space":
            ref = self._launch_space(space_repo, hw.name, payload.script, req)
            url = f"{self.base_url}/spaces/{space_repo}"
        else:
            env = {"FTC_BOOTSTRAP": encode_for_env(payload.script), "FTC_WORK": WORK_DIR}
            timeout = int(deadline_s) if deadline_s else int(params.timeout_hours * 3600)
            # Not retried: a run that timed out may have started (the reaper finds it by its label).
            job = self._call("the job launch", self.api.run_job, retry=False, image=params.image,
                             command=["bash", "-c", _start_command()], env=env, secrets=self._secrets(req),
                             flavor=hw.name, timeout=timeout, name=rname, namespace=ns,
                             labels={CONSOLE_LABEL: console_id(), JOB_LABEL: req.job_id})
            ref, url = job.id, job.url
        save_remote(req.job_id, ref=ref, launched_at=time.time())
        return ProviderRef(ref=ref, url=url, cost_per_hour=price, gpu_type=hw.accelerator.model,
                           extra={"deadline_epoch": payload.deadline_epoch, "flavor": hw.name, "mode": params.mode})

    def _secrets(self, req: LaunchRequest) -> dict[str, str]:
        # The machine needs a token to fetch the staged files and to push the model: the account's own.
        return {"HF_TOKEN": self.token, **{k: v for k, v in req.env.items() if k == "FTC_SINK_TOKEN" and v}}

    def _stage(self, repo_id: str, files: dict[str, Path]) -> dict[str, dict[str, Any]]:
        from huggingface_hub import CommitOperationAdd

        api = self.api
        self._call("creating the private files repo", api.create_repo, repo_id, repo_type="dataset", private=True,
                   exist_ok=True)
        names = {"bundle": "bundle.tar.gz", "dataset": "dataset.jsonl", "model": "model.tar.gz"}
        ops = [CommitOperationAdd(path_in_repo=names[k], path_or_fileobj=str(p)) for k, p in files.items()]
        self._call("uploading the job files", api.create_commit, repo_id, ops, repo_type="dataset",
                   commit_message="FineTune Console job files", retry=False)
        return {k: {"source": "url", "local": str(p), "auth_env": "HF_TOKEN",
                    "url": f"{self.base_url}/datasets/{repo_id}/resolve/main/{names[k]}"} for k, p in files.items()}

    def _launch_space(self, repo_id: str, flavor: str, script: str, req: LaunchRequest) -> str:
        from huggingface_hub import CommitOperationAdd

        api = self.api
        self._call("creating the Space", api.create_repo, repo_id, repo_type="space", space_sdk="docker",
                   private=True, space_hardware=flavor, retry=False,
                   space_secrets=[{"key": k, "value": v} for k, v in self._secrets(req).items()])
        params = req.params if isinstance(req.params, HuggingFaceParams) else HuggingFaceParams()
        dockerfile = "\n".join([
            f"FROM {params.image}",
            f"ENV FTC_WORK={WORK_DIR} FTC_PAUSE_URL={self.base_url}/api/spaces/{repo_id}/pause",
            "COPY bootstrap.sh /opt/ftc/bootstrap.sh",
            'CMD ["bash", "-c", "mkdir -p /tmp/ftc-health && (python3 -m http.server 7860 --directory '
            '/tmp/ftc-health >/dev/null 2>&1 &) && exec bash /opt/ftc/bootstrap.sh"]',
            "",
        ])
        ops = [CommitOperationAdd(path_in_repo="Dockerfile", path_or_fileobj=dockerfile.encode()),
               CommitOperationAdd(path_in_repo="bootstrap.sh", path_or_fileobj=script.encode())]
        self._call("uploading the Space", api.create_commit, repo_id, ops, repo_type="space",
                   commit_message="FineTune Console training Space", retry=False)
        return SPACE + repo_id

    # -- status, cost, logs ---------------------------------------------------------------------------------
    def _ns_for(self, ref: str) -> str:
        job_id = job_for_ref(self.name, ref)
        ns = (load_remote(job_id) or {}).get("namespace") if job_id else None
        return ns or self.namespace()

    def _job(self, ref: str) -> Any | None:
        try:
            return self._call("the job status", self.api.inspect_job, job_id=ref, namespace=self._ns_for(ref))
        except ResourceNotFound:
            return None

    def _runtime(self, repo_id: str) -> Any | None:
        try:
            return self._call("the Space status", self.api.get_space_runtime, repo_id)
        except ResourceNotFound:
            return None

    def status(self, ref: str) -> ProviderStatus:
        if ref.startswith(SPACE):
            rt = self._runtime(ref[len(SPACE):])
            if rt is None:
                self._note_gone(ref)
                return ProviderStatus(state="terminated", message="The Space no longer exists.")
            stage = str(rt.stage).upper()
            state = map_state(stage, SPACE_STATUS)
            if state == "running" and RELEASE_MARK in self.log_text(ref):
                state = "exited"  # the bootstrap ended and is about to pause its Space
            if state != "running" and state != "provisioning":
                self._note_gone(ref)
            msg = f"The Space is {stage.lower().replace('_', ' ')}." if state == "failed" else None
            return ProviderStatus(state=state, message=msg, raw={"stage": stage, "hardware": rt.hardware})
        job = self._job(ref)
        if job is None:
            return ProviderStatus(state="terminated", message="The job no longer exists.")
        stage = str(job.status.stage).upper()
        state = map_state(stage, JOB_STATUS)
        message = job.status.message
        if state == "failed":
            message = f"Hugging Face reports the job failed: {message or 'no reason given'}."
            if message and "capacity" in message.lower():
                message += " Try another flavor, or try again later."
        uptime = _running_secs(job)
        return ProviderStatus(state=state, message=message, uptime_s=uptime,
                              raw={"stage": stage, "flavor": job.flavor})

    def cost(self, ref: str) -> float | None:
        job_id = job_for_ref(self.name, ref)
        doc = (load_remote(job_id) or {}) if job_id else {}
        if ref.startswith(SPACE):
            return estimated_cost(job_id, alive=not doc.get("ended_at")) if job_id else None
        job = self._job(ref)
        if job is None or doc.get("price_per_hour") is None:
            return estimated_cost(job_id, alive=False) if job_id else None
        return _running_secs(job) / 3600.0 * float(doc["price_per_hour"])

    def log_text(self, ref: str) -> str:
        if ref.startswith(SPACE):
            lines = self._call("the Space log", lambda: list(self.api.fetch_space_logs(ref[len(SPACE):])))
        else:
            ns = self._ns_for(ref)
            lines = self._call("the job log", lambda: list(self.api.fetch_job_logs(job_id=ref, namespace=ns)))
        return "".join(line if line.endswith("\n") else line + "\n" for line in lines)

    # -- release --------------------------------------------------------------------------------------------
    def cancel(self, ref: str) -> None:
        """Cancel the Job / pause the Space (a vanished one is fine), then delete the staged files repo."""
        if ref.startswith(SPACE):
            try:
                self._call("pausing the Space", self.api.pause_space, ref[len(SPACE):])
            except ResourceNotFound:
                pass
            self._note_gone(ref)
        else:
            job = self._job(ref)
            if job is not None and str(job.status.stage).upper() not in _TERMINAL_STAGES:
                try:
                    self._call("cancelling the job", self.api.cancel_job, job_id=ref, namespace=self._ns_for(ref))
                except ResourceNotFound:
                    pass
        job_id = job_for_ref(self.name, ref)
        repo = (load_remote(job_id) or {}).get("files_repo") if job_id else None
        if repo:
            self._call("deleting the job files", self.api.delete_repo, repo, repo_type="dataset", missing_ok=True)

    def _note_gone(self, ref: str) -> None:
        job_id = job_for_ref(self.name, ref)
        if job_id and not (load_remote(job_id) or {}).get("ended_at"):
            save_remote(job_id, ended_at=time.time())

    def list_owned(self) -> list[str]:
        return list(self.list_owned_jobs())

    def list_owned_jobs(self) -> dict[str, str | None]:
        ns = self.namespace()
        api = self.api
        jobs = self._call("the job list", lambda: list(api.list_jobs(labels={CONSOLE_LABEL: console_id()},
                                                                      namespace=ns)))
        out: dict[str, str | None] = {j.id: (j.labels or {}).get(JOB_LABEL) for j in jobs
                                      if str(j.status.stage).upper() not in _TERMINAL_STAGES}
        prefix = f"ftc-{console_id()}-"
        spaces = self._call("the Space list", lambda: list(api.list_spaces(author=ns, search=prefix)))
        for s in spaces:
            job_id = job_from_name(s.id.split("/", 1)[-1])
            rt = self._runtime(s.id) if job_id else None
            if rt is not None and map_state(str(rt.stage).upper(), SPACE_STATUS) in ("provisioning", "running"):
                out[SPACE + s.id] = job_id
        return out


def _start_command() -> str:
    """The Job's command: decode the bootstrap from ``$FTC_BOOTSTRAP`` and run it (no payload in argv)."""
    return ('mkdir -p "$FTC_WORK" && printf %s "$FTC_BOOTSTRAP" | base64 -d | gunzip > "$FTC_WORK/bootstrap.sh" '
            '&& exec bash "$FTC_WORK/bootstrap.sh"')


def _hourly(hw: Any) -> float:
    return float(hw.unit_cost_usd) * _PER_HOUR.get(str(hw.unit_label).lower(), 60.0)


def _gb(text: str | None) -> float:
    m = re.search(r"(\d+(?:\.\d+)?)", text or "")
    return float(m.group(1)) if m else 0.0


def _running_secs(job: Any) -> float:
    d = job.durations
    if d is not None and getattr(d, "running_secs", None) is not None:
        return float(d.running_secs)
    if job.started_at is None:
        return 0.0
    from datetime import datetime, timezone

    end = job.finished_at or datetime.now(timezone.utc)
    return max(0.0, (end - job.started_at).total_seconds())

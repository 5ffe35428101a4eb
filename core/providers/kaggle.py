"""Kaggle notebooks (free GPU hours) through the ``kaggle`` package's SDK (``kagglesdk``).

- Files: the bundle, the dataset and a local model become a private Kaggle dataset ``<user>/ftc-<console>-<job>``
  (``StartBlobUpload``, a PUT of each file to the returned ``createUrl``, then ``CreateDataset`` with the blob
  tokens), as ``kaggle datasets create`` does. Archives are uploaded as ``.bin`` because Kaggle unpacks archives it
  recognises, and the bootstrap wants the bytes it hashed.
- The kernel (a private Python script, GPU ``machine_shape``, internet on, the dataset as its data source) is pushed
  with ``SaveKernel`` once ``GetDatasetStatus`` says the dataset is READY; until then the job is provisioning (the
  poller pushes it, so a launch never blocks on Kaggle's processing). The script finds the dataset under
  ``/kaggle/input``, runs the bootstrap with its output on the kernel's stdout, and copies the trained model to
  ``/kaggle/working/final``, the kernel's output.
- Status: ``GetKernelSessionStatus``. Rows: the ``stdout`` channel read from ``ListKernelSessionOutput``'s log (a
  JSON list of ``{"stream_name", "time", "data"}`` chunks, joined here). Kaggle hands that log out when the session
  ends, so the rows arrive then, not live. With them come the output files' signed URLs: the trained model
  (``final/``) is downloaded into this console's artifacts folder, or, if that fails, the registry points at the
  notebook's Output tab.
- Cost: 0 (Kaggle's GPUs are free within a weekly quota, ``GetAcceleratorQuotaStatistics``, shown with the offer and
  the credentials check). Cancel: Kaggle's API stops a session only by a session id the push does not return, so
  a live kernel is deleted (which ends its session); a finished one is kept for its output. The staged dataset is
  deleted on release.

``kagglesdk`` picks its host from ``KAGGLE_API_ENVIRONMENT`` among fixed URLs (``kaggle_env.py``); the ``endpoint``
constructor argument sets the SDK client's endpoint instead (tests point it at a loopback fake).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from core.errors import (
    AuthError, LaunchError, ProviderError, ProviderUnavailable, QuotaError, ResourceNotFound,
)
from core.providers.base import (
    GPUOffer, LaunchRequest, Provider, ProviderParams, ProviderRef, ProviderStatus, call_with_retries,
    map_http_error, map_state, register,
)
from core.providers.http_channel import console_id, job_for_ref, job_from_name, load_remote, resource_name, save_remote
from core.providers.log_channel import LogChannelProvider, prepare_log_payload

log = logging.getLogger("finetune_console.kaggle")

WORK_DIR = "/tmp/ftc"
SHAPES = {"NvidiaTeslaT4": ("T4", 16.0, 2)}  # machine_shape -> (GPU, VRAM GB, GPUs); named in kaggle/cli.py help
STATUS = {
    "NEW_SCRIPT": "provisioning",
    "QUEUED": "provisioning",
    "RUNNING": "running",
    "CANCEL_REQUESTED": "running",
    "COMPLETE": "exited",
    "ERROR": "failed",
    "CANCEL_ACKNOWLEDGED": "terminated",
}
UPLOAD_NAMES = {"bundle": "bundle.bin", "dataset": "dataset.jsonl", "model": "model.bin"}
_QUOTA_WORDS = ("quota", "limit", "exceeded", "maximum")

KERNEL_SOURCE = '''\
# FineTune Console: job {job_id}. Runs the generated bootstrap; its output is this kernel's log.
import base64, gzip, os, shutil, subprocess, sys

work = "{work}"
os.makedirs(work, exist_ok=True)
inputs = [root for root, _, files in os.walk("/kaggle/input") if "bundle.bin" in files]
if not inputs:
    sys.exit("[ftc] the job's dataset is not mounted under /kaggle/input")
if os.path.lexists(work + "-input"):
    os.remove(work + "-input")
os.symlink(inputs[0], work + "-input")
with open(work + "/bootstrap.sh", "wb") as f:
    f.write(gzip.decompress(base64.b64decode("{script}")))
rc = subprocess.call(["bash", work + "/bootstrap.sh"], env=dict(os.environ, FTC_WORK=work))
if os.path.isdir(work + "/output/final"):
    shutil.copytree(work + "/output/final", "/kaggle/working/final", dirs_exist_ok=True)
sys.exit(rc)
'''


class KaggleParams(ProviderParams):
    machine_shape: str = Field(default="NvidiaTeslaT4", pattern=r"^[A-Za-z0-9]+$",
                               description="Kaggle accelerator (kernel-metadata machine_shape)")
    enable_internet: bool = Field(default=True, description="The bootstrap installs the trainer's requirements")


@register
class KaggleProvider(LogChannelProvider, Provider):
    name = "kaggle"
    display_name = "Kaggle"
    Params = KaggleParams
    report_channel = "stdout"
    secret_env = False  # a kernel's source is readable on Kaggle and the API has no secret store
    capabilities = {
        "gpu": None,
        "multi_gpu": None,  # T4 x2
        "multi_node": "A Kaggle notebook is one machine.",
        "spot": "Kaggle's GPUs are free within a weekly quota; there is no price to lower.",
        "budget_enforced_by_provider": None,  # free; Kaggle ends a GPU session after 12 hours
        "live_metrics": "Kaggle hands out a notebook's log when its session ends; metrics arrive then.",
        "self_release": None,
        "artifact_download": None,
    }

    def __init__(self, credentials: dict[str, str] | None = None, *, endpoint: str | None = None) -> None:
        super().__init__(credentials)
        self.endpoint = endpoint
        self._first_output: dict[str, Any] = {}  # ref -> the session output page log_text last read
        self._downloaded: dict[str, str] = {}  # ref -> the model folder fetched from its notebook's output

    # -- the SDK, errors mapped -----------------------------------------------------------------------------
    @property
    def username(self) -> str:
        return self.credential("username", hint="Set KAGGLE_USERNAME and KAGGLE_KEY (from kaggle.json, "
                                                "https://www.kaggle.com/settings), or paste them on the Deploy page.")

    def client(self) -> Any:
        from kagglesdk import KaggleClient, KaggleEnv

        key = self.credential("key", hint="Set KAGGLE_KEY (from kaggle.json, https://www.kaggle.com/settings).")
        client = KaggleClient(env=KaggleEnv.LOCAL if self.endpoint else KaggleEnv.PROD, username=self.username,
                              password=key, user_agent="finetune-console")
        if self.endpoint:
            client._http_client._endpoint = self.endpoint.rstrip("/")  # the SDK's only per-client host setting
        return client

    def _call(self, what: str, method: str, request: Any, *, retry: bool = True) -> Any:
        """``method``: "<service attr>.<client attr>.<method>", e.g. "kernels.kernels_api_client.save_kernel"."""
        def once() -> Any:
            import requests

            service, client_attr, fn = method.split(".")
            target = getattr(getattr(self.client(), service), client_attr)
            try:
                return getattr(target, fn)(request)
            except requests.HTTPError as exc:
                raise _kaggle_error(exc, what) from None
            except requests.RequestException as exc:
                raise ProviderUnavailable(f"Kaggle is not reachable ({type(exc).__name__}).") from None

        return call_with_retries(once) if retry else once()

    def _on_kernel(self, what: str, method: str, request_cls: Any, ref: str) -> Any | None:
        """One KernelsApiService call addressed by ``user_name``/``kernel_slug``; None when the notebook is gone."""
        req = request_cls()
        req.user_name, req.kernel_slug = ref.split("/", 1)
        try:
            return self._call(what, f"kernels.kernels_api_client.{method}", req)
        except ResourceNotFound:
            return None

    # -- interface ------------------------------------------------------------------------------------------
    def validate_credentials(self) -> dict[str, Any]:
        from kagglesdk.kernels.types.kernels_api_service import ApiListKernelsRequest

        req = ApiListKernelsRequest()
        req.user, req.page_size = self.username, 1
        self._call("the notebook list", "kernels.kernels_api_client.list_kernels", req)
        return {"account": self.username, "gpu_quota": self.quota_note()}

    def quota_note(self) -> str | None:
        """The weekly GPU quota as a sentence, or None when Kaggle does not say."""
        from kagglesdk.kernels.types.kernels_api_service import ApiGetAcceleratorQuotaStatisticsRequest

        try:
            stats = self._call("the GPU quota", "kernels.kernels_api_client.get_accelerator_quota_statistics",
                               ApiGetAcceleratorQuotaStatisticsRequest())
        except ProviderError:
            return None
        q = stats.gpu_quota
        if q is None or q.total_time_allowed is None:
            return None
        used = (q.time_used.total_seconds() if q.time_used else 0.0) / 3600
        total = q.total_time_allowed.total_seconds() / 3600
        when = f", refreshes {stats.quota_refresh_time:%a %d %b %H:%M} UTC" if stats.quota_refresh_time else ""
        return f"{max(0.0, total - used):.1f} of {total:.0f} GPU hours left this week{when}"

    def offers(self) -> list[GPUOffer]:
        note = self.quota_note() if self.credentials.get("username") and self.credentials.get("key") else None
        return [GPUOffer(gpu_type=gpu, vram_gb=vram, price_per_hour=0.0, provider_gpu_id=shape, max_count=count,
                         available=None, source="live" if note else "catalog",
                         notes=f"Free: {note}." if note else "Free within Kaggle's weekly GPU quota (about 30 h).")
                for shape, (gpu, vram, count) in SHAPES.items()]

    def launch(self, req: LaunchRequest) -> ProviderRef:
        params = req.params if isinstance(req.params, KaggleParams) else KaggleParams()
        if req.gpu_type and req.gpu_type not in SHAPES and req.gpu_type != SHAPES.get(params.machine_shape, ("",))[0]:
            raise LaunchError(f"Kaggle has no GPU '{req.gpu_type}'.",
                              hint=f"Kaggle offers: {', '.join(f'{v[0]} ({k})' for k, v in SHAPES.items())}.")
        shape = req.gpu_type if req.gpu_type in SHAPES else params.machine_shape
        if req.gpu_count > SHAPES.get(shape, ("", 0, 2))[2]:
            raise LaunchError(f"A Kaggle {shape} notebook has at most {SHAPES[shape][2]} GPUs.")
        # req.env (HF_TOKEN) is not shipped: a kernel's source is readable on Kaggle and the API has no secret
        # channel (Kaggle Secrets are attached in the notebook UI), so the model stays in the kernel's output.
        user = self.username
        slug = kaggle_slug(req.job_id)
        dataset_ref = f"{user}/{slug}"
        payload = prepare_log_payload(
            req, provider=self.name, price_per_hour=0.0, work_dir=WORK_DIR,
            stage=lambda files: self._stage(user, slug, files),
        )
        from core.bootstrap import encode_for_env
        from core.paths import job_dir

        source = KERNEL_SOURCE.format(job_id=req.job_id, work=WORK_DIR, script=encode_for_env(payload.script))
        (job_dir(req.job_id) / "kernel.py").write_text(source, encoding="utf-8")
        timeout = int(req.max_hours * 3600) if req.max_hours else None
        ref = f"{user}/{slug}"
        save_remote(req.job_id, ref=ref, launched_at=time.time(), dataset=dataset_ref, shape=shape, pushed=False,
                    enable_internet=params.enable_internet, session_timeout_s=timeout)
        self._push_when_ready(ref)  # usually the dataset is still processing: the poller pushes it later
        return ProviderRef(ref=ref, url=f"https://www.kaggle.com/code/{ref}", cost_per_hour=0.0,
                           gpu_type=SHAPES.get(shape, (shape,))[0], extra={"machine_shape": shape})

    def _stage(self, user: str, slug: str, files: dict[str, Path]) -> dict[str, dict[str, Any]]:
        import requests
        from kagglesdk.blobs.types.blob_api_service import ApiBlobType, ApiStartBlobUploadRequest
        from kagglesdk.datasets.types.dataset_api_service import ApiCreateDatasetRequest, ApiDatasetNewFile

        new_files = []
        for name, path in files.items():
            start = ApiStartBlobUploadRequest()
            start.type, start.name = ApiBlobType.DATASET, UPLOAD_NAMES[name]
            start.content_length = path.stat().st_size
            start.last_modified_epoch_seconds = int(path.stat().st_mtime)
            blob = self._call("starting an upload", "blobs.blob_api_client.start_blob_upload", start)
            size = path.stat().st_size
            try:
                with path.open("rb") as f:  # the headers kaggle_api_extended.upload_complete sends
                    r = requests.put(blob.create_url, data=f, timeout=600, headers={
                        "Content-Length": str(size), "Content-Range": f"bytes 0-{max(0, size - 1)}/{size}"})
            except requests.RequestException as exc:
                raise ProviderUnavailable(f"Uploading {name} to Kaggle failed ({type(exc).__name__}).") from None
            if r.status_code not in (200, 201):
                raise ProviderUnavailable(f"Uploading {name} to Kaggle failed (HTTP {r.status_code}).")
            f_new = ApiDatasetNewFile()
            f_new.token = blob.token
            new_files.append(f_new)
        req = ApiCreateDatasetRequest()
        req.owner_slug, req.slug, req.title = user, slug, slug
        req.license_name, req.is_private, req.files = "unknown", True, new_files
        resp = self._call("creating the private dataset", "datasets.dataset_api_client.create_dataset", req,
                          retry=False)
        if resp.error:
            raise _refusal(f"Kaggle refused the job's dataset: {resp.error}")
        return {k: {"source": "path", "path": f"{WORK_DIR}-input/{UPLOAD_NAMES[k]}"} for k in files}

    def _push_when_ready(self, ref: str) -> str | None:
        """Push the kernel once its dataset is ready; returns the dataset's failure, if any."""
        from kagglesdk.datasets.types.dataset_api_service import ApiGetDatasetStatusRequest
        from kagglesdk.kernels.types.kernels_api_service import ApiSaveKernelRequest

        job_id = job_for_ref(self.name, ref)
        doc = load_remote(job_id) or {}
        if doc.get("pushed") or doc.get("released"):
            return None
        owner, slug = doc["dataset"].split("/", 1)
        st = ApiGetDatasetStatusRequest()
        st.owner_slug, st.dataset_slug = owner, slug
        status = self._call("the dataset status", "datasets.dataset_api_client.get_dataset_status", st).status.name
        if status in ("FAILED", "DELETED"):
            return f"Kaggle could not process the job's dataset ({status.lower()})."
        if status != "READY":
            return None
        from core.paths import job_dir

        req = ApiSaveKernelRequest()
        req.slug, req.new_title = ref, ref.split("/", 1)[1]
        req.text = (job_dir(job_id) / "kernel.py").read_text(encoding="utf-8")
        req.language, req.kernel_type, req.is_private = "python", "script", True
        req.enable_gpu, req.enable_internet = True, bool(doc.get("enable_internet", True))
        req.dataset_data_sources = [doc["dataset"]]
        req.machine_shape = doc.get("shape")
        if doc.get("session_timeout_s"):
            req.session_timeout_seconds = int(doc["session_timeout_s"])
        resp = self._call("pushing the notebook", "kernels.kernels_api_client.save_kernel", req, retry=False)
        if resp.error:
            raise _refusal(f"Kaggle refused the notebook: {resp.error}")
        save_remote(job_id, pushed=True, version=resp.version_number, url=resp.url)
        return None

    def status(self, ref: str) -> ProviderStatus:
        from kagglesdk.kernels.types.kernels_api_service import ApiGetKernelSessionStatusRequest

        job_id = job_for_ref(self.name, ref)
        doc = (load_remote(job_id) or {}) if job_id else {}
        if job_id and not doc.get("pushed") and doc.get("released"):
            return ProviderStatus(state="terminated", message="Released before its notebook was pushed.")
        if job_id and not doc.get("pushed"):
            try:
                failure = self._push_when_ready(ref)
            except ResourceNotFound:
                return ProviderStatus(state="terminated", message="The job's Kaggle dataset no longer exists.")
            except QuotaError as exc:
                return ProviderStatus(state="failed", message=exc.message)
            if failure:
                return ProviderStatus(state="failed", message=failure)
            if not (load_remote(job_id) or {}).get("pushed"):
                return ProviderStatus(state="provisioning", message="Kaggle is processing the job's dataset.")
        resp = self._on_kernel("the notebook status", "get_kernel_session_status", ApiGetKernelSessionStatusRequest,
                               ref)
        if resp is None:
            return ProviderStatus(state="terminated", message="The notebook no longer exists.")
        raw = resp.status.name
        state = map_state(raw, STATUS)
        message = None
        if state == "failed":
            message = f"Kaggle reports the notebook failed: {resp.failure_message or 'no reason given'}."
            if any(w in (resp.failure_message or "").lower() for w in ("quota", "gpu hours")):
                message += " The weekly GPU quota is used up; it refreshes weekly."
        return ProviderStatus(state=state, message=message, cost_per_hour=0.0, raw={"status": raw})

    def cost(self, ref: str) -> float | None:
        return 0.0

    def log_text(self, ref: str) -> str:
        job_id = job_for_ref(self.name, ref)
        if job_id and not (load_remote(job_id) or {}).get("pushed"):
            return ""
        resp = self._session_output(ref)
        if resp is not None:
            self._first_output[ref] = resp  # its file list is where a model download starts
        return join_kernel_log(resp.log or "") if resp is not None else ""

    def _session_output(self, ref: str, page_token: str | None = None) -> Any | None:
        """One page of the ended session's output: its log (first page) and output files with signed URLs."""
        from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

        req = ApiListKernelSessionOutputRequest()
        req.user_name, req.kernel_slug = ref.split("/", 1)
        if page_token:
            req.page_token = page_token
        try:
            return self._call("the notebook output", "kernels.kernels_api_client.list_kernel_session_output", req)
        except ResourceNotFound:
            return None

    def artifact_uri(self, ref: str, reported: str) -> str:
        """The adapter downloaded to this computer (so Models, Playground and serving work on it), or, when that
        fails, the notebook's Output tab, where the kernel copied it (/kaggle/working/final)."""
        if ref in self._downloaded:  # one download per notebook, however many rows name the folder
            return self._downloaded[ref]
        try:
            local = self._download_final(ref)
        except Exception as exc:  # noqa: BLE001 - best effort: the rows must be applied whatever the download did
            log.warning("downloading the model of %s from its notebook output: %s", ref, exc)
            local = None
        if local:
            self._downloaded[ref] = local
        return local or f"https://www.kaggle.com/code/{ref}/output"

    def _download_final(self, ref: str) -> str | None:
        """The files under ``final/`` in the session's output, fetched as ``kaggle kernels output`` does
        (kaggle_api_extended.py ``kernels_output``: a plain GET of each file's signed ``url``, names not trusted)."""
        from core.paths import artifacts_dir

        job_id = job_for_ref(self.name, ref)
        if not job_id:
            return None
        files, token, seen = [], None, set()
        while True:
            # The first page is the one log_text just read for the rows that name the model.
            page = self._first_output.pop(ref, None) if token is None else None
            page = page or self._session_output(ref, token)
            if page is None:
                return None
            files += [f for f in page.files or [] if f and (f.file_name or "").startswith("final/")]
            token = page.next_page_token
            if not token or token in seen:  # a repeated token would page forever
                break
            seen.add(token)
        if not files:
            return None
        dest = artifacts_dir() / job_id / "final"
        staging = dest.parent / ".final.part"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            self._fetch_files(files, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        return str(dest)

    @staticmethod
    def _fetch_files(files: list[Any], staging: Path) -> None:
        import requests

        root = staging.resolve()
        for f in files:
            out = (staging / f.file_name.removeprefix("final/")).resolve()
            if not out.is_relative_to(root) or out == root:
                raise ProviderError(f"Kaggle listed an output file outside the model folder: {f.file_name!r}.")
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                with requests.get(f.url, stream=True, timeout=300) as r:
                    r.raise_for_status()
                    with out.open("wb") as fh:
                        for block in r.iter_content(1 << 20):
                            fh.write(block)
            except requests.RequestException as exc:
                raise ProviderUnavailable(f"Downloading {f.file_name} failed ({type(exc).__name__}).") from None

    def cancel(self, ref: str) -> None:
        """Stop a live notebook (by deleting it), keep a finished one for its output; delete the staged dataset."""
        from kagglesdk.datasets.types.dataset_api_service import ApiDeleteDatasetRequest
        from kagglesdk.kernels.types.kernels_api_service import ApiDeleteKernelRequest

        job_id = job_for_ref(self.name, ref)
        doc = (load_remote(job_id) or {}) if job_id else {}
        if doc.get("pushed", True) and self.status(ref).alive:
            self._on_kernel("stopping the notebook", "delete_kernel", ApiDeleteKernelRequest, ref)
        if job_id and doc.get("dataset"):
            owner, slug = doc["dataset"].split("/", 1)
            req = ApiDeleteDatasetRequest()
            req.owner_slug, req.dataset_slug = owner, slug
            try:
                self._call("deleting the job's dataset", "datasets.dataset_api_client.delete_dataset", req)
            except ResourceNotFound:
                pass
            save_remote(job_id, released=True, ended_at=doc.get("ended_at") or time.time())

    def list_owned(self) -> list[str]:
        return list(self.list_owned_jobs())

    def list_owned_jobs(self) -> dict[str, str | None]:
        from kagglesdk.kernels.types.kernels_api_service import ApiListKernelsRequest

        req = ApiListKernelsRequest()
        req.user, req.search, req.page_size = self.username, f"ftc-{console_id()}-", 100
        resp = self._call("the notebook list", "kernels.kernels_api_client.list_kernels", req)
        out: dict[str, str | None] = {}
        for k in resp.kernels or []:
            ref = k.ref.removeprefix("/code/").strip("/")
            job = job_from_name(job_name(ref.split("/", 1)[-1]))
            if job and self.status(ref).alive:
                out[ref] = job
        return out


def kaggle_slug(job_id: str) -> str:
    """The console's resource name as a Kaggle slug (lowercase letters, digits and dashes)."""
    return resource_name(job_id).lower().replace("_", "-")


def job_name(slug: str) -> str:
    """A slug back to the resource name it came from (job ids are ``job_<hex>``)."""
    return re.sub(r"-job-", "-job_", slug, count=1)


def join_kernel_log(log: str) -> str:
    """Kaggle's kernel log is a JSON list of output chunks; their ``data`` joined is what the kernel printed."""
    try:
        chunks = json.loads(log)
    except ValueError:
        return log
    if not isinstance(chunks, list):
        return log
    return "".join(str(c.get("data", "")) for c in chunks if isinstance(c, dict))


def _kaggle_error(exc: Any, what: str) -> ProviderError:
    response = getattr(exc, "response", None)
    if response is None:
        return ProviderUnavailable(f"Kaggle is not reachable while reading {what}.")
    try:
        body = response.json()
        message = body.get("message") or body.get("error") or str(exc)
    except ValueError:
        message = str(exc) or response.reason or f"HTTP {response.status_code}"
    if response.status_code in (401, 403):
        return AuthError(f"Kaggle refused the credentials ({message}).",
                         hint="Check KAGGLE_USERNAME and KAGGLE_KEY (kaggle.json from "
                              "https://www.kaggle.com/settings).")
    err = map_http_error("Kaggle", response.status_code, message)
    if isinstance(err, ProviderError) and not err.retryable and any(w in message.lower() for w in _QUOTA_WORDS):
        return QuotaError(f"Kaggle: {message}.", hint="Kaggle's weekly GPU quota or a storage limit is used up.")
    return err


def _refusal(message: str) -> ProviderError:
    if any(w in message.lower() for w in _QUOTA_WORDS):
        return QuotaError(message, hint="Kaggle's weekly GPU quota or storage limit is used up; it refreshes weekly.")
    return LaunchError(message)

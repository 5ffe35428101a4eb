"""A loopback Kaggle API for ``kagglesdk`` (the SDK of the ``kaggle`` 2.x package), as read from its source.

Wire format (``kagglesdk/kaggle_http_client.py: KaggleHttpClient``): every call is ``POST
<endpoint>/api/v1/<service>/<Method>`` (``_get_request_url``; non-PROD environments add ``/api``) with the request
object's JSON (``KaggleObject.to_dict``: camelCase names from each type's ``_fields``, enums by name, durations as
``"<seconds>s"``), HTTP Basic auth with the user name and API key (``_try_fill_auth``), and a JSON answer parsed by
``prepare_from``; a body ``{"code": >=400, "message"}`` raises ``requests.HTTPError`` (``_prepare_response``).

Services and fields (``kagglesdk/*/services/*.py`` and ``*/types/*.py``):

- ``kernels.KernelsApiService``: ``ListKernels`` (``user``, ``search``, ``pageSize`` -> ``{"kernels": [{ref, title,
  author, slug}]}``), ``SaveKernel`` (``slug``, ``newTitle``, ``text``, ``language``, ``kernelType``, ``isPrivate``,
  ``enableGpu``, ``enableInternet``, ``datasetDataSources``, ``machineShape``, ``sessionTimeoutSeconds`` -> ``{ref,
  url, versionNumber, error, kernelId}``), ``GetKernelSessionStatus`` (``userName``, ``kernelSlug`` -> ``{status:
  KernelWorkerStatus name, failureMessage}``), ``ListKernelSessionOutput`` (-> ``{files: [{url, fileName}], log}``;
  the log is the JSON list ``kaggle kernels output`` writes to ``<slug>.log``), ``DeleteKernel``,
  ``GetAcceleratorQuotaStatistics`` (-> ``{quotaRefreshTime, gpuQuota: {timeUsed, totalTimeAllowed}}``).
- ``blobs.BlobApiService/StartBlobUpload`` (``type``, ``name``, ``contentLength``, ``lastModifiedEpochSeconds`` ->
  ``{token, createUrl}``) and the PUT of the bytes to ``createUrl`` (``kaggle_api_extended.py: upload_complete``).
- ``datasets.DatasetApiService``: ``CreateDataset`` (``ownerSlug``, ``slug``, ``title``, ``licenseName``,
  ``isPrivate``, ``files: [{token}]`` -> ``{ref, url, status, error}``), ``GetDatasetStatus`` (-> ``{status:
  DatabundleVersionStatus name}``), ``DeleteDataset``.

Modelled, not read from the SDK: the exact texts of errors (401 "Unauthenticated", a 429, a "quota" refusal of
``SaveKernel`` in its ``error`` field, which is where ``kernels push`` prints the server's refusals), and how long a
dataset stays in processing (``dataset_ready_after`` status calls), and that ``ListKernelSessionOutput`` returns the
log and files once the session has ended (what ``kaggle kernels output`` is documented for).

With ``machines_root``, a pushed kernel runs as a local process (``tests/fakes/machine.py``): its dataset sources are
mounted under ``<machine>/kaggle/input/<slug>/``, and absolute paths in its source and in the bootstrap it carries
(``/kaggle/...``, ``/tmp/ftc``) are moved under the machine's folder, as a container's own disk would hold them. The
session is RUNNING while the process lives and COMPLETE or ERROR by its exit code; its output becomes the chunked
log, and the files under ``<machine>/kaggle/working`` the session's output files.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from tests.fakes.loopback import LoopbackFake, Request, Response


def _err(status: int, message: str) -> Response:
    return Response(status, {"code": status, "message": message})


class FakeKaggle(LoopbackFake):
    def __init__(self, username: str = "alice", key: str = "kaggle_test_key", *, dataset_ready_after: int = 1,
                 machines_root: Path | None = None) -> None:
        super().__init__()
        self.machines_root = Path(machines_root) if machines_root else None
        self.machines: dict[str, Any] = {}
        self.output_files: dict[str, Path] = {}  # signed-URL token -> file in a session's /kaggle/working
        self.username = username
        self.key = key
        self.dataset_ready_after = dataset_ready_after
        self.blobs: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, dict[str, Any]] = {}
        self.kernels: dict[str, dict[str, Any]] = {}
        self.gpu_hours_used = 4.5
        self.refuse_push: str | None = None  # SaveKernel's ``error`` text, e.g. a quota refusal
        self._ids = itertools.count(1)

    # -- test controls ----------------------------------------------------------------------------------------
    def set_status(self, ref: str, status: str, failure: str | None = None) -> None:
        self.kernels[ref]["status"], self.kernels[ref]["failure"] = status, failure

    def set_log(self, ref: str, text: str, chunk: int = 37) -> None:
        """The kernel's output as Kaggle stores it: stdout chunks that split lines anywhere."""
        self.kernels[ref]["log"] = json.dumps([{"stream_name": "stdout", "time": i * 0.1, "data": text[i:i + chunk]}
                                               for i in range(0, len(text), chunk)])

    def kill_all(self) -> None:
        for m in self.machines.values():
            m.kill()

    def _run(self, ref: str, kernel: dict[str, Any]) -> None:
        """Start a pushed kernel as a local machine (see the module docstring)."""
        from tests.fakes.machine import LocalMachine

        m = LocalMachine(self.machines_root / ref.replace("/", "__"))

        def chroot(text: str) -> str:
            return text.replace("/kaggle/", f"{m.root}/kaggle/").replace("/tmp/ftc", f"{m.root}/tmp/ftc")

        def rewrite_script(match: re.Match) -> str:
            script = gzip.decompress(base64.b64decode(match.group(1))).decode()
            return f'b64decode("{base64.b64encode(gzip.compress(chroot(script).encode())).decode()}")'

        for ds in kernel["datasets"]:
            mount = m.root / "kaggle" / "input" / ds.split("/", 1)[1]
            mount.mkdir(parents=True, exist_ok=True)
            for name, data in self.datasets[ds]["files"].items():
                (mount / name).write_bytes(data)
        (m.root / "kaggle" / "working").mkdir(parents=True, exist_ok=True)
        (m.root / "tmp").mkdir(exist_ok=True)
        source = re.sub(r'b64decode\("([A-Za-z0-9+/=]+)"\)', rewrite_script, chroot(kernel["text"]))
        (m.root / "kernel.py").write_text(source, encoding="utf-8")
        self.machines[ref] = m.start_argv([sys.executable, str(m.root / "kernel.py")])
        kernel["status"] = "RUNNING"

    def _refresh(self, ref: str) -> None:
        m, k = self.machines.get(ref), self.kernels.get(ref)
        if m is None or k is None or k["status"] != "RUNNING" or m.alive:
            return
        k["status"] = "COMPLETE" if m.proc.returncode == 0 else "ERROR"
        k["failure"] = None if m.proc.returncode == 0 else f"Your notebook hit an error (exit {m.proc.returncode})"
        self.set_log(ref, m.output())
        working = m.root / "kaggle" / "working"
        k["outputs"] = sorted(str(p.relative_to(working)) for p in working.rglob("*") if p.is_file())
        for name in k["outputs"]:
            self.output_files[f"{k['id']}-{len(self.output_files)}"] = working / name

    # -- HTTP -------------------------------------------------------------------------------------------------
    def _authorized(self, req: Request) -> bool:
        auth = req.headers.get("authorization", "")
        if not auth.lower().startswith("basic "):
            return False
        return base64.b64decode(auth[6:]).decode() == f"{self.username}:{self.key}"

    def handle(self, req: Request) -> Response:
        if req.method == "PUT" and req.path.startswith("/upload/"):
            blob = self.blobs.get(req.path.rsplit("/", 1)[1])
            if blob is None:
                return _err(404, "Unknown upload")
            blob["data"] = req.body
            return Response(200, {})
        if req.method == "GET" and req.path.startswith("/out/"):
            # A signed storage URL: no Kaggle auth (kaggle_api_extended.kernels_output GETs it with requests alone).
            path = self.output_files.get(req.path.rsplit("/", 1)[1])
            if path is None:
                return Response(404, b"<Error><Code>NoSuchKey</Code></Error>")
            return Response(200, path.read_bytes())
        if not req.path.startswith("/api/v1/"):
            return _err(404, f"No route {req.path}")
        if not self._authorized(req):
            return _err(401, "Unauthenticated")
        service, method = req.path[len("/api/v1/"):].split("/", 1)
        body = req.json() or {}
        with self._lock:
            handler = getattr(self, f"_{service.split('.')[0]}_{method}", None)
            if handler is None:
                return _err(404, f"No method {service}/{method}")
            return handler(body)

    # blobs
    def _blobs_StartBlobUpload(self, body: dict[str, Any]) -> Response:
        token = f"blob{next(self._ids)}"
        self.blobs[token] = {"name": body["name"], "size": body.get("contentLength"), "data": None,
                             "type": body.get("type")}
        return Response(200, {"token": token, "createUrl": f"{self.url}/upload/{token}"})

    # datasets
    def _datasets_CreateDataset(self, body: dict[str, Any]) -> Response:
        ref = f"{body['ownerSlug']}/{body['slug']}"
        if body["ownerSlug"] != self.username:
            return Response(200, {"error": f"You cannot create datasets for {body['ownerSlug']}"})
        if ref in self.datasets:
            return Response(200, {"error": "The requested title or slug is already in use by another dataset"})
        files = {}
        for f in body.get("files") or []:
            blob = self.blobs.get(f["token"])
            if blob is None or blob["data"] is None:
                return Response(200, {"error": "Upload token is invalid or the upload did not complete"})
            files[blob["name"]] = blob["data"]
        self.datasets[ref] = {"files": files, "private": body.get("isPrivate", False), "status_calls": 0}
        return Response(200, {"ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}", "status": "Ok",
                              "error": ""})

    def _datasets_GetDatasetStatus(self, body: dict[str, Any]) -> Response:
        ds = self.datasets.get(f"{body['ownerSlug']}/{body['datasetSlug']}")
        if ds is None:
            return _err(404, "Dataset not found")
        ds["status_calls"] += 1
        return Response(200, {"status": "READY" if ds["status_calls"] >= self.dataset_ready_after
                              else "BLOBS_RECEIVED"})

    def _datasets_DeleteDataset(self, body: dict[str, Any]) -> Response:
        if self.datasets.pop(f"{body['ownerSlug']}/{body['datasetSlug']}", None) is None:
            return _err(404, "Dataset not found")
        return Response(200, {})

    # kernels
    def _kernels_ListKernels(self, body: dict[str, Any]) -> Response:
        out = [{"ref": f"/code/{ref}", "title": k["title"], "author": ref.split("/")[0],
                "slug": ref.split("/")[1]} for ref, k in self.kernels.items()
               if ref.startswith(f"{body.get('user', '')}/") and (body.get("search") or "") in ref]
        return Response(200, {"kernels": out[: int(body.get("pageSize") or 20)]})

    def _kernels_SaveKernel(self, body: dict[str, Any]) -> Response:
        if self.refuse_push:
            return Response(200, {"error": self.refuse_push})
        ref = body["slug"]
        bad = [d for d in body.get("datasetDataSources") or [] if d not in self.datasets]
        if bad:
            return Response(200, {"error": "Invalid dataset sources", "invalidDatasetSources": bad})
        prev = self.kernels.get(ref, {})
        self.kernels[ref] = {
            "title": body.get("newTitle"), "text": body["text"], "language": body.get("language"),
            "kernel_type": body.get("kernelType"), "private": body.get("isPrivate"),
            "gpu": body.get("enableGpu"), "internet": body.get("enableInternet"),
            "datasets": body.get("datasetDataSources") or [], "shape": body.get("machineShape"),
            "timeout": body.get("sessionTimeoutSeconds"), "status": "QUEUED", "failure": None, "log": "",
            "version": prev.get("version", 0) + 1, "id": prev.get("id") or next(self._ids),
        }
        k = self.kernels[ref]
        if self.machines_root is not None:
            self._run(ref, k)
        return Response(200, {"ref": f"/code/{ref}", "url": f"https://www.kaggle.com/code/{ref}",
                              "versionNumber": k["version"], "kernelId": k["id"]})

    def _kernel(self, body: dict[str, Any]) -> dict[str, Any] | None:
        ref = f"{body['userName']}/{body['kernelSlug']}"
        self._refresh(ref)
        return self.kernels.get(ref)

    def _kernels_GetKernelSessionStatus(self, body: dict[str, Any]) -> Response:
        k = self._kernel(body)
        if k is None:
            return _err(404, "Notebook not found")
        return Response(200, {"status": k["status"], **({"failureMessage": k["failure"]} if k["failure"] else {})})

    def _kernels_ListKernelSessionOutput(self, body: dict[str, Any]) -> Response:
        k = self._kernel(body)
        if k is None:
            return _err(404, "Notebook not found")
        done = k["status"] in ("COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED")
        if "outputs" in k:
            tokens = {path: t for t, path in self.output_files.items()}
            working = self.machines[f"{body['userName']}/{body['kernelSlug']}"].root / "kaggle" / "working"
            files = [{"fileName": n, "url": f"{self.url}/out/{tokens[working / n]}"} for n in k["outputs"]]
        else:  # a session the test scripted: its listed file was never stored, so its URL answers 404
            files = [{"fileName": "final/adapter_model.safetensors", "url": f"{self.url}/out/missing"}]
        files = files if done else []
        return Response(200, {"files": files, "log": k["log"] if done else ""})

    def _kernels_DeleteKernel(self, body: dict[str, Any]) -> Response:
        ref = f"{body['userName']}/{body['kernelSlug']}"
        if ref in self.machines:
            self.machines[ref].kill()  # deleting a running notebook ends its session
        if self.kernels.pop(ref, None) is None:
            return _err(404, "Notebook not found")
        return Response(200, {})

    def _kernels_GetAcceleratorQuotaStatistics(self, body: dict[str, Any]) -> Response:
        refresh = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3 * 86400))
        return Response(200, {"quotaRefreshTime": refresh,
                              "gpuQuota": {"timeUsed": f"{int(self.gpu_hours_used * 3600)}s",
                                           "totalTimeAllowed": "108000s"},
                              "tpuQuota": {"timeUsed": "0s", "totalTimeAllowed": "72000s"}})

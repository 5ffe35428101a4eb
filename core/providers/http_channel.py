"""The console's side of the report channel that remote machines serve (``trainer/sink_http.py``).

Providers whose machines expose a port (RunPod through its HTTPS proxy, Lambda on the instance's public IP over
TLS pinned to a per-job certificate, ``channel_tls.py``) use
it in the embedded mode: the console pulls the machine's rows, pushes the files the machine waits for (bundle,
dataset, local model) and downloads the artifact when no Hugging Face token was given. Nothing here needs a
database server, so a person with a RunPod key alone can train remotely and watch it live.

The per-job token is derived, never stored: HMAC-SHA256 of the job id under a key kept in
``$CONSOLE_HOME/channel.key`` (mode 0600). The same key names this console (``console_id``) in the label of every
resource it creates, so the orphan reaper never touches machines another console launched on the same account.

What each launch needs to remember (files to push, the port, the price and launch time for the cost, the budget
deadline) is kept in ``jobs/<job_id>/remote.json``: not secret, and enough to resume after a console restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from core.errors import AuthError, ProviderError, ProviderUnavailable, ResourceNotFound

log = logging.getLogger("finetune_console.channel")

_KEY_CACHE: dict[str, bytes] = {}


def _key() -> bytes:
    from core.paths import console_home

    path = console_home() / "channel.key"
    cached = _KEY_CACHE.get(str(path))
    if cached:
        return cached
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    key = bytes.fromhex(path.read_text().strip())
    _KEY_CACHE[str(path)] = key
    return key


def job_token(job_id: str) -> str:
    """The bearer token of one job's channel (given to its machine through the provider's env/secret channel)."""
    return hmac.new(_key(), f"channel:{job_id}".encode(), hashlib.sha256).hexdigest()


def console_id() -> str:
    """A short stable id of this console installation, part of every resource label."""
    return hmac.new(_key(), b"console-id", hashlib.sha256).hexdigest()[:8]


def resource_name(job_id: str) -> str:
    """The name (label) every remote machine of this console carries: ``ftc-<console>-<job_id>``."""
    return f"ftc-{console_id()}-{job_id}"


def job_from_name(name: str | None) -> str | None:
    """The job id in a resource name this console gave, or None for anything else."""
    prefix = f"ftc-{console_id()}-"
    return name[len(prefix):] if name and name.startswith(prefix) else None


# -- remote.json --------------------------------------------------------------------------------------------------

def save_remote(job_id: str, **fields: Any) -> dict[str, Any]:
    from core.paths import job_dir

    path = job_dir(job_id) / "remote.json"
    doc = load_remote(job_id) or {}
    doc.update({k: v for k, v in fields.items()})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return doc


def load_remote(job_id: str) -> dict[str, Any] | None:
    from core.paths import jobs_dir

    try:
        return json.loads((jobs_dir() / job_id / "remote.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def job_for_ref(provider: str, ref: str) -> str | None:
    """Which job launched ``ref`` (works after the resource vanished, when its name can no longer be read)."""
    from core.paths import jobs_dir

    for path in sorted(jobs_dir().glob("*/remote.json"), reverse=True):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if doc.get("ref") == ref and doc.get("provider") == provider:
            return path.parent.name
    return None


def estimated_cost(job_id: str, *, alive: bool) -> float | None:
    """price x time since launch; once the machine is gone, up to when it was first seen gone (or the deadline)."""
    doc = load_remote(job_id)
    if not doc or doc.get("price_per_hour") is None or not doc.get("launched_at"):
        return None
    end = time.time()
    if not alive:
        end = doc.get("ended_at") or end
        if doc.get("ended_at") is None:
            save_remote(job_id, ended_at=end)
    if doc.get("deadline_epoch"):
        end = min(end, float(doc["deadline_epoch"]))
    return max(0.0, end - float(doc["launched_at"])) / 3600.0 * float(doc["price_per_hour"])


# -- the client ---------------------------------------------------------------------------------------------------

class ChannelClient:
    """``pin``: the SHA-256 of the only certificate to accept (a machine serving TLS on its IP, channel_tls.py)."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 20.0, pin: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.pin = pin
        self._pinned: Any = None  # the pinned session's request, made on first use
        if pin and not self.base_url.startswith("https://"):
            raise ProviderError("A pinned report channel must be reached over https.")

    def _req(self, method: str, path: str, *, stream: bool = False, **kw: Any) -> Any:
        import requests

        if self.pin and self._pinned is None:
            from core.providers.channel_tls import pinned_request

            self._pinned = pinned_request(self.pin)
        send = self._pinned or requests.request
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        try:
            r = send(method, self.base_url + path, headers=headers, timeout=self.timeout, stream=stream, **kw)
        except requests.exceptions.SSLError as exc:
            if not self.pin:
                raise ProviderUnavailable(f"The machine's report channel failed its TLS check ({exc}).") from None
            # Before any byte of the request (token included) was sent. Still retried: the port may yet belong
            # to a process other than the channel while the machine boots.
            raise ProviderUnavailable("The machine's report channel did not present the certificate this console "
                                      "issued for the job; nothing was sent to it.") from None
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"The machine's report channel is not reachable yet ({type(exc).__name__}).")
        if r.status_code < 400:
            return r
        if r.status_code == 401:
            raise AuthError("The machine refused the job token; it belongs to another job or console.")
        try:
            body = r.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body and r.status_code < 500:
            # The channel itself answered (not a proxy page): a refusal, not something to retry.
            if body["error"] == "not_found" and path.startswith("/v1/artifact"):
                raise ResourceNotFound("The machine offers no artifact.")
            raise ProviderError(f"The machine refused the request: {body.get('detail') or body['error']}.")
        # The RunPod proxy answers 502/404 pages until the port is up: try again later.
        raise ProviderUnavailable(f"The machine's report channel answered HTTP {r.status_code}.")

    def state(self) -> dict[str, Any]:
        return self._req("GET", "/v1/state").json()

    def entries(self, after: int, limit: int = 1000) -> dict[str, Any]:
        return self._req("GET", "/v1/entries", params={"after": after, "limit": limit}).json()

    def push(self, name: str, path: str | Path) -> None:
        size = Path(path).stat().st_size
        with open(path, "rb") as f:
            self._req("PUT", f"/v1/files/{name}", data=f, headers={"Content-Length": str(size)})

    def cancel(self) -> None:
        self._req("POST", "/v1/cancel")

    def logs(self, tail: int = 200) -> str:
        return self._req("GET", "/v1/logs", params={"tail": tail}).json().get("log", "")

    def fetch_artifact(self, dest: str | Path, expected_sha256: str) -> Path:
        """Download, verify and unpack the artifact into ``dest``; then tell the machine it may go."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.tar.gz.part"
        h = hashlib.sha256()
        r = self._req("GET", "/v1/artifact", stream=True)
        with tmp.open("wb") as f:
            for block in r.iter_content(1 << 20):
                h.update(block)
                f.write(block)
        if h.hexdigest() != expected_sha256:
            tmp.unlink(missing_ok=True)
            raise ProviderUnavailable("The artifact arrived damaged; it will be downloaded again.")
        staging = dest.parent / f".{dest.name}.unpack"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        with tarfile.open(tmp, "r:gz") as tar:
            tar.extractall(staging, filter="data")  # refuses absolute paths and links out of the folder
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        tmp.unlink(missing_ok=True)
        self._req("POST", "/v1/artifact/ack")
        return dest


def sync(client: ChannelClient, job_id: str, after_seq: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One round with a machine: push what it waits for, pull new rows, collect the artifact once all rows are in.

    Returns entries for ``apply_entries`` (all numbered at most like the newest row, so the caller's high-water
    mark never moves back) and the machine's state, with ``settled`` set when the console now holds everything.
    """
    doc = client.entries(after_seq)
    remote = load_remote(job_id) or {}
    for name in doc.get("missing") or []:
        local = (remote.get("push") or {}).get(name)
        if not local:
            raise ProviderError(f"The machine waits for '{name}', which this console did not plan to send.")
        log.info("pushing %s of %s to its machine", name, job_id)
        client.push(name, local)
    rows = list(doc.get("entries") or [])
    top = max([after_seq] + [e["seq"] for e in rows])
    # The heartbeat goes first: a final status in the same batch must win over its older progress figures.
    entries = [{"seq": top, "kind": "heartbeat", "payload": doc["heartbeat"]}] if doc.get("heartbeat") else []
    entries += rows
    complete = top >= int(doc.get("last_seq") or 0)
    art = doc.get("artifact")
    fetched = bool(doc.get("artifact_fetched"))
    if complete and art and not fetched:
        from core.paths import artifacts_dir

        dest = artifacts_dir() / job_id / "final"
        client.fetch_artifact(dest, art["sha256"])
        entries.append({"seq": top, "kind": "job", "payload": {"artifact_path": str(dest)}})
        fetched = True
    doc["settled"] = bool(doc.get("finished")) and complete and (fetched or not art)
    return entries, doc


class ChannelProvider:
    """Mixin for providers whose machines serve the report channel on a port (RunPod, Lambda).

    The provider says where the channel is (``channel_url``); this gives it ``pull_entries``, ``request_stop``,
    ``logs`` and ``channel_settled`` (the machine finished and the console holds all it reported: time to
    release it even if the machine's own release failed).
    """

    name: str
    report_channel = "http"

    def channel_url(self, ref: str, job_id: str) -> str | None:
        raise NotImplementedError

    def _channel(self, ref: str) -> tuple[ChannelClient, str] | None:
        job_id = job_for_ref(self.name, ref)
        url = self.channel_url(ref, job_id) if job_id else None
        if not (url and job_id):
            return None
        return ChannelClient(url, job_token(job_id), pin=(load_remote(job_id) or {}).get("tls_sha256")), job_id

    def _docs(self) -> dict[str, dict[str, Any]]:
        if not hasattr(self, "_channel_docs"):
            self._channel_docs: dict[str, dict[str, Any]] = {}
        return self._channel_docs

    def pull_entries(self, ref: str, after_seq: int) -> list[dict[str, Any]]:
        ch = self._channel(ref)
        if ch is None:
            return []
        entries, doc = sync(ch[0], ch[1], after_seq)
        self._docs()[ref] = doc
        return entries

    def note_gone(self, ref: str) -> None:
        """Record when the machine was first seen gone: the cost estimate stops there."""
        job_id = job_for_ref(self.name, ref)
        if job_id and not (load_remote(job_id) or {}).get("ended_at"):
            save_remote(job_id, ended_at=time.time())

    def channel_settled(self, ref: str) -> bool:
        return bool(self._docs().get(ref, {}).get("settled"))

    def request_stop(self, ref: str) -> None:
        ch = self._channel(ref)
        if ch is not None:
            try:
                ch[0].cancel()
            except ProviderUnavailable:
                pass  # the poller asks again next round, and kills the machine after the grace

    def logs(self, ref: str, tail: int = 200) -> str:
        ch = self._channel(ref)
        if ch is None:
            return ""
        try:
            return ch[0].logs(tail)
        except ProviderError as exc:
            return f"(the machine's log is not reachable: {exc})"

"""The reporting channel of a machine that exposes a port (RunPod's proxy, Lambda's public IP).

In the embedded mode the console's store is a SQLite file on the user's computer, which a cloud machine cannot
reach. So the machine keeps what it reports in a report folder and serves it on a small token-protected HTTP
endpoint; the console pulls the rows and applies them with the same idempotent upserts as every other sink.

The report folder (``$FTC_REPORT_DIR``):

- ``outbox.jsonl``: entries (``{"seq", "kind", "payload", "ts"}``) appended under an exclusive ``flock``, so the
  trainer and the bootstrap script (which reports setup failures and the budget deadline) interleave safely. The
  channel numbers entries itself (``seq``, gap-free); the trainer's own sequence number is kept as ``tseq``.
- ``heartbeat.json``, the latest heartbeat; ``cancel``, created when the console asks the trainer to stop;
  ``acked``, the highest seq the console confirmed by asking for what follows it.
- ``wanted.json`` and ``files/``: files the console pushes to the machine (the trainer bundle, the dataset), so a
  person with only a cloud key and no object storage can train remotely.
- ``artifact.tar.gz`` / ``artifact.json``: the trained adapter, offered for download when no Hugging Face token
  was given; ``artifact_fetched`` once the console confirmed it.
- ``state.json``: the bootstrap's phase and, at the end, its exit status.

HTTP (every route needs ``Authorization: Bearer <token>``; the token is per job)::

    GET  /v1/state                 phase, last_seq, acked, missing pushed files, artifact offer
    GET  /v1/entries?after=N       entries with seq > N (and marks N acknowledged), the latest heartbeat
    PUT  /v1/files/<name>          a wanted file (size and sha256 checked)
    GET  /v1/artifact              the artifact archive;  POST /v1/artifact/ack  confirms it arrived
    GET  /v1/logs?tail=N           the end of the bootstrap log
    POST /v1/cancel                ask the trainer to save a checkpoint and stop

This module runs twice: imported by the trainer (``make_http_sink``) and, before anything is installed, as a
standalone script the bootstrap writes next to the job (``python3 ftc_channel.py --dir D SUBCOMMAND``). It must
therefore use the standard library only and import nothing from the project.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import hmac
import json
import os
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

PREFIX = "@@FTC "
DEFAULT_PORT = 8765
TERMINAL = ("completed", "failed", "cancelled", "budget_stopped")
_CHUNK = 1 << 20


# -- the report folder ------------------------------------------------------------------------------------------

def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class ReportDir:
    """Everything the machine reports, on local disk: writing never waits on the network."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "files").mkdir(exist_ok=True)
        self.outbox = self.root / "outbox.jsonl"
        self._lock_path = self.root / "outbox.lock"
        self._counter = self.root / "outbox.seq"
        self._cursor: tuple[int, int] = (0, 0)  # (seq, byte offset just after it): the console reads forward
        self._cursor_lock = threading.Lock()

    # outbox -------------------------------------------------------------------------------------------------
    def append(self, entries: list[dict[str, Any]]) -> int:
        if not entries:
            return self.last_seq()
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            seq = self.last_seq()
            lines = []
            for e in entries:
                seq += 1
                row = {"seq": seq, "kind": e["kind"], "payload": e.get("payload") or {}, "ts": e.get("ts") or time.time()}
                if e.get("seq") is not None:
                    row["tseq"] = e["seq"]
                lines.append(json.dumps(row, default=str, separators=(",", ":")))
            with open(self.outbox, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
                f.flush()
                os.fsync(f.fileno())
            _atomic_write(self._counter, str(seq))
        return seq

    def last_seq(self) -> int:
        try:
            return int(self._counter.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def read(self, after: int, limit: int = 1000) -> list[dict[str, Any]]:
        with self._cursor_lock:
            cseq, coff = self._cursor
        start = coff if after >= cseq else 0
        out: list[dict[str, Any]] = []
        try:
            f = open(self.outbox, "rb")
        except OSError:
            return out
        with f:
            f.seek(start)
            last = (cseq, coff) if start else (0, 0)
            while len(out) < limit:
                line = f.readline()
                if not line or not line.endswith(b"\n"):
                    break  # end, or a line still being written
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                last = (row["seq"], f.tell())
                if row["seq"] > after:
                    out.append(row)
        with self._cursor_lock:
            if last[0] >= self._cursor[0]:
                self._cursor = last
        return out

    def has_terminal_status(self) -> bool:
        try:
            text = self.outbox.read_text(encoding="utf-8")
        except OSError:
            return False
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if row.get("kind") == "status" and (row.get("payload") or {}).get("status") in TERMINAL:
                return True
        return False

    # side files ---------------------------------------------------------------------------------------------
    def heartbeat(self, fields: dict[str, Any]) -> None:
        merged = {**_read_json(self.root / "heartbeat.json", {}), **fields}
        _atomic_write(self.root / "heartbeat.json", json.dumps(merged, default=str))

    def acked(self) -> int:
        try:
            return int((self.root / "acked").read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def ack(self, seq: int) -> None:
        if seq > self.acked():
            _atomic_write(self.root / "acked", str(min(seq, self.last_seq())))

    def state(self) -> dict[str, Any]:
        return _read_json(self.root / "state.json", {"phase": "starting", "finished": False, "exit_code": None})

    def set_phase(self, phase: str, *, finished: bool = False, exit_code: int | None = None) -> None:
        _atomic_write(self.root / "state.json", json.dumps(
            {"phase": phase, "finished": finished, "exit_code": exit_code, "updated": time.time()}))

    def wanted(self) -> dict[str, dict[str, Any]]:
        return _read_json(self.root / "wanted.json", {})

    def want(self, name: str, sha256: str, size: int) -> None:
        w = self.wanted()
        w[name] = {"sha256": sha256, "size": size}
        _atomic_write(self.root / "wanted.json", json.dumps(w))

    def missing(self) -> list[str]:
        return sorted(n for n in self.wanted() if not (self.root / "files" / n).is_file())

    def artifact(self) -> dict[str, Any] | None:
        return _read_json(self.root / "artifact.json", None)

    def artifact_settled(self) -> bool:
        return self.artifact() is None or (self.root / "artifact_fetched").exists()

    def settled(self) -> bool:
        """The console has every entry and the artifact: the machine may go."""
        return self.acked() >= self.last_seq() and self.artifact_settled()


# -- the server -------------------------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server: "ChannelServer"
    protocol_version = "HTTP/1.1"
    timeout = 300  # seconds of silence on one connection (a stalled handshake or upload) before it is dropped

    def log_message(self, fmt: str, *args: Any) -> None:  # requests carry no secret, but keep the log for training
        pass

    def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        got = self.headers.get("Authorization", "")
        want = f"Bearer {self.server.token}"
        if hmac.compare_digest(got.encode(), want.encode()):
            return True
        self._refuse(401, "unauthorized", "missing or wrong job token")
        return False

    def _refuse(self, code: int, error: str, detail: str) -> None:
        # The request body is left unread, so this connection cannot carry another request.
        self.close_connection = True
        self._send(code, {"error": error, "detail": detail})

    def _drain(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        while n > 0:
            block = self.rfile.read(min(n, _CHUNK))
            if not block:
                break
            n -= len(block)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._authorized():
            return
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        rd = self.server.report
        if url.path == "/v1/state":
            return self._send(200, self.server.state_doc())
        if url.path == "/v1/entries":
            after = int(q.get("after", 0))
            limit = max(1, min(int(q.get("limit", 1000)), 5000))
            rd.ack(after)
            doc = self.server.state_doc()
            doc["entries"] = rd.read(after, limit)
            doc["heartbeat"] = _read_json(rd.root / "heartbeat.json", None)
            return self._send(200, doc)
        if url.path == "/v1/artifact":
            art = rd.artifact()
            path = rd.root / "artifact.tar.gz"
            if not art or not path.is_file():
                return self._send(404, {"error": "not_found", "detail": "no artifact is offered"})
            self.send_response(200)
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Length", str(path.stat().st_size))
            self.send_header("X-Sha256", art["sha256"])
            self.end_headers()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(_CHUNK), b""):
                    self.wfile.write(block)
            return None
        if url.path == "/v1/logs":
            tail = max(1, min(int(q.get("tail", 200)), 5000))
            return self._send(200, {"log": tail_text(self.server.log_path, tail)})
        return self._send(404, {"error": "not_found", "detail": url.path})

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        self._drain()
        path = urlparse(self.path).path
        rd = self.server.report
        if path == "/v1/cancel":
            (rd.root / "cancel").touch()
            return self._send(200, {"ok": True})
        if path == "/v1/artifact/ack":
            (rd.root / "artifact_fetched").touch()
            return self._send(200, {"ok": True})
        return self._send(404, {"error": "not_found", "detail": path})

    def do_PUT(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        path = urlparse(self.path).path
        rd = self.server.report
        name = path.removeprefix("/v1/files/")
        spec = rd.wanted().get(name) if path.startswith("/v1/files/") else None
        size = int(self.headers.get("Content-Length") or -1)
        if spec is None:
            return self._refuse(404, "not_wanted", f"no file named {name!r} is expected")
        if size != spec["size"]:
            return self._refuse(400, "bad_size", f"expected {spec['size']} bytes, got {size}")
        part = rd.root / "files" / f".{name}.part"
        h = hashlib.sha256()
        left = size
        with open(part, "wb") as f:
            while left > 0:
                block = self.rfile.read(min(left, _CHUNK))
                if not block:
                    break
                h.update(block)
                f.write(block)
                left -= len(block)
        if left or h.hexdigest() != spec["sha256"]:
            part.unlink(missing_ok=True)
            return self._send(400, {"error": "bad_checksum", "detail": f"{name} arrived damaged; send it again"})
        os.replace(part, rd.root / "files" / name)
        return self._send(200, {"ok": True, "name": name})


class ChannelServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, report: ReportDir, token: str, job_id: str, host: str = "0.0.0.0", port: int = DEFAULT_PORT,
                 log_path: str | Path | None = None, tls: tuple[str, str] | None = None) -> None:
        """``tls``: (certificate PEM, key PEM) the console issued for this job; it pins the certificate."""
        if not token:
            raise ValueError("the report channel needs a job token (FTC_REPORT_TOKEN)")
        self.report, self.token, self.job_id = report, token, job_id
        self.log_path = Path(log_path) if log_path else None
        super().__init__((host, port), _Handler)
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(*_pem_files(report.root, *tls))
            # The handshake runs in the request's thread, so a client that stalls in it holds up no other.
            self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A port on a public IP meets scanners, failed handshakes and dropped connections: none is the job's news
        # (a full disk or a refused write while a file is pushed is, and goes to the log).
        import ssl

        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)

    def state_doc(self) -> dict[str, Any]:
        rd = self.report
        return {"job_id": self.job_id, **rd.state(), "last_seq": rd.last_seq(), "acked": rd.acked(),
                "missing": rd.missing(), "artifact": rd.artifact(), "artifact_fetched": rd.artifact_settled()}

    def start(self) -> "ChannelServer":
        threading.Thread(target=self.serve_forever, name="ftc-channel", daemon=True).start()
        return self


def tls_from_env() -> tuple[str, str] | None:
    """The channel's certificate and key, when the console sent them (a machine serving on its public IP)."""
    cert, key = os.environ.get("FTC_REPORT_TLS_CERT"), os.environ.get("FTC_REPORT_TLS_KEY")
    return (cert, key) if cert and key else None


def _pem_files(root: Path, cert: str, key: str) -> tuple[str, str]:
    # ssl loads a key only from a file; it stays readable by this user alone.
    root.mkdir(parents=True, exist_ok=True)
    paths = (root / ".channel-cert.pem", root / ".channel-key.pem")
    for path, text in zip(paths, (cert, key)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    return str(paths[0]), str(paths[1])


def tail_text(path: Path | None, lines: int) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max(8192, lines * 300)))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# -- the trainer's sink ------------------------------------------------------------------------------------------

class HttpSink:
    """The trainer's side: rows go to the report folder (local disk), the channel serves them."""

    def __init__(self, report: ReportDir, server: ChannelServer | None = None, linger_s: float = 300.0) -> None:
        self.report, self.server, self.linger_s = report, server, linger_s

    def write(self, entries: list[dict[str, Any]]) -> None:
        self.report.append(entries)

    def heartbeat(self, fields: dict[str, Any]) -> None:
        self.report.heartbeat(fields)

    def cancel_requested(self) -> bool | None:
        return (self.report.root / "cancel").exists()

    def close(self) -> None:
        if self.server is None:
            return  # the bootstrap owns the server and waits for the console itself
        deadline = time.monotonic() + self.linger_s
        while time.monotonic() < deadline and not self.report.settled():
            time.sleep(0.2)
        self.server.shutdown()
        self.server.server_close()


def make_http_sink(job_id: str, *, token: str | None = None, port: int | None = None,
                   root: str | Path | None = None) -> HttpSink:
    """The sink for ``SinkSpec(kind="http")``.

    Under the bootstrap (``FTC_REPORT_SERVED=1``) the script already serves ``$FTC_REPORT_DIR``; the trainer only
    writes there. Run by hand, the trainer serves the folder itself on ``port`` and, when it finishes, waits up to
    ``FTC_REPORT_LINGER_S`` seconds for the console to collect everything.
    """
    report = ReportDir(root or os.environ.get("FTC_REPORT_DIR") or "report")
    if os.environ.get("FTC_REPORT_SERVED") == "1":
        return HttpSink(report)
    token = token or os.environ.get("FTC_REPORT_TOKEN") or ""
    host = os.environ.get("FTC_REPORT_HOST", "0.0.0.0")
    server = ChannelServer(report, token, job_id, host=host, port=port or DEFAULT_PORT, tls=tls_from_env()).start()
    return HttpSink(report, server, float(os.environ.get("FTC_REPORT_LINGER_S", 300)))


# -- what the bootstrap script calls -------------------------------------------------------------------------------

def _emit(args: argparse.Namespace, entries: list[dict[str, Any]]) -> None:
    if args.channel == "stdout":
        for e in entries:
            print(PREFIX + json.dumps({**e, "src": "bootstrap", "ts": time.time()}, default=str,
                                      separators=(",", ":")), flush=True)
    else:
        ReportDir(args.dir).append(entries)


def _reported(args: argparse.Namespace) -> bool:
    """Did the trainer already write its own final status (so a setup-failure report would only add noise)?"""
    if args.channel != "stdout":
        return ReportDir(args.dir).has_terminal_status()
    try:
        text = Path(args.log).read_text(encoding="utf-8", errors="replace") if args.log else ""
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith(PREFIX):
            try:
                row = json.loads(line[len(PREFIX):])
            except ValueError:
                continue
            if row.get("kind") == "status" and (row.get("payload") or {}).get("status") in TERMINAL:
                return True
    return False


def _cmd_emit_failure(args: argparse.Namespace) -> int:
    if args.unless_reported and _reported(args):
        return 0
    message = os.environ.get(args.message_env) or "The machine's setup failed."
    tb = tail_text(Path(args.log), 60) if args.log else None
    _emit(args, [
        {"kind": "error", "payload": {"error_type": "bootstrap", "message": message, "traceback": tb,
                                      "hint": "Read the log tail; the machine was released."}},
        {"kind": "status", "payload": {"status": "failed", "fields": {"reason": message, "error_message": message}}},
    ])
    return 0


def _cmd_emit_status(args: argparse.Namespace) -> int:
    reason = os.environ.get(args.reason_env) if args.reason_env else None
    _emit(args, [{"kind": "status", "payload": {"status": args.status, "fields": {"reason": reason}}}])
    return 0


def _cmd_emit_job(args: argparse.Namespace) -> int:
    _emit(args, [{"kind": "job", "payload": {args.field: os.environ.get(args.value_env)}}])
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    server = ChannelServer(ReportDir(args.dir), os.environ.get("FTC_REPORT_TOKEN", ""), args.job_id,
                           host=args.host, port=args.port, log_path=args.log, tls=tls_from_env())
    server.serve_forever()
    return 0


def _cmd_phase(args: argparse.Namespace) -> int:
    ReportDir(args.dir).set_phase(args.phase, finished=args.finished, exit_code=args.exit_code)
    return 0


def _cmd_want(args: argparse.Namespace) -> int:
    ReportDir(args.dir).want(args.name, args.sha256, args.size)
    return 0


def _wait(condition: Any, timeout: float, complaint: Any) -> int:
    deadline = time.monotonic() + max(0.0, timeout)
    while not condition():
        if time.monotonic() > deadline:
            print(f"[ftc] {complaint()}", file=sys.stderr)
            return 1
        time.sleep(0.5)
    return 0


def _cmd_wait_files(args: argparse.Namespace) -> int:
    rd = ReportDir(args.dir)
    return _wait(lambda: not rd.missing(), args.timeout,
                 lambda: f"the console did not send {', '.join(rd.missing())} within {args.timeout:.0f} s")


def _cmd_wait_acked(args: argparse.Namespace) -> int:
    rd = ReportDir(args.dir)
    return _wait(rd.settled, args.timeout,
                 lambda: f"the console collected up to entry {rd.acked()} of {rd.last_seq()}; not waiting longer")


def _cmd_check(args: argparse.Namespace) -> int:
    got = sha256_file(args.file)
    if got != args.sha256:
        print(f"[ftc] {args.file} is damaged (sha256 {got}, expected {args.sha256})", file=sys.stderr)
        return 1
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    """Download a URL (given base64-encoded, so no quoting reaches the shell) with an optional bearer token."""
    import base64
    import urllib.request

    url = base64.b64decode(args.url_b64).decode()
    req = urllib.request.Request(url)
    token = os.environ.get(args.auth_env) if args.auth_env else None
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    tmp = Path(args.out).with_name(Path(args.out).name + ".part")
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=120) as r, open(tmp, "wb") as f:
                for block in iter(lambda: r.read(_CHUNK), b""):
                    f.write(block)
            os.replace(tmp, args.out)
            return 0
        except OSError as exc:
            print(f"[ftc] download failed ({exc}); retry {attempt + 1}/5", file=sys.stderr)
            time.sleep(2 ** attempt)
    return 1


def _cmd_offer_artifact(args: argparse.Namespace) -> int:
    rd = ReportDir(args.dir)
    out = rd.root / "artifact.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(args.src, arcname=".")
    _atomic_write(rd.root / "artifact.json", json.dumps({"sha256": sha256_file(out), "size": out.stat().st_size}))
    return 0


def _cmd_upload_hf(args: argparse.Namespace) -> int:
    """Push the artifact to a private Hugging Face model repo (huggingface_hub arrives with transformers)."""
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get("HF_TOKEN"))
    repo = args.repo or f"{api.whoami()['name']}/{args.default_name}"
    api.create_repo(repo, private=True, exist_ok=True, repo_type="model")
    api.upload_folder(repo_id=repo, folder_path=args.src, repo_type="model",
                      commit_message="FineTune Console: trained artifact")
    _emit(args, [{"kind": "job", "payload": {"artifact_path": f"hf://{repo}"}}])
    print(f"[ftc] uploaded the model to https://huggingface.co/{repo} (private)", flush=True)
    return 0


def _cmd_release_lambda(args: argparse.Namespace) -> int:
    """Terminate this Lambda instance (found by its name) with the account key; Lambda has no self-stop."""
    import urllib.request

    key = os.environ.get("LAMBDA_API_KEY", "")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(f"{args.base_url}/instances", headers=headers),
                                timeout=30) as r:
        instances = json.load(r)["data"]
    ids = [i["id"] for i in instances if i.get("name") == args.name and i.get("status") != "terminated"]
    if not ids:
        return 0
    body = json.dumps({"instance_ids": ids}).encode()
    req = urllib.request.Request(f"{args.base_url}/instance-operations/terminate", data=body, headers=headers,
                                 method="POST")
    with urllib.request.urlopen(req, timeout=30):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ftc_channel", description="FineTune Console machine-side channel")
    p.add_argument("--dir", required=True, help="the report folder")
    p.add_argument("--channel", choices=("http", "stdout"), default="http")
    p.add_argument("--log", help="the bootstrap log")
    sub = p.add_subparsers(dest="cmd", required=True)

    def add(name: str, fn: Any) -> argparse.ArgumentParser:
        sp = sub.add_parser(name)
        sp.set_defaults(fn=fn)
        return sp

    sp = add("serve", _cmd_serve)
    sp.add_argument("--job-id", required=True)
    sp.add_argument("--host", default=os.environ.get("FTC_REPORT_HOST", "0.0.0.0"))
    sp.add_argument("--port", type=int, default=DEFAULT_PORT)
    sp = add("emit-failure", _cmd_emit_failure)
    sp.add_argument("--message-env", required=True)
    sp.add_argument("--unless-reported", action="store_true")
    sp = add("emit-status", _cmd_emit_status)
    sp.add_argument("--status", required=True, choices=TERMINAL + ("running", "completing"))
    sp.add_argument("--reason-env")
    sp = add("emit-job", _cmd_emit_job)
    sp.add_argument("--field", required=True, choices=("artifact_path",))
    sp.add_argument("--value-env", required=True)
    sp = add("phase", _cmd_phase)
    sp.add_argument("phase")
    sp.add_argument("--finished", action="store_true")
    sp.add_argument("--exit-code", type=int)
    sp = add("want", _cmd_want)
    sp.add_argument("--name", required=True)
    sp.add_argument("--sha256", required=True)
    sp.add_argument("--size", type=int, required=True)
    add("wait-files", _cmd_wait_files).add_argument("--timeout", type=float, required=True)
    add("wait-acked", _cmd_wait_acked).add_argument("--timeout", type=float, required=True)
    sp = add("check", _cmd_check)
    sp.add_argument("--sha256", required=True)
    sp.add_argument("file")
    sp = add("fetch", _cmd_fetch)
    sp.add_argument("--url-b64", required=True)
    sp.add_argument("--auth-env")
    sp.add_argument("--out", required=True)
    add("offer-artifact", _cmd_offer_artifact).add_argument("--src", required=True)
    sp = add("upload-hf", _cmd_upload_hf)
    sp.add_argument("--src", required=True)
    sp.add_argument("--repo")
    sp.add_argument("--default-name", required=True)
    sp = add("release-lambda", _cmd_release_lambda)
    sp.add_argument("--base-url", required=True)
    sp.add_argument("--name", required=True)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())

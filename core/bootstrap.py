"""The launch payload of every remote provider: one bash script per job, plus the trainer bundle (design.md §5).

``build_bundle(dest)`` packs ``core/`` and ``trainer/`` (Python files and ``trainer/requirements.txt``) into a
deterministic ``bundle.tar.gz``: the same sources give the same bytes, so its sha256 names it.

``build_bootstrap(spec, provider=..., fetch=...)`` returns the script. On the machine it:

1. starts under ``set -euo pipefail`` with an EXIT trap that reports a failure (naming the step that failed) and
   releases the machine, and refuses to run twice (a provider that restarts a container whose process ended finds
   ``.finished`` and only retries the release);
2. writes the machine-side channel helper (``trainer/sink_http.py``, standard library only) and, for the ``http``
   channel, serves the report folder on ``channel_port``;
3. arms the deadline watchdog when ``deadline_s`` is given: at ``deadline - stop_grace_s`` it records
   ``budget_stopped`` and sends SIGTERM to the trainer (which saves a checkpoint), at the deadline it releases the
   machine whatever else is going on. The deadline counts from when the script was *built*, because billing starts
   at launch, not when the container comes up;
4. fetches the payloads named in ``fetch`` and checks their sha256; ``job.json`` is always inline;
5. installs ``trainer/requirements.txt`` (no torch pin: the provider's image brings a CUDA torch; torch is only
   installed when missing) plus ``extra_requirements``;
6. runs ``python -m trainer`` — through ``torch.distributed.run`` (torchrun) when ``gpu_count > 1`` or
   ``nodes > 1`` — with the trainer's PID kept for the watchdog and for SIGTERM forwarding;
7. on node 0 only, moves the artifact out: a private Hugging Face model repo when ``$HF_TOKEN`` is set (unless
   ``artifact="serve"/"keep"``), otherwise ``artifact_fallback``: ``"serve"`` offers it on the channel for the
   console to download, ``"keep"`` leaves it in ``output/final`` for the provider's own output (Kaggle, SkyPilot);
8. for the ``http`` channel, waits (at most ``linger_s``, never past the deadline) until the console collected every
   entry and the artifact, then runs ``release_cmd``.

Channels (``spec.sink.kind``). ``http``: the trainer and the script append to the report folder served on
``channel_port`` (``trainer/sink_http.py``), which numbers every entry itself. ``stdout``: the trainer prints
``@@FTC {json}`` lines carrying its own ``seq``; the script prints its own entries (a setup failure, the budget
deadline, the Hub artifact URI) the same way, marked ``"src": "bootstrap"`` and *without* a ``seq``, so a console
that reads the provider's log should number entries by their position in the log, not by ``seq``.

Secrets never appear in the script: it reads ``$HF_TOKEN`` and ``$FTC_REPORT_TOKEN`` (the per-job channel token)
from its environment, which each provider fills through its own secret channel (pod env, user-data env file, job
secrets). Every value interpolated into the script is either validated (ids, numbers) or base64-encoded.

Runtime knobs read by the script (for images that differ, and for the loopback tests): ``FTC_WORK`` (work folder,
default ``work_dir``), ``FTC_PYTHON`` (default ``python``), ``FTC_PIP_ARGS`` (extra pip arguments),
``FTC_SKIP_INSTALL=1``, and for several nodes ``FTC_NODE_RANK``, ``FTC_MASTER_ADDR``, ``FTC_MASTER_PORT`` (the
SkyPilot run section sets them from ``SKYPILOT_NODE_RANK`` / ``SKYPILOT_NODE_IPS``).

The ``fetch`` map: payload name -> ``FetchSource`` fields. Names: ``bundle`` (required, a tar.gz from
``build_bundle``), ``dataset`` (required, the JSONL), ``model`` (required when the config's model is a local folder;
a tar.gz from ``pack_model``, or a folder for ``path``). Sources:

- ``{"source": "inline", "local": "/console/file"}``: embedded base64 (small files only, ``INLINE_MAX`` bytes);
- ``{"source": "url", "url": "https://...", "auth_env": "HF_TOKEN"}``: downloaded, with a bearer token from that env
  var (an HF dataset repo's resolve URL, a signed storage URL);
- ``{"source": "path", "path": "/kaggle/input/x/dataset.jsonl"}``: already on the machine (Kaggle dataset, SkyPilot
  file mount); a folder is used in place, a ``.tar.gz`` is unpacked;
- ``{"source": "push", "local": "/console/file"}``: pushed by the console through the ``http`` channel
  (``PUT /v1/files/<name>``); the script waits up to ``files_timeout_s``.

``sha256`` and ``size`` are computed from ``local`` when it is given. ``default_fetch`` builds the usual map.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import re
import shlex
import tarfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from core.errors import LaunchError
from core.jobspec import JobSpec
from core.paths import PROJECT_ROOT

BUNDLE_DIRS = ("core", "trainer")
INLINE_MAX = 256 * 1024
PAYLOADS = ("bundle", "dataset", "model")
ARCHIVES = ("bundle", "model")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class FetchSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Literal["inline", "url", "path", "push"]
    local: str | None = None
    url: str | None = None
    path: str | None = None
    auth_env: str | None = None
    sha256: str | None = None
    size: int | None = None


# -- bundle -------------------------------------------------------------------------------------------------------

def bundle_files(root: Path = PROJECT_ROOT) -> list[Path]:
    files: list[Path] = []
    for top in BUNDLE_DIRS:
        files += [p for p in (root / top).rglob("*.py") if "__pycache__" not in p.parts]
    req = root / "trainer" / "requirements.txt"
    if req.is_file():
        files.append(req)
    return sorted(files)


def build_bundle(dest: str | Path, *, root: str | Path = PROJECT_ROOT) -> Path:
    """Write ``bundle.tar.gz`` (core/ and trainer/ sources) to ``dest`` (a file, or a folder to put it in).

    Deterministic: sorted entries, zeroed times and owners, a fixed gzip header, so equal sources hash equally.
    """
    root = Path(root)
    dest = Path(dest)
    out = dest / "bundle.tar.gz" if dest.is_dir() else dest
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in bundle_files(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out.write_bytes(gzip.compress(buf.getvalue(), compresslevel=9, mtime=0))
    return out


def pack_model(model_dir: str | Path, dest: str | Path) -> Path:
    """A local model folder as ``model.tar.gz`` (the demo model, or a checkpoint the user picked)."""
    out = Path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        for p in sorted(Path(model_dir).resolve().rglob("*")):
            if p.is_file():
                tar.add(p, arcname=p.relative_to(Path(model_dir).resolve()).as_posix())
    return out


def local_model_dir(spec: JobSpec) -> Path | None:
    """The config's model when it is a folder on the console (which a remote machine cannot see)."""
    name = spec.config.model.name
    p = Path(name).expanduser()
    return p if p.is_dir() and (p / "config.json").is_file() else None


def default_fetch(spec: JobSpec, bundle: str | Path, *, source: str = "push",
                  model_archive: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Bundle, dataset and (when local) model, all from console files through one source kind."""
    fetch: dict[str, dict[str, Any]] = {
        "bundle": {"source": source, "local": str(bundle)},
        "dataset": {"source": source, "local": spec.dataset_path},
    }
    if model_archive is not None:
        fetch["model"] = {"source": source, "local": str(model_archive)}
    return fetch


# -- deadline -----------------------------------------------------------------------------------------------------

def deadline_from_budget(budget_usd: float | None, price_per_hour: float | None,
                         max_hours: float | None = None) -> float | None:
    """Seconds the machine may live: what the budget buys at the price, capped by the time limit."""
    limits = []
    if budget_usd and price_per_hour and price_per_hour > 0:
        limits.append(budget_usd / price_per_hour * 3600.0)
    if max_hours:
        limits.append(max_hours * 3600.0)
    return min(limits) if limits else None


# -- the script ---------------------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _resolve(name: str, raw: dict[str, Any]) -> FetchSource:
    src = FetchSource.model_validate(raw)
    if src.local:
        p = Path(src.local)
        if not p.is_file():
            raise LaunchError(f"The {name} file {p} does not exist on this computer.")
        src.sha256 = src.sha256 or _sha256(p)
        src.size = src.size if src.size is not None else p.stat().st_size
    if src.source in ("inline", "push") and not src.local:
        raise LaunchError(f"The {name} payload needs a local file to {src.source}.")
    if src.source == "inline" and (src.size or 0) > INLINE_MAX:
        raise LaunchError(f"The {name} file is {src.size} bytes, too big to embed; push it or give a URL.")
    if src.source == "url" and not (src.url or "").startswith(("https://", "http://")):
        raise LaunchError(f"The {name} payload needs an http(s) URL.")
    if src.source == "path" and not src.path:
        raise LaunchError(f"The {name} payload needs a path on the machine.")
    if src.auth_env and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", src.auth_env):
        raise LaunchError(f"auth_env {src.auth_env!r} is not an environment variable name.")
    if src.sha256 and not re.fullmatch(r"[0-9a-f]{64}", src.sha256):
        raise LaunchError(f"The {name} sha256 is not a hex digest.")
    return src


def _fetch_lines(name: str, src: FetchSource, target: str) -> list[str]:
    """Shell lines that leave payload ``name`` at ``target`` (a file; archives are unpacked afterwards)."""
    q = shlex.quote
    lines: list[str] = []
    if src.source == "inline":
        lines.append(f"printf '%s' '{_b64(Path(src.local).read_bytes())}' | base64 -d > {q(target)}")
    elif src.source == "url":
        auth = f" --auth-env {src.auth_env}" if src.auth_env else ""
        lines.append(f"ftc fetch --url-b64 '{_b64(src.url.encode())}'{auth} --out {q(target)}")
    elif src.source == "path":
        lines.append(f"ftc_place {q(src.path)} {q(target)}")
        return lines  # a folder is used in place, so there is nothing to checksum
    else:  # push: the channel accepted it under report/files/<name>
        lines.append(f'mv "$FTC_WORK/report/files/{name}" {q(target)}')
    if src.sha256:
        lines.append(f"ftc check --sha256 {src.sha256} {q(target)}")
    return lines


def build_bootstrap(
    spec: JobSpec,
    *,
    provider: str,
    fetch: dict[str, dict[str, Any]],
    gpu_count: int = 1,
    nodes: int = 1,
    release_cmd: str | None = None,
    deadline_s: float | None = None,
    price_per_hour: float | None = None,
    work_dir: str = "/workspace/ftc",
    python: str = "python",
    install: bool = True,
    extra_requirements: list[str] | None = None,
    artifact_fallback: Literal["serve", "keep"] | None = None,
    artifact: Literal["auto", "serve", "keep"] = "auto",
    hf_repo: str | None = None,
    keep_dir: str | None = None,
    keep_uri: str | None = None,
    channel_port: int = 8765,
    channel: Literal["http", "stdout"] | None = None,
    linger_s: float = 600.0,
    stop_grace_s: float = 120.0,
    files_timeout_s: float = 1800.0,
    now: float | None = None,
) -> str:
    """The bash script for one job (see the module docstring for what it does and the ``fetch`` format).

    ``spec`` is the console's job spec; the machine gets a copy with paths relative to its work folder, the model
    replaced by ``model/`` when one is shipped, ``cost_per_hour = price_per_hour`` and ``started_epoch_s = now``
    (so the trainer's own budget guard counts from launch). ``spec.sink.kind`` picks the channel: ``http`` (served
    report folder) or ``stdout`` (``@@FTC`` lines in the provider's log); ``channel`` names it when the trainer's
    sink is ``supabase`` (team mode: the trainer reports to the team database with its job token, read from
    ``$FTC_SINK_TOKEN``, while the script's own entries, files and artifact keep to the provider's channel). ``release_cmd`` is a shell command that
    releases this machine (``None`` where the provider releases it itself); it runs at the end, on failure and at
    the deadline. ``artifact_fallback`` defaults to ``serve`` for the http channel and ``keep`` otherwise.
    ``keep_dir`` (a folder on the machine, e.g. a mounted bucket) and ``keep_uri`` (what that folder is called off the
    machine): where ``keep`` copies the model, reporting ``keep_uri`` as the artifact; without them it stays in
    ``output/final`` for the provider's own output.
    """
    now = time.time() if now is None else now
    channel = channel or spec.sink.kind
    if channel not in ("http", "stdout"):
        raise LaunchError(f"A remote machine reports through 'http' or 'stdout', not {channel!r}.")
    if spec.sink.kind not in (channel, "supabase"):
        raise LaunchError(f"The trainer's sink '{spec.sink.kind}' does not go with the machine's '{channel}' channel.")
    if not _SAFE_ID.match(spec.job_id) or not _SAFE_ID.match(provider):
        raise LaunchError("Job ids and provider names may only hold letters, digits, '.', '_' and '-'.")
    if gpu_count < 1 or nodes < 1:
        raise LaunchError("gpu_count and nodes must be at least 1.")
    if (keep_dir is None) != (keep_uri is None):
        raise LaunchError("keep_dir and keep_uri go together.")
    if keep_dir is not None and not re.fullmatch(r"(~/|\$HOME/|/)[A-Za-z0-9_./-]+", keep_dir):
        raise LaunchError(f"{keep_dir!r} is not a plain folder path.")
    if hf_repo is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", hf_repo):
        raise LaunchError(f"'{hf_repo}' is not a Hugging Face repo id (owner/name).")
    missing = [n for n in ("bundle", "dataset") if n not in fetch]
    if local_model_dir(spec) and "model" not in fetch:
        missing.append("model")
    unknown = sorted(set(fetch) - set(PAYLOADS))
    if missing or unknown:
        raise LaunchError(f"Bootstrap payloads: missing {missing or 'none'}, unknown {unknown or 'none'}.")
    sources = {name: _resolve(name, raw) for name, raw in fetch.items()}
    if channel != "http" and any(s.source == "push" for s in sources.values()):
        raise LaunchError("Files can only be pushed to a machine that serves the http channel.")
    fallback = artifact_fallback or ("serve" if channel == "http" else "keep")
    if fallback == "serve" and channel != "http":
        raise LaunchError("Only a machine that serves the http channel can offer its artifact for download.")

    remote = _remote_spec(spec, sources, price_per_hour, now, deadline_s, stop_grace_s)
    deadline = int(now + deadline_s) if deadline_s else None
    stop_at = max(int(now), deadline - int(stop_grace_s)) if deadline else None
    q = shlex.quote
    channel_src = (PROJECT_ROOT / "trainer" / "sink_http.py").read_bytes()
    reqs = " ".join(q(r) for r in (extra_requirements or []))
    dist = gpu_count > 1 or nodes > 1

    out: list[str] = [
        "#!/usr/bin/env bash",
        f"# FineTune Console bootstrap: job {spec.job_id} on {provider}. Generated; every value is checked or base64.",
        "set -euo pipefail",
        "umask 077",
        f"FTC_JOB_ID={q(spec.job_id)}",
        f'FTC_WORK="${{FTC_WORK:-{work_dir}}}"',
        f'FTC_PY="${{FTC_PYTHON:-{python}}}"',
        f"FTC_CHANNEL={channel}",
        f"FTC_DEADLINE={deadline or ''}",
        f"FTC_STOP_AT={stop_at or ''}",
        f"FTC_LINGER={int(linger_s)}",
        'FTC_NODE_RANK="${FTC_NODE_RANK:-0}"',
        'FTC_STEP="starting"',
        "FTC_SERVER_PID=''",
        "FTC_WATCHDOG_PID=''",
        "FTC_TRAINER_PID=''",
        'export FTC_REPORT_DIR="$FTC_WORK/report" FTC_REPORT_SERVED=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false',
        "export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_DISABLE_TELEMETRY=1",
        'mkdir -p "$FTC_WORK/report/files" "$FTC_WORK/data" "$FTC_WORK/output"',
        'cd "$FTC_WORK"',
        'exec > >(tee -a "$FTC_WORK/bootstrap.log") 2>&1',
        "",
        "ftc() {",
        '  "$FTC_PY" "$FTC_WORK/ftc_channel.py" --dir "$FTC_WORK/report" --channel "$FTC_CHANNEL" \\',
        '    --log "$FTC_WORK/bootstrap.log" "$@"',
        "}",
        "ftc_release() {",
        "  set +e",
    ]
    if release_cmd:
        out += [
            '  echo "[ftc] releasing this machine"',
            f"  {release_cmd}",
            '  [ $? -eq 0 ] || echo "[ftc] could not release this machine; the console will terminate it"',
        ]
    else:
        out.append("  :  # the provider releases this machine when the job ends")
    out += [
        "}",
        "ftc_remaining() {  # seconds left before the deadline, at most $1",
        '  if [ -z "$FTC_DEADLINE" ]; then echo "$1"; return; fi',
        "  local left=$(( FTC_DEADLINE - $(date +%s) ))",
        '  [ "$left" -lt 0 ] && left=0',
        '  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"',
        "}",
        "ftc_place() {  # a file or folder already on the machine; a .tar.gz stays packed for the unpack step",
        '  if [ -d "$1" ]; then rm -rf "$2"; ln -s "$1" "$2"; else cp "$1" "$2"; fi',
        "}",
        "ftc_on_exit() {",
        "  local rc=$?",
        "  set +e",
        "  trap - EXIT",
        '  [ -n "$FTC_WATCHDOG_PID" ] && kill "$FTC_WATCHDOG_PID" 2>/dev/null',
        '  if [ "$FTC_NODE_RANK" = 0 ] && [ -f "$FTC_WORK/ftc_channel.py" ]; then',
        '    if [ "$rc" -ne 0 ]; then',
        '      FTC_MSG="The machine failed while $FTC_STEP (exit status $rc); see the log tail." \\',
        "        ftc emit-failure --message-env FTC_MSG --unless-reported",
        "    fi",
        '    ftc phase finished --finished --exit-code "$rc"',
        '    touch "$FTC_WORK/.finished"',
        '    if [ "$FTC_CHANNEL" = http ]; then ftc wait-acked --timeout "$(ftc_remaining "$FTC_LINGER")"; fi',
        "  fi",
        "  ftc_release",
        '  [ -n "$FTC_SERVER_PID" ] && kill "$FTC_SERVER_PID" 2>/dev/null',
        '  exit "$rc"',
        "}",
        "ftc_on_term() {  # the provider is stopping us: let the trainer save a checkpoint first",
        "  set +e",
        '  if [ -n "$FTC_TRAINER_PID" ]; then kill -TERM "$FTC_TRAINER_PID" 2>/dev/null; wait "$FTC_TRAINER_PID"; fi',
        "  exit 143",
        "}",
        "trap ftc_on_exit EXIT",
        "trap ftc_on_term TERM INT HUP",
        "",
        "# A provider may restart a container whose process ended: never train twice, only release again.",
        'if [ -f "$FTC_WORK/.finished" ]; then',
        '  echo "[ftc] job $FTC_JOB_ID already ran on this machine; releasing it"',
        "  trap - EXIT",
        "  ftc_release",
        "  sleep infinity",
        "fi",
        "",
        'FTC_STEP="writing the job files"',
        f"printf '%s' '{_b64(channel_src)}' | base64 -d > \"$FTC_WORK/ftc_channel.py\"",
        f"printf '%s' '{_b64(remote.model_dump_json(indent=2).encode())}' | base64 -d > \"$FTC_WORK/job.json\"",
        'ftc phase starting',
    ]
    if channel == "http":
        out += [
            'if [ "$FTC_NODE_RANK" = 0 ]; then',
            '  [ -n "${FTC_REPORT_TOKEN:-}" ] || { echo "[ftc] FTC_REPORT_TOKEN is not set"; exit 2; }',
            f'  "$FTC_PY" "$FTC_WORK/ftc_channel.py" --dir "$FTC_WORK/report" --log "$FTC_WORK/bootstrap.log" \\',
            f"    serve --job-id {q(spec.job_id)} --port {int(channel_port)} &",
            "  FTC_SERVER_PID=$!",
            "fi",
        ]
    if deadline:
        out += [
            "",
            "ftc_watchdog() {",
            "  set +e",
            "  local now nap=''",
            "  trap '[ -n \"$nap\" ] && kill \"$nap\" 2>/dev/null; exit 0' TERM",
            "  now=$(date +%s)",
            '  if [ "$FTC_STOP_AT" -gt "$now" ]; then sleep $(( FTC_STOP_AT - now )) & nap=$!; wait "$nap"; fi',
            '  touch "$FTC_WORK/.deadline"',
            '  FTC_MSG="The machine reached the end of its budget; the trainer was stopped and the machine released." \\',
            "    ftc emit-status --status budget_stopped --reason-env FTC_MSG",
            '  [ -f "$FTC_WORK/trainer.pid" ] && kill -TERM "$(cat "$FTC_WORK/trainer.pid")" 2>/dev/null',
            "  now=$(date +%s)",
            '  if [ "$FTC_DEADLINE" -gt "$now" ]; then sleep $(( FTC_DEADLINE - now )) & nap=$!; wait "$nap"; fi',
            '  echo "[ftc] budget deadline reached"',
            "  ftc_release",
            '  [ -f "$FTC_WORK/trainer.pid" ] && kill -KILL "$(cat "$FTC_WORK/trainer.pid")" 2>/dev/null',
            "}",
            "ftc_watchdog &",
            "FTC_WATCHDOG_PID=$!",
        ]
    out += ["", 'FTC_STEP="fetching the trainer, the dataset and the model"']
    pushes = [(n, s) for n, s in sources.items() if s.source == "push"]
    for name, src in pushes:
        out.append(f"ftc want --name {name} --sha256 {src.sha256} --size {int(src.size or 0)}")
    if pushes:
        out.append(f"ftc wait-files --timeout {int(files_timeout_s)}")
    targets = {"bundle": "bundle.tar.gz", "dataset": "data/dataset.jsonl", "model": "model.tar.gz"}
    for name, src in sources.items():
        out += _fetch_lines(name, src, targets[name])
    out += [
        'rm -rf bundle && mkdir bundle && tar -xzf bundle.tar.gz -C bundle',
    ]
    if "model" in sources:
        out += [
            'if [ -d model.tar.gz ] || [ -L model.tar.gz ]; then mv model.tar.gz model;',
            'else rm -rf model && mkdir model && tar -xzf model.tar.gz -C model; fi',
        ]
    out += [
        "",
        'FTC_STEP="installing the trainer\'s requirements"',
        "ftc phase installing",
        f'if [ "${{FTC_SKIP_INSTALL:-{0 if install else 1}}}" != 1 ]; then',
        '  "$FTC_PY" -c "import torch" 2>/dev/null || "$FTC_PY" -m pip install -q ${FTC_PIP_ARGS:-} torch',
        '  "$FTC_PY" -m pip install -q ${FTC_PIP_ARGS:-} -r bundle/trainer/requirements.txt' + (f" {reqs}" if reqs else ""),
        "fi",
    ]
    launcher = '"$FTC_PY" -m trainer'
    if dist:
        launcher = (f'"$FTC_PY" -m torch.distributed.run --nnodes {nodes} --nproc_per_node {gpu_count} '
                    '--node_rank "$FTC_NODE_RANK" --master_addr "${FTC_MASTER_ADDR:-127.0.0.1}" '
                    '--master_port "${FTC_MASTER_PORT:-29500}" -m trainer')
    out += [
        "",
        'FTC_STEP="training"',
        "ftc phase training",
        'export PYTHONPATH="$FTC_WORK/bundle${PYTHONPATH:+:$PYTHONPATH}"',
        'FTC_RESUME=""',
        '[ -d output/checkpoints ] && FTC_RESUME="--resume"',
        f'{launcher} --config "$FTC_WORK/job.json" $FTC_RESUME &',
        "FTC_TRAINER_PID=$!",
        'echo "$FTC_TRAINER_PID" > "$FTC_WORK/trainer.pid"',
        '# Past the stop time already (a slow install): the watchdog may have looked before this PID existed.',
        '[ -f "$FTC_WORK/.deadline" ] && kill -TERM "$FTC_TRAINER_PID" 2>/dev/null',
        "set +e",
        'wait "$FTC_TRAINER_PID"',
        "FTC_RC=$?",
        "set -e",
        "FTC_TRAINER_PID=''",
        'rm -f "$FTC_WORK/trainer.pid"',
        'echo "[ftc] the trainer exited with status $FTC_RC"',
        '[ "$FTC_RC" -eq 0 ] || exit "$FTC_RC"',
        "",
        'if [ "$FTC_NODE_RANK" = 0 ] && [ -d output/final ]; then',
        '  FTC_STEP="moving the trained model off the machine"',
        "  ftc phase uploading",
    ]
    if fallback == "serve":
        serve_or_keep = '    ftc offer-artifact --src output/final'
    elif keep_dir:
        # keep_dir is a shell word the provider built (it may start with ~ or $HOME); keep_uri travels quoted.
        serve_or_keep = "\n".join([
            f'    mkdir -p {keep_dir} && cp -R output/final/. {keep_dir}/',
            f"    export FTC_KEPT_URI={q(keep_uri)}",
            '    echo "[ftc] the model was copied to $FTC_KEPT_URI"',
            "    ftc emit-job --field artifact_path --value-env FTC_KEPT_URI",
        ])
    else:
        serve_or_keep = '    echo "[ftc] the model stays in $FTC_WORK/output/final for the provider\'s output"'
    hf_line = (f"    ftc upload-hf --src output/final --default-name {q('ftc-' + spec.job_id)}"
               + (f" --repo {q(hf_repo)}" if hf_repo else ""))
    if artifact == "auto":
        out += ['  if [ -n "${HF_TOKEN:-}" ]; then', hf_line, "  else", serve_or_keep, "  fi"]
    else:
        out.append(serve_or_keep if artifact in ("serve", "keep") else hf_line)
    out += ["fi", 'FTC_STEP="finishing"', "exit 0", ""]
    return "\n".join(out)


def _remote_spec(spec: JobSpec, sources: dict[str, FetchSource], price_per_hour: float | None, now: float,
                 deadline_s: float | None, stop_grace_s: float) -> JobSpec:
    cfg = spec.config.model_copy(deep=True)
    if "model" in sources:
        cfg.model.name = "model"
    dataset = "data/dataset.jsonl"
    cfg.data.train_path = dataset
    sink = spec.sink.model_copy(update={"path": None, "token": None})
    price = price_per_hour if price_per_hour is not None else spec.cost_per_hour
    budget, max_hours = spec.budget_usd, spec.max_hours
    if deadline_s:
        # The trainer's own guard should stop first (saving its checkpoint and reporting budget_stopped with its
        # final numbers); the watchdog is only the backstop for a trainer that hangs.
        guard_s = max(1.0, deadline_s - stop_grace_s - min(30.0, 0.1 * deadline_s))
        if price and price > 0:
            budget = min(budget or float("inf"), price * guard_s / 3600.0)
        max_hours = min(max_hours or float("inf"), guard_s / 3600.0)
    return spec.model_copy(update={
        "config": cfg, "dataset_path": dataset, "output_dir": "output", "spool_path": "output/spool.jsonl",
        "sink": sink, "cost_per_hour": price, "started_epoch_s": now, "budget_usd": budget, "max_hours": max_hours,
    })


def encode_for_env(script: str) -> str:
    """gzip + base64: how a script travels in one environment variable (no quote or newline survives otherwise)."""
    return _b64(gzip.compress(script.encode(), mtime=0))


def env_start_command(var: str = "FTC_BOOTSTRAP", work_dir: str = "/workspace/ftc") -> str:
    """A container start command that decodes the script from ``$var`` and runs it.

    Free of double quotes and backslashes, because RunPod's SDK pastes it into a GraphQL string unescaped.
    """
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", var):
        raise LaunchError(f"{var!r} is not an environment variable name.")
    w = f"${{FTC_WORK:-{work_dir}}}"
    return (f"bash -c 'mkdir -p {w} && printf %s ${var} | base64 -d | gunzip > {w}/bootstrap.sh "
            f"&& exec bash {w}/bootstrap.sh'")

"""The console's side of the ``stdout`` report channel: rows read back from a provider's log stream.

Providers that stream a job's output but expose no port (Hugging Face Jobs and Spaces, Kaggle kernels, SkyPilot)
run the trainer with ``trainer.report.StdoutSink``, which prints one ``@@FTC {json}`` line per entry; the bootstrap
script prints its own entries (a setup failure, the budget stop, the Hub artifact) the same way, marked
``"src": "bootstrap"`` and without a ``seq``. A provider implements ``log_text(ref)`` (the whole log as text) and
this mixin gives it ``pull_entries`` and a ``logs`` free of the structured lines.

Entries are numbered by their position among the ``@@FTC`` lines of the log, not by the trainer's ``seq``: the
bootstrap's lines carry none, and a resumed trainer may print a seq twice. The log only grows, so a position names
the same line on every read; ``JobService._ingest_remote`` keeps the highest position applied as its cursor and the
store's upserts make a repeat harmless. What a log stream does to lines is tolerated: other output interleaved on the
same line (a timestamp or a stderr fragment before the prefix), carriage returns, and a torn last line (the log was
read mid-write), which is neither counted nor applied until it is complete. Heartbeats (no seq, latest wins) are
not counted; the newest one after the cursor is applied first, so a final status later in the batch wins over its
older progress figures, as in the http channel.

``prepare_log_payload`` is the launch side: the bootstrap for the stdout channel, with the job's files staged
wherever the provider's machine can fetch them (Hub repo URLs, a mounted Kaggle dataset, SkyPilot file mounts).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.errors import ProviderError

log = logging.getLogger("finetune_console.log_channel")

PREFIX = "@@FTC "
_DECODER = json.JSONDecoder()


@dataclass
class ParsedLog:
    entries: list[dict[str, Any]] = field(default_factory=list)  # seq = position (1-based) among counted lines
    heartbeat: dict[str, Any] | None = None  # the newest heartbeat's payload
    heartbeat_after: int = 0  # how many entries preceded the newest heartbeat
    skipped: int = 0  # complete lines that were not valid entries
    other: list[str] = field(default_factory=list)  # the log without the structured lines


def parse_log(text: str) -> ParsedLog:
    out = ParsedLog()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    torn = lines.pop() if lines else ""  # text after the last newline: possibly still being written
    for i, line in enumerate(lines + ([torn] if torn else [])):
        at = line.find(PREFIX)
        if at < 0:
            out.other.append(line)
            continue
        if at > 0 and line[:at].strip():
            out.other.append(line[:at])
        try:
            obj, _ = _DECODER.raw_decode(line, at + len(PREFIX))
        except ValueError:
            if i < len(lines):  # a complete line that is not JSON: counted nowhere, so positions stay stable
                out.skipped += 1
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
            out.skipped += 1
            continue
        if obj["kind"] == "heartbeat":
            out.heartbeat, out.heartbeat_after = obj.get("payload") or {}, len(out.entries)
            continue
        out.entries.append({**obj, "seq": len(out.entries) + 1})
    return out


def entries_after(parsed: ParsedLog, after_seq: int) -> list[dict[str, Any]]:
    """New entries for ``apply_entries``: the newest heartbeat past the cursor first, then the rows past it."""
    rows = [e for e in parsed.entries if e["seq"] > after_seq]
    if parsed.heartbeat is not None and parsed.heartbeat_after >= after_seq:
        # Numbered like the cursor so it never moves the cursor by itself.
        rows.insert(0, {"seq": after_seq, "kind": "heartbeat", "payload": parsed.heartbeat})
    return rows


def tail_lines(text: str, tail: int) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[-tail:]) if tail > 0 else ""


class LogChannelProvider:
    """Mixin for providers whose report channel is the job's log (``report_channel = "stdout"``)."""

    report_channel = "stdout"

    def log_text(self, ref: str) -> str:
        """The job's whole log as text, oldest first ("" when there is none yet)."""
        raise NotImplementedError

    def artifact_uri(self, ref: str, reported: str) -> str:
        """Where a person finds an artifact the machine kept in its own output (``reported``: its path there)."""
        return reported

    def pull_entries(self, ref: str, after_seq: int) -> list[dict[str, Any]]:
        parsed = parse_log(self.log_text(ref))
        if parsed.skipped:
            log.warning("%d malformed @@FTC line(s) in the log of %s were skipped", parsed.skipped, ref)
        return [self._located(ref, e) for e in entries_after(parsed, after_seq)]

    def _located(self, ref: str, entry: dict[str, Any]) -> dict[str, Any]:
        # The trainer reports the folder it wrote (relative to its work dir), which means nothing on this computer;
        # a Hub upload (hf://) already names where the model is.
        payload = entry.get("payload")
        if not isinstance(payload, dict):
            return entry
        holder = payload if entry.get("kind") == "job" else payload.get("fields")
        path = holder.get("artifact_path") if isinstance(holder, dict) else None
        if isinstance(path, str) and path and not path.startswith("hf://"):
            holder["artifact_path"] = self.artifact_uri(ref, path)
        return entry

    def logs(self, ref: str, tail: int = 200) -> str:
        """The log a person reads: without the structured lines, which the console shows as charts and rows. A log
        the provider cannot hand over right now is said in its place (the page shows it; the poller retries)."""
        try:
            text = self.log_text(ref)
        except ProviderError as exc:
            return f"(the log is not reachable: {exc})"
        return tail_lines("\n".join(parse_log(text).other), tail)


# -- launching a log-channel machine --------------------------------------------------------------------------------

def prepare_log_payload(req: Any, *, provider: str, price_per_hour: float | None, work_dir: str,
                        stage: Callable[[dict[str, Path]], dict[str, dict[str, Any]]], release_cmd: str | None = None,
                        python: str = "python3", **bootstrap_kw: Any) -> Any:
    """Bundle, files staged where the machine can fetch them, deadline and script, for a ``stdout``-channel job.

    ``stage`` gets the files the machine needs (``bundle``, ``dataset`` and, for a local model, ``model``) and
    returns the bootstrap's fetch map for them (a private Hub dataset's URLs, a Kaggle dataset's mount paths...).
    Records ``remote.json`` like the http providers do, so ``job_for_ref`` and ``estimated_cost`` work the same.
    """
    from core.errors import LaunchError
    from core.jobspec import JobSpec
    from core.providers.http_channel import save_remote
    from core.providers.remote import build_payload, payload_files

    spec = JobSpec.read(req.spec_path)
    if spec.sink.kind not in ("stdout", "supabase"):
        raise LaunchError(f"{provider} machines report through their log (the stdout channel), but the job asks "
                          f"for '{spec.sink.kind}'.")
    fetch = stage(payload_files(req, spec))
    payload = build_payload(req, spec, fetch, provider=provider, price_per_hour=price_per_hour, work_dir=work_dir,
                            release_cmd=release_cmd, python=python, channel="stdout", **bootstrap_kw)
    save_remote(req.job_id, provider=provider, price_per_hour=price_per_hour, deadline_epoch=payload.deadline_epoch,
                ref=None, launched_at=None, ended_at=None)
    return payload

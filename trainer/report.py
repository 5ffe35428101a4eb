"""Reporting that never blocks training and never loses a row (design.md §4).

Every row is appended to a local spool file first (``spool.jsonl``, one JSON entry a line with a sequence
number). A background thread sends pending entries to the sink in batches, with bounded exponential backoff
and jitter while the sink is down; the highest sequence number the sink acknowledged is kept in
``spool.offset``. Training never waits on the network: the only work on the training thread is one buffered
file append. On restart (``--resume``) or from the console after a crash, unacknowledged entries are replayed;
sink writes are idempotent upserts, so a replay never duplicates rows.

Heartbeats and the cancel flag are not spooled: the flusher sends the latest heartbeat and polls the cancel
flag on its own schedule, so the training thread only reads a cached boolean.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("finetune_console.report")


class SinkUnavailable(Exception):
    """The sink cannot be reached right now; the entry stays pending."""


class Sink(Protocol):
    def write(self, entries: list[dict[str, Any]]) -> None: ...
    def heartbeat(self, fields: dict[str, Any]) -> None: ...
    def cancel_requested(self) -> bool | None: ...
    def close(self) -> None: ...


# -- sinks ----------------------------------------------------------------------------------------------------

class StoreSink:
    """Writes into a Store (the console's SQLite file for local jobs, or any Store implementation)."""

    def __init__(self, store: Any, job_id: str) -> None:
        self.store = store
        self.job_id = job_id

    def _guard(self) -> None:
        """Hook for engines that can vanish under us."""

    def write(self, entries: list[dict[str, Any]]) -> None:
        self._guard()
        try:
            apply_entries(self.store, self.job_id, entries)
        except Exception as exc:  # sqlite3.OperationalError ("database is locked"), psycopg errors, ...
            # An outage is retried forever; anything else (a row the store refuses) is the reporter's to set aside.
            if isinstance(exc, OSError) or _looks_transient(exc):
                raise SinkUnavailable(str(exc)) from exc
            raise

    def heartbeat(self, fields: dict[str, Any]) -> None:
        self._guard()
        try:
            self.store.update_job(self.job_id, **fields)
        except Exception as exc:  # noqa: BLE001 - a missed heartbeat is retried with the next one
            raise SinkUnavailable(str(exc)) from exc

    def cancel_requested(self) -> bool | None:
        self._guard()
        try:
            return bool(self.store.get_job(self.job_id).cancel_requested)
        except Exception:  # noqa: BLE001 - unknown this time; ask again later
            return None

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close:
            close()


class SQLiteSink(StoreSink):
    """The console's SQLite file. A short busy timeout makes a locked database look like a down sink."""

    def __init__(self, path: str, job_id: str, busy_timeout_s: float = 2.0) -> None:
        from core.store.sqlite import SQLiteStore

        self.path = Path(path)
        if not self.path.exists():
            raise SinkUnavailable(f"database file {self.path} does not exist")
        self._inode = self.path.stat().st_ino
        super().__init__(SQLiteStore(self.path, busy_timeout_s=busy_timeout_s), job_id)

    def _guard(self) -> None:
        # A removed or replaced file would swallow writes into an unlinked inode: treat it as the sink being down.
        try:
            ino = self.path.stat().st_ino
        except OSError as exc:
            raise SinkUnavailable(f"database file {self.path} is gone") from exc
        if ino != self._inode:
            self.store.close()
            from core.store.sqlite import SQLiteStore

            self.store = SQLiteStore(self.path, busy_timeout_s=self.store.busy_timeout_s)
            self._inode = ino


class StdoutSink:
    """Structured log lines (``@@FTC {json}``) that the console pulls from the provider's log stream."""

    PREFIX = "@@FTC "

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def _emit(self, obj: dict[str, Any]) -> None:
        with self.lock:
            self.stream.write(self.PREFIX + json.dumps(obj, default=str, separators=(",", ":")) + "\n")
            self.stream.flush()

    def write(self, entries: list[dict[str, Any]]) -> None:
        for e in entries:
            self._emit(e)

    def heartbeat(self, fields: dict[str, Any]) -> None:
        self._emit({"kind": "heartbeat", "payload": fields})

    def cancel_requested(self) -> bool | None:
        return None

    def close(self) -> None:
        pass


class NullSink:
    def write(self, entries: list[dict[str, Any]]) -> None:
        pass

    def heartbeat(self, fields: dict[str, Any]) -> None:
        pass

    def cancel_requested(self) -> bool | None:
        return None

    def close(self) -> None:
        pass


def _looks_transient(exc: Exception) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return any(k in text for k in ("locked", "busy", "unable to open", "cannot open", "disk i/o", "connection",
                                   "timeout",
                                   "operationalerror", "readonly", "not exist"))


# The job fields a training machine may set, as the team database's private.apply_job_fields allows them: status
# goes through the lifecycle's transitions, and ownership, provider, cancel and billing fields stay the console's.
MACHINE_JOB_FIELDS = frozenset({
    "artifact_path", "current_step", "dataset_size", "epoch", "error_message", "estimate", "final_loss", "progress",
    "reason", "total_cost_usd", "total_steps", "heartbeat_at",
})


def _machine_fields(fields: dict[str, Any]) -> dict[str, Any]:
    dropped = set(fields) - MACHINE_JOB_FIELDS
    if dropped:
        log.warning("ignored job fields a machine may not set: %s", ", ".join(sorted(dropped)))
    return {k: v for k, v in fields.items() if k in MACHINE_JOB_FIELDS}


def apply_entries(store: Any, job_id: str, entries: list[dict[str, Any]]) -> None:
    """Apply spooled entries to a store, idempotently. Also used by the console to ingest pulled rows.

    Rows go in one upsert per table and consecutive job updates in one update (the newest value of each field
    wins), so a batch costs a few statements however many steps it carries; status changes and errors keep their
    place in the order.
    """
    metrics: list[dict[str, Any]] = []
    preds: list[dict[str, Any]] = []
    job: dict[str, Any] = {}

    def flush_pending() -> None:
        if metrics:
            store.upsert_metrics(job_id, metrics)
            metrics.clear()
        if preds:
            store.upsert_predictions(job_id, preds)
            preds.clear()
        if job:
            store.update_job(job_id, **_merged_estimate(store, job_id, job))
            job.clear()

    for e in entries:
        kind, payload = e["kind"], e.get("payload") or {}
        if kind == "metrics":
            metrics.extend(payload["rows"])
        elif kind == "predictions":
            preds.extend(payload["rows"])
        elif kind in ("job", "heartbeat"):
            payload = _machine_fields(payload)
            if "estimate" in payload and "estimate" in job:
                payload = {**payload, "estimate": {**job["estimate"], **(payload["estimate"] or {})}}
            job.update(payload)
        else:
            flush_pending()  # rows and fields land before the state change that follows them
            if kind == "status":
                store.transition_job(job_id, payload["status"], **_machine_fields(dict(payload.get("fields") or {})))
            elif kind == "error":
                known = {(x.error_type, x.error_message) for x in store.get_errors(job_id)}
                if (payload["error_type"], payload["message"]) not in known:
                    store.add_error(job_id, payload["error_type"], payload["message"], payload.get("traceback"),
                                    payload.get("hint"))
    flush_pending()


def _merged_estimate(store: Any, job_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The trainer's ETA and prediction time join the console's estimate (cost, VRAM) instead of replacing it."""
    if "estimate" not in fields:
        return fields
    current = store.get_job(job_id).estimate or {}
    return {**fields, "estimate": {**current, **(fields["estimate"] or {})}}


# -- the reporter -----------------------------------------------------------------------------------------------

class Reporter:
    """Spool + background flusher. Thread-safe; one per job, on rank 0 only.

    An entry the sink keeps rejecting for a reason that is not an outage (a row it cannot store) would block
    every entry behind it forever; after ``poison_after`` such failures of that entry alone it is set aside in
    ``<spool>.rejected.jsonl`` and counted in ``rejected``, and the rest flows on.
    """

    def __init__(
        self, sink: Sink, job_id: str, spool_path: str | Path, *, batch_max: int = 500, backoff_base_s: float = 0.25,
        backoff_max_s: float = 15.0, cancel_poll_s: float = 2.0, heartbeat_interval_s: float = 5.0,
        idle_wait_s: float = 0.5, poison_after: int = 3, linger_s: float = 1.0,
    ) -> None:
        self.sink = sink
        self.job_id = job_id
        self.spool_path = Path(spool_path)
        self.offset_path = self.spool_path.with_suffix(".offset")
        self.rejected_path = self.spool_path.with_suffix(".rejected.jsonl")
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        self.batch_max = batch_max
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.cancel_poll_s = cancel_poll_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.idle_wait_s = idle_wait_s
        self.poison_after = poison_after
        self.linger_s = linger_s
        self._draining = 0  # flush() callers waiting: no lingering while someone waits

        self._cv = threading.Condition()
        self._wake = threading.Event()  # cuts a backoff short: set by flush and close, not by new rows
        self._pending: list[dict[str, Any]] = []
        self._acked = self._read_offset()
        self._seq = self._acked
        self._stop = False
        self._failures = 0
        self._down = False  # an outage is logged once when it starts and once when it ends
        self._entry_failures = 0  # consecutive non-outage failures of a single-entry batch
        self._cancel = False
        self._last_cancel_poll = 0.0
        self._heartbeat: dict[str, Any] | None = None
        self._last_heartbeat_sent = 0.0
        self.sink_errors = 0
        self.last_sink_error: str | None = None
        self.rejected = 0
        self.sent = 0
        self._replay_spool()
        self._spool = self.spool_path.open("a", encoding="utf-8")
        if self._spool.tell() and not _ends_with_newline(self.spool_path):
            self._spool.write("\n")  # a killed writer left a torn line: start the next entry on its own line
        self._thread = threading.Thread(target=self._run, name="ftc-reporter", daemon=True)
        self._thread.start()

    # -- public API (training thread) -----------------------------------------------------------------------
    def metrics(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._enqueue("metrics", {"rows": rows})

    def predictions(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._enqueue("predictions", {"rows": rows})

    def job(self, **fields: Any) -> None:
        self._enqueue("job", fields)

    def status(self, status: str, **fields: Any) -> None:
        self._enqueue("status", {"status": status, "fields": fields})

    def error(self, error_type: str, message: str, traceback: str | None = None, hint: str | None = None) -> None:
        self._enqueue("error", {"error_type": error_type, "message": message, "traceback": traceback, "hint": hint})

    def heartbeat(self, **fields: Any) -> None:
        with self._cv:
            self._heartbeat = {**(self._heartbeat or {}), **fields}

    def cancel_requested(self) -> bool:
        return self._cancel

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every spooled entry reached the sink; False on timeout (entries stay spooled)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._wake.set()
        with self._cv:
            self._draining += 1
            self._cv.notify_all()
            try:
                while self._pending:
                    if not self._thread.is_alive():
                        return False
                    if getattr(self.sink, "refused", None):  # the sink will never take these: they stay spooled
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cv.wait(timeout=min(0.2, remaining) if remaining else 0.2)
            finally:
                self._draining -= 1
        return True

    def finish(self, status: str | None = None, timeout: float = 600.0, **fields: Any) -> bool:
        """Flush everything, then write the final status (so it lands after every row), then stop.

        ``timeout`` bounds the whole wait; what is still unsent then stays in the spool, which the console
        replays when the process has gone.
        """
        deadline = time.monotonic() + timeout
        ok = self.flush(timeout)
        if status is not None:
            self.status(status, **fields)
            ok = self.flush(max(0.0, deadline - time.monotonic())) and ok
        self.close()
        return ok

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._wake.set()
        self._thread.join(timeout=30)
        with self._cv:
            self._spool.close()
        self.sink.close()

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._pending)

    # -- internals ------------------------------------------------------------------------------------------
    def _enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        with self._cv:
            self._seq += 1
            entry = {"seq": self._seq, "kind": kind, "payload": payload, "ts": time.time()}
            self._spool.write(json.dumps(entry, default=str, separators=(",", ":")) + "\n")
            self._spool.flush()
            self._pending.append(entry)
            self._cv.notify_all()

    def _read_offset(self) -> int:
        try:
            return int(self.offset_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _write_offset(self, seq: int) -> None:
        tmp = self.offset_path.with_suffix(".offset.tmp")
        tmp.write_text(str(seq))
        os.replace(tmp, self.offset_path)

    def _replay_spool(self) -> None:
        for entry in read_spool(self.spool_path, after=self._acked):
            self._pending.append(entry)
            self._seq = max(self._seq, entry["seq"])

    def _run(self) -> None:
        while True:
            try:
                if self._step():
                    return
            except Exception as exc:  # noqa: BLE001 - the flusher must outlive any one bad moment
                self._note_failure(exc)
                self._sleep_backoff()

    def _step(self) -> bool:
        """One round of the flusher; True when it should exit."""
        with self._cv:
            if not self._pending and not self._stop:
                self._cv.wait(timeout=self.idle_wait_s)
            # Linger a moment so one transaction carries several steps' rows instead of one each.
            while self._pending and not (self._stop or self._draining) and len(self._pending) < self.batch_max:
                left = self.linger_s - (time.time() - self._pending[0]["ts"])
                if left <= 0:
                    break
                self._cv.wait(timeout=left)
            batch = list(self._pending[: 1 if self._entry_failures else self.batch_max])
            stopping = self._stop
        self._poll_side_channels()
        if not batch:
            return stopping
        try:
            self.sink.write(batch)
        except SinkUnavailable as exc:
            self._note_failure(exc)
            if not self._down:
                self._down = True
                print(f"[trainer] the store is unreachable ({self.last_sink_error}); training goes on and rows wait "
                      f"in {self.spool_path.name}", file=sys.stderr, flush=True)
            if stopping and self._failures > 3:
                return True  # closing while the sink is down: entries stay in the spool for a later replay
            self._sleep_backoff()
            return False
        except Exception as exc:  # noqa: BLE001 - a row the sink refuses: narrow it down, then set it aside
            self._note_failure(exc)
            if len(batch) == 1:
                self._entry_failures += 1
                if self._entry_failures >= self.poison_after:
                    self._reject(batch[0], exc)
                    self._ack(batch)
                    return False
            else:
                self._entry_failures = 1  # retry one entry at a time until the bad one is found
            self._sleep_backoff()
            return False
        self._failures = 0
        self._entry_failures = 0
        self._ack(batch)
        if self._down:
            self._down = False
            print(f"[trainer] the store is back; {len(batch)} spooled entries delivered", file=sys.stderr, flush=True)
        return False

    def _ack(self, batch: list[dict[str, Any]]) -> None:
        with self._cv:
            del self._pending[: len(batch)]
            self._acked = batch[-1]["seq"]
            self.sent += len(batch)
            self._cv.notify_all()
        self._write_offset(self._acked)

    def _reject(self, entry: dict[str, Any], exc: Exception) -> None:
        self.rejected += 1
        self._entry_failures = 0
        record = {**entry, "error": f"{type(exc).__name__}: {exc}"}
        with self.rejected_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        print(f"[trainer] the store refused a {entry['kind']} entry (kept in {self.rejected_path.name}): "
              f"{record['error']}", file=sys.stderr, flush=True)

    def _poll_side_channels(self) -> None:
        now = time.monotonic()
        hb = None
        with self._cv:
            if self._heartbeat is not None and now - self._last_heartbeat_sent >= self.heartbeat_interval_s:
                hb, self._heartbeat = self._heartbeat, None
        if hb is not None:
            try:
                self.sink.heartbeat(hb)
                self._last_heartbeat_sent = now
            except Exception:  # noqa: BLE001 - keep the newest values for the next try
                with self._cv:
                    self._heartbeat = {**hb, **(self._heartbeat or {})}
        if now - self._last_cancel_poll >= self.cancel_poll_s:
            self._last_cancel_poll = now
            try:
                flag = self.sink.cancel_requested()
            except Exception:  # noqa: BLE001 - unknown this time; ask again later
                flag = None
            if flag:
                self._cancel = True

    def _note_failure(self, exc: Exception) -> None:
        self._failures += 1
        self.sink_errors += 1
        self.last_sink_error = f"{type(exc).__name__}: {exc}"

    def _sleep_backoff(self) -> None:
        delay = min(self.backoff_max_s, self.backoff_base_s * (2 ** min(self._failures - 1, 16)))
        delay *= 0.5 + random.random() / 2  # jitter, so many trainers don't retry in lockstep
        if not self._stop:
            self._wake.wait(timeout=delay)
        self._wake.clear()


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class NullReporter:
    """What non-zero ranks get: every call is a no-op."""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None

    def cancel_requested(self) -> bool:
        return False

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def finish(self, *a: Any, **k: Any) -> bool:
        return True

    pending = sent = rejected = sink_errors = 0


def read_spool(path: str | Path, after: int = 0) -> list[dict[str, Any]]:
    """Entries with seq > after. A torn last line (the process died mid-write) is skipped."""
    p = Path(path)
    if not p.exists():
        return []
    out = []
    with p.open(encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("seq", 0) > after:
                out.append(entry)
    return out


def replay_spool(store: Any, job_id: str, spool_path: str | Path) -> int:
    """Console side: apply whatever a dead trainer left unacknowledged. Returns entries applied."""
    spool = Path(spool_path)
    offset_path = spool.with_suffix(".offset")
    try:
        acked = int(offset_path.read_text().strip() or 0)
    except (OSError, ValueError):
        acked = 0
    entries = read_spool(spool, after=acked)
    if entries:
        apply_entries(store, job_id, entries)
        offset_path.write_text(str(entries[-1]["seq"]))
    return len(entries)


def make_sink(kind: str, job_id: str, *, path: str | None = None, url: str | None = None,
              token: str | None = None, port: int | None = None) -> Sink:
    if kind == "sqlite":
        if not path:
            raise ValueError("the sqlite sink needs a database path")
        try:
            return SQLiteSink(path, job_id)
        except SinkUnavailable:
            return _DeferredSQLiteSink(path, job_id)
    if kind == "stdout":
        return StdoutSink()
    if kind == "none":
        return NullSink()
    if kind == "http":  # rows served on a token-protected endpoint that the console pulls (RunPod, Lambda)
        from trainer.sink_http import make_http_sink

        return make_http_sink(job_id, token=token, port=port)
    if kind == "supabase":  # team mode: security-definer ingest functions, called with the per-job token
        from trainer.sink_supabase import make_supabase_sink

        return make_supabase_sink(job_id, url=url, token=token)
    raise ValueError(f"unknown sink kind {kind!r}")


class _DeferredSQLiteSink:
    """The database is not there yet (or is gone at start): keep trying to open it on each write."""

    def __init__(self, path: str, job_id: str) -> None:
        self.path, self.job_id, self.inner = path, job_id, None

    def _get(self) -> SQLiteSink:
        if self.inner is None:
            self.inner = SQLiteSink(self.path, self.job_id)
        return self.inner

    def write(self, entries: list[dict[str, Any]]) -> None:
        self._get().write(entries)

    def heartbeat(self, fields: dict[str, Any]) -> None:
        self._get().heartbeat(fields)

    def cancel_requested(self) -> bool | None:
        try:
            return self._get().cancel_requested()
        except SinkUnavailable:
            return None

    def close(self) -> None:
        if self.inner:
            self.inner.close()

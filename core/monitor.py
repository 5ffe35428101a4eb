"""The monitor's data: a per-job cache that reads only rows newer than it holds, bounded downsampling, and what the
screens derive from it (progress and ETA, cost projection, prediction aggregates and sample rankings, run comparison).

The cost of a refresh must not grow with the length of the run. Three things keep it flat:

- reads ask the store for ``step >= last step held`` (the UNIQUE (job_id, step) index answers that), so a refresh
  reads the handful of rows written since the previous one; the last held step is read again because the trainer
  merges a system sample or an eval loss into a row it already wrote;
- each metric keeps at most ``max_points`` points, and those are what is drawn: past that, the points held are
  folded with min-max decimation, which keeps every bucket's lowest and highest value (a loss spike never
  disappears), so a refresh never downsamples the whole run again.

Nothing here imports Streamlit, so the pages, the CLI, the benchmark and the tests share it.
"""

from __future__ import annotations

import bisect
import difflib
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np

from core import lifecycle as L
from core.store.records import METRIC_COLUMNS, JobRecord

MAX_POINTS = 2000  # per trace sent to the browser: a few thousand is what a chart a few hundred pixels wide can show
TRACE_COLUMNS = METRIC_COLUMNS
SCORE_METRICS = ("rouge_l", "bleu")

# Hints for errors the console itself records (the trainer attaches its own, see trainer/failures.py).
ERROR_HINTS = {
    "process_exit": "The trainer process ended without reporting; read the log tail for its last words "
                    "(out of memory kills leave none: lower the batch size).",
    "console": "The console gave up on the machine; check the provider's dashboard and launch again.",
    "LaunchError": "The machine could not start: check the image, the GPU type and your provider credentials.",
    "AuthError": "The provider refused the credentials: update them and launch again.",
    "NoCapacityError": "No machine of this kind is free right now: pick another GPU or try again later.",
    "QuotaError": "The account's quota or rate limit was hit: wait, or raise the quota with the provider.",
}


# -- downsampling -----------------------------------------------------------------------------------------------

def minmax_indices(x: np.ndarray, y: np.ndarray, n_out: int) -> np.ndarray:
    """Indices of at most ``n_out`` points: the min and max of each of ``n_out / 2`` equal-width step buckets,
    plus the first and the last point (the latest value is the one people look at)."""
    n = len(x)
    if n <= n_out:
        return np.arange(n)
    from tsdownsample import MinMaxDownsampler

    inner = max(2, (n_out - 2) // 2 * 2)  # tsdownsample wants an even count; two slots stay for the ends
    idx = MinMaxDownsampler().downsample(x, y, n_out=inner)
    ends = [i for i in (0, n - 1) if i not in (idx[0], idx[-1])]
    if not ends:
        return idx
    return np.unique(np.concatenate([idx, np.asarray(ends, dtype=idx.dtype)]))


class Trace:
    """One metric as (step, value) points, appended in step order, never more than ``max_points``.

    Past ``max_points``, the points held are folded to ``max_points / 2`` with min-max, so what is held is what is
    drawn: a refresh never downsamples the run again, and folding costs O(max_points) once per max_points / 2
    new points. Recent points stay at full resolution until the next fold.
    """

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.max_points = max_points
        self._x = np.empty(64, dtype=np.int64)
        self._y = np.empty(64, dtype=np.float64)
        self.n = 0
        self.folds = 0

    @property
    def x(self) -> np.ndarray:
        return self._x[: self.n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self.n]

    def last(self) -> tuple[int, float] | None:
        return (int(self._x[self.n - 1]), float(self._y[self.n - 1])) if self.n else None

    def put(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Add points (steps ascending). Points at or after the first new step are replaced: a re-read row wins."""
        keep = ~np.isnan(values)
        steps, values = steps[keep], values[keep]
        if not len(steps):
            return
        cut = int(np.searchsorted(self.x, steps[0], side="left"))
        need = cut + len(steps)
        if need > len(self._x):
            cap = max(need, 2 * len(self._x))
            self._x = np.resize(self._x, cap)
            self._y = np.resize(self._y, cap)
        self._x[cut:need] = steps
        self._y[cut:need] = values
        self.n = need
        if self.n > self.max_points:
            self._fold()

    def _fold(self) -> None:
        idx = minmax_indices(self.x, self.y, max(4, self.max_points // 2))
        x, y = self.x[idx], self.y[idx]
        cap = max(64, 2 * self.max_points)
        if len(self._x) > 4 * cap:  # a first load of a long run grew the buffer: give the memory back
            self._x, self._y = np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.float64)
        self.n = len(idx)
        self._x[: self.n], self._y[: self.n] = x, y
        self.folds += 1

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The points to draw (copies: the buffer changes on the next put)."""
        return self.x.copy(), self.y.copy()


# -- metrics ----------------------------------------------------------------------------------------------------

def _to_epoch_s(ts: Any) -> float | None:
    if ts is None:
        return None
    if isinstance(ts, str):
        try:
            ts = datetime.fromisoformat(ts)
        except ValueError:
            return None
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        return ts.timestamp()
    return None


def samples_per_step(job: JobRecord | None) -> int:
    t = ((job.config if job else None) or {}).get("training") or {}
    return int(t.get("batch_size") or 1) * int(t.get("gradient_accumulation_steps") or 1) * int(
        (job.gpu_count if job else 1) or 1)


class MetricHistory:
    """Every metric of one job as a Trace, plus the running count of tokens seen and a window for the step rate."""

    def __init__(self, columns: Iterable[str] = TRACE_COLUMNS, max_points: int = MAX_POINTS) -> None:
        self.columns = tuple(columns)
        self.max_points = max_points
        self.traces = {c: Trace(max_points) for c in self.columns}
        self.tokens_seen = Trace(max_points)
        self.last_step: int | None = None
        self.rows_read = 0
        self.latest: dict[str, float] = {}  # newest value of every metric
        self.previous_loss: float | None = None  # the loss logged before the latest one
        self._loss_last: tuple[int, float] | None = None
        self._recent: deque[tuple[int, float]] = deque(maxlen=256)  # (step, epoch seconds)
        self._tokens = 0.0
        self._tokens_step = 0

    def since_step(self) -> int | None:
        """What to pass as ``since_step`` (exclusive) so the last held step is read again."""
        return None if self.last_step is None else self.last_step - 1

    def extend(self, steps: np.ndarray, matrix: np.ndarray, times: list[tuple[int, Any]],
               sample_size: int = 1) -> None:
        """Rows as columns: ``steps`` ascending, ``matrix[i, j]`` the value of ``columns[j]`` (NaN if none),
        ``times`` (step, write time) of the last rows."""
        if not len(steps):
            return
        self.rows_read += len(steps)
        for j, c in enumerate(self.columns):
            col = matrix[:, j]
            self.traces[c].put(steps, col)
            valid = ~np.isnan(col)
            if valid.any():
                self.latest[c] = float(col[valid][-1])
        if "loss" in self.columns:  # from the rows, not the trace: folding may have dropped the one before last
            col = matrix[:, self.columns.index("loss")]
            valid = ~np.isnan(col)
            for step, value in zip(steps[valid][-2:].tolist(), col[valid][-2:].tolist()):
                if self._loss_last is None or step != self._loss_last[0]:
                    self.previous_loss = None if self._loss_last is None else self._loss_last[1]
                self._loss_last = (step, value)
        self._count_tokens(steps, matrix, sample_size)
        for step, ts in times:
            t = _to_epoch_s(ts)
            if t is not None:
                while self._recent and self._recent[-1][0] >= step:
                    self._recent.pop()
                self._recent.append((step, t))
        self.last_step = int(steps[-1])

    def _count_tokens(self, steps: np.ndarray, matrix: np.ndarray, sample_size: int) -> None:
        """Tokens seen, integrated from the throughput columns: tokens/s over samples/s is tokens per sample,
        which does not depend on when rows were written."""
        if "tokens_per_sec" not in self.columns or "samples_per_sec" not in self.columns:
            return
        tps = matrix[:, self.columns.index("tokens_per_sec")]
        sps = matrix[:, self.columns.index("samples_per_sec")]
        ok = ~np.isnan(tps) & ~np.isnan(sps) & (sps > 0) & (steps > self._tokens_step)
        if not ok.any():
            return
        s = steps[ok]
        per_step = tps[ok] / sps[ok] * sample_size
        gaps = np.diff(np.concatenate([[self._tokens_step], s]))
        cum = self._tokens + np.cumsum(per_step * gaps)
        self.tokens_seen.put(s, cum)
        self._tokens, self._tokens_step = float(cum[-1]), int(s[-1])

    def steps_per_second(self, window_s: float = 300.0) -> float | None:
        """Recent pace from the rows' write times (the last five minutes, or what there is)."""
        if len(self._recent) < 2:
            return None
        s1, t1 = self._recent[-1]
        s0, t0 = self._recent[0]
        for s, t in self._recent:
            if t1 - t <= window_s:
                s0, t0 = s, t
                break
        if t1 - t0 <= 0 or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)


def fetch_metric_columns(store: Any, job_id: str, since_step: int | None,
                         columns: tuple[str, ...] = TRACE_COLUMNS) -> tuple[np.ndarray, np.ndarray, list]:
    """(steps, matrix, timestamps of the last rows) for the metric rows after ``since_step``; ``matrix[i, j]`` is
    ``columns[j]`` at ``steps[i]``, NaN where unset. Stores that return plain tuples skip per-value decoding (a
    first load of a long run reads hundreds of thousands of rows); any other store goes through get_metrics."""
    tuples = getattr(store, "get_metric_tuples", None)
    if tuples is None:
        rows = store.get_metrics(job_id, since_step=since_step, columns=columns)
        steps = np.fromiter((r["step"] for r in rows), dtype=np.int64, count=len(rows))
        matrix = np.array([[r.get(c) for c in columns] for r in rows], dtype=np.float64).reshape(len(rows), -1)
        return steps, matrix, [(r["step"], r.get("timestamp")) for r in rows[-256:]]
    rows = tuples(job_id, since_step=since_step, columns=columns)
    if not rows:
        return np.empty(0, np.int64), np.empty((0, len(columns))), []
    # None becomes NaN when numpy builds a float array; steps fit a float64 exactly.
    table = np.array(rows, dtype=np.float64).reshape(len(rows), len(columns) + 1)
    steps = table[:, 0].astype(np.int64)
    # Write times serve only the recent pace (ETA): read them for the last rows alone.
    tail_from = int(steps[-256]) - 1 if len(steps) > 256 else since_step
    last = int(steps[-1])  # rows written since the read above wait for the next refresh
    times = [(r["step"], r["timestamp"]) for r in store.get_metrics(job_id, since_step=tail_from, columns=("epoch",))
             if r["step"] <= last]
    return steps, table[:, 1:], times


# -- predictions ------------------------------------------------------------------------------------------------

class PredictionHistory:
    """Scores of every sample at every round, per-step means, and the latest round's rows in full."""

    def __init__(self) -> None:
        self.last_step: int | None = None
        self.count = 0
        self.by_sample: dict[str, list[tuple[int, float | None, float | None]]] = {}  # (step, bleu, rouge_l)
        self.samples: dict[str, dict[str, Any]] = {}  # sample_id -> prompt, expected_text
        self.step_sums: dict[int, list[float]] = {}  # step -> [sum bleu, n bleu, sum rouge_l, n rouge_l, n rows]
        self.latest_rows: list[dict[str, Any]] = []
        self.latest_at: datetime | None = None
        self._summaries: dict[tuple[str, str], dict[str, Any]] = {}  # (metric, sample) -> its ranking row

    def since_step(self) -> int | None:
        return None if self.last_step is None else self.last_step - 1

    def extend(self, rows: list[dict[str, Any]]) -> None:
        """Add rows; a row for a (sample, step) already held replaces it. The last round is read again on every
        refresh, and its unchanged rows cost nothing here."""
        if not rows:
            return
        for r in rows:
            sid = str(r["sample_id"])
            entry = (int(r["step"]), _num(r.get("bleu")), _num(r.get("rouge_l")))
            hist = self.by_sample.setdefault(sid, [])
            at = len(hist)
            if hist and hist[-1][0] >= entry[0]:  # the same step read again (or, rarely, an older one late)
                at = bisect.bisect_left(hist, entry[0], key=lambda h: h[0])
            if at < len(hist) and hist[at][0] == entry[0]:
                if hist[at] == entry:
                    continue
                self._account(hist[at], -1, 0)
                hist[at] = entry
                self._account(entry, 1, 0)
            else:
                hist.insert(at, entry)
                self._account(entry, 1, 1)
                self.count += 1
            for metric in SCORE_METRICS:
                self._summaries.pop((metric, sid), None)
            if sid not in self.samples:
                self.samples[sid] = {"prompt": r.get("prompt"), "expected_text": r.get("expected_text")}
        last = max(r["step"] for r in rows)
        if self.last_step is None or last > self.last_step:
            self.latest_rows = [r for r in rows if r["step"] == last]
            self.last_step = last
        elif last == self.last_step:
            self.latest_rows = _merge_round(self.latest_rows, [r for r in rows if r["step"] == last])
        stamps = [t for r in rows if (t := _to_epoch_s(r.get("timestamp"))) is not None]
        if stamps and (self.latest_at is None or max(stamps) > self.latest_at.timestamp()):
            self.latest_at = datetime.fromtimestamp(max(stamps), tz=timezone.utc)

    def _account(self, entry: tuple[int, float | None, float | None], sign: int, rows: int) -> None:
        step, bleu, rouge = entry
        sums = self.step_sums.setdefault(step, [0.0, 0, 0.0, 0, 0])
        if bleu is not None:
            sums[0] += sign * bleu
            sums[1] += sign
        if rouge is not None:
            sums[2] += sign * rouge
            sums[3] += sign
        sums[4] += rows

    def aggregates(self) -> dict[str, list[float | None]]:
        """Mean BLEU and ROUGE-L per prediction round, steps ascending."""
        steps = sorted(self.step_sums)
        sums = [self.step_sums[s] for s in steps]
        return {
            "step": steps,
            "bleu": [s[0] / s[1] if s[1] else None for s in sums],
            "rouge_l": [s[2] / s[3] if s[3] else None for s in sums],
            "samples": [s[4] for s in sums],
        }

    def rankings(self, metric: str = "rouge_l", top: int = 10) -> dict[str, list[dict[str, Any]]]:
        """Worst and best samples by their latest score, and the most regressed: the largest drop from the
        sample's best score so far to its latest one. Each sample's row is recomputed only when it got a new
        round, so a refresh costs the number of samples, not the number of predictions."""
        table = [row for sid in self.by_sample if (row := self._summary(metric, sid)) is not None]
        worst = sorted(table, key=lambda r: (r["latest"], r["sample_id"]))[:top]
        best = sorted(table, key=lambda r: (-r["latest"], r["sample_id"]))[:top]
        regressed = sorted((r for r in table if r["drop"] > 0), key=lambda r: (-r["drop"], r["sample_id"]))[:top]
        return {"worst": worst, "best": best, "regressed": regressed}

    def _summary(self, metric: str, sid: str) -> dict[str, Any] | None:
        key = (metric, sid)
        if key not in self._summaries:
            pos = 1 if metric == "bleu" else 2
            pts = [(h[0], h[pos]) for h in self.by_sample[sid] if h[pos] is not None]
            row = None
            if pts:
                latest_step, latest = pts[-1]
                peak_step, peak = max(pts, key=lambda p: (p[1], -p[0]))
                row = {
                    "sample_id": sid, "prompt": self.samples.get(sid, {}).get("prompt"), "latest": latest,
                    "latest_step": latest_step, "first": pts[0][1], "peak": peak, "peak_step": peak_step,
                    "change": latest - pts[-2][1] if len(pts) > 1 else None, "drop": peak - latest,
                    "rounds": len(pts),
                }
            self._summaries[key] = row
        return self._summaries[key]


def _merge_round(held: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {r["sample_id"]: r for r in held}
    by_id.update({r["sample_id"]: r for r in new})
    return sorted(by_id.values(), key=lambda r: str(r["sample_id"]))


def _num(v: Any) -> float | None:
    try:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    except (TypeError, ValueError):
        return None


def sample_history(store: Any, job_id: str, sample_id: str) -> list[dict[str, Any]]:
    """One sample's generations across rounds, each with its word diff against the expected answer."""
    return [{**r, "diff": diff_words(r.get("expected_text") or "", r.get("generated_text") or "")}
            for r in store.get_predictions(job_id, sample_id=sample_id)]


_TOKEN = re.compile(r"\S+|\s+")


def diff_words(expected: str, generated: str) -> list[tuple[str, str]]:
    """Word-level differences: ("equal" | "insert" | "delete", text). ``insert`` is in the generation only,
    ``delete`` is expected but missing. Whitespace travels with the word before it."""
    a = [t for t in _TOKEN.findall(expected) if not t.isspace()]
    b = [t for t in _TOKEN.findall(generated) if not t.isspace()]
    ops: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            ops.append(("equal", " ".join(a[i1:i2])))
        else:
            if i2 > i1:
                ops.append(("delete", " ".join(a[i1:i2])))
            if j2 > j1:
                ops.append(("insert", " ".join(b[j1:j2])))
    return ops


# -- the per-job cache ------------------------------------------------------------------------------------------

@dataclass
class Refresh:
    metric_rows: int = 0
    prediction_rows: int = 0
    seconds: float = 0.0


@dataclass
class Progress:
    step: int
    total_steps: int | None
    epoch: float | None
    epochs_total: float | None
    epochs_estimated: bool
    fraction: float
    elapsed_s: float | None
    eta_s: float | None
    steps_per_s: float | None


@dataclass
class CostOutlook:
    spent: float
    per_hour: float | None
    budget: float | None
    projected: float | None  # at the end of the run, at the current pace
    budget_step: int | None  # the step at which the budget runs out, when that comes before the end
    line: list[tuple[int, float]] = field(default_factory=list)  # the projection from now to the end
    basis: str | None = None  # what the projection rests on: pace | progress | estimate | final
    estimate: dict[str, float] | None = None  # the launch estimate's cost range: low, mid, high

    @property
    def over_budget(self) -> bool:
        return self.budget is not None and self.projected is not None and self.projected > self.budget


class JobMonitor:
    """Everything the monitor shows of one job, refreshed incrementally. Keep one per job per session."""

    def __init__(self, job_id: str, max_points: int = MAX_POINTS) -> None:
        self.job_id = job_id
        self.max_points = max_points
        self.metrics = MetricHistory(max_points=max_points)
        self.predictions = PredictionHistory()
        self.job: JobRecord | None = None
        self.errors: list[Any] = []
        self.refreshes = 0
        self._settled = False  # terminal and read once more after it ended: nothing new can arrive

    def refresh(self, store: Any) -> Refresh:
        t0 = time.perf_counter()
        job = store.get_job(self.job_id)
        out = Refresh()
        if not self._settled:
            steps, matrix, times = fetch_metric_columns(store, self.job_id, self.metrics.since_step(),
                                                        self.metrics.columns)
            self.metrics.extend(steps, matrix, times, samples_per_step(job))
            out.metric_rows = len(steps)
            rows = store.get_predictions(self.job_id, since_step=self.predictions.since_step())
            self.predictions.extend(rows)
            out.prediction_rows = len(rows)
            self.errors = store.get_errors(self.job_id)
            self._settled = job.status in L.TERMINAL
        self.job = job
        self.refreshes += 1
        out.seconds = time.perf_counter() - t0
        return out

    # -- derived ---------------------------------------------------------------------------------------------
    def progress(self, now: datetime | None = None) -> Progress:
        job = self._need_job()
        now = now or datetime.now(timezone.utc)
        step = max(job.current_step or 0, self.metrics.last_step or 0)
        total = job.total_steps or None
        fraction = min(1.0, step / total) if total else float(job.progress or 0.0)
        if job.status == L.COMPLETED:
            fraction = 1.0
        epoch = job.epoch if job.epoch is not None else self.metrics.latest.get("epoch")
        training = (job.config or {}).get("training") or {}
        epochs_total, estimated = training.get("num_epochs"), False
        if training.get("max_steps") and epoch and step and total:
            epochs_total, estimated = epoch * total / step, True  # max_steps decides, not the epoch count
        elapsed = None
        if job.started_at:
            elapsed = ((job.completed_at or now) - job.started_at).total_seconds()
        rate = self.metrics.steps_per_second()
        est = job.estimate or {}
        eta = None
        if job.status in L.LIVE:
            if rate and total:
                eta = max(0.0, (total - step) / rate)
            elif est.get("eta_seconds") is not None:  # the trainer's own, before the monitor has a pace
                eta = float(est["eta_seconds"])
            elif (hours := _launch_hours(est)) is not None:  # before the first step: the launch estimate
                eta = max(0.0, hours * 3600 - (elapsed or 0.0))
        elif job.status in L.TERMINAL:
            eta = 0.0
        return Progress(step=step, total_steps=total, epoch=epoch, epochs_total=epochs_total,
                        epochs_estimated=estimated, fraction=fraction, elapsed_s=elapsed, eta_s=eta,
                        steps_per_s=rate)

    def cost(self, progress: Progress | None = None) -> CostOutlook:
        job = self._need_job()
        p = progress or self.progress()
        spent = job.total_cost_usd if job.total_cost_usd is not None else self.metrics.latest.get("cost_usd", 0.0)
        spent = float(spent or 0.0)
        budget = job.budget_limit_usd or None
        estimate = _launch_cost(job.estimate or {})
        projected, basis = None, None
        if job.status in L.TERMINAL:
            projected, basis = spent, "final"
        elif job.cost_per_hour and p.eta_s is not None and p.step:
            projected, basis = spent + job.cost_per_hour * p.eta_s / 3600, "pace"
        elif p.fraction > 0.01 and spent > 0:
            projected, basis = spent / p.fraction, "progress"
        elif estimate is not None:  # nothing measured yet: what the launch estimate said
            projected, basis = max(spent, estimate["mid"]), "estimate"
        line: list[tuple[int, float]] = []
        budget_step = None
        if projected is not None and p.total_steps and job.status in L.LIVE:
            line = [(p.step, spent), (p.total_steps, projected)]
            if budget is not None and projected > budget > spent and projected > spent:
                budget_step = int(p.step + (budget - spent) / (projected - spent) * (p.total_steps - p.step))
        return CostOutlook(spent=spent, per_hour=job.cost_per_hour, budget=budget, projected=projected,
                           budget_step=budget_step, line=line, basis=basis, estimate=estimate)

    def uses_gpu(self) -> bool:
        return any(self.metrics.traces[c].n for c in ("gpu_memory_mb", "gpu_util_pct") if c in self.metrics.traces)

    def error_rows(self) -> list[dict[str, Any]]:
        return [{"type": e.error_type, "message": e.error_message, "hint": e.hint or ERROR_HINTS.get(e.error_type),
                 "traceback": e.traceback, "at": e.timestamp} for e in self.errors]

    def _need_job(self) -> JobRecord:
        if self.job is None:
            raise RuntimeError("refresh() the monitor before reading it")
        return self.job


def _launch_cost(est: dict[str, Any]) -> dict[str, float] | None:
    """The cost range core.estimate quoted at launch (kept on the job), or None when it made none."""
    r = est.get("cost_range")
    if isinstance(r, dict) and all(isinstance(r.get(k), (int, float)) for k in ("low", "mid", "high")):
        return {k: float(r[k]) for k in ("low", "mid", "high")}
    if isinstance(est.get("cost_usd"), (int, float)):
        return {k: float(est["cost_usd"]) for k in ("low", "mid", "high")}
    return None


def _launch_hours(est: dict[str, Any]) -> float | None:
    mid = ((est.get("time") or {}).get("hours") or {}).get("mid")
    return float(mid) if isinstance(mid, (int, float)) else None


# -- comparing runs ---------------------------------------------------------------------------------------------

def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_diff(configs: dict[str, dict[str, Any]], *, only_different: bool = True) -> list[dict[str, Any]]:
    """One row per setting, one column per job; by default only the settings where the jobs differ."""
    flat = {jid: flatten(cfg or {}) for jid, cfg in configs.items()}
    keys = sorted(set().union(*[set(f) for f in flat.values()])) if flat else []
    rows = []
    for k in keys:
        values = [flat[j].get(k) for j in flat]
        shown = [_show(v) for v in values]
        if only_different and len(set(shown)) <= 1:
            continue
        rows.append({"setting": k, **{j: s for j, s in zip(flat, shown)}})
    return rows


def _show(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return str(v)


def run_summary(jm: JobMonitor) -> dict[str, Any]:
    """Final scores, time and cost of one run, as the compare screen lists them."""
    job = jm._need_job()
    p = jm.progress()
    agg = jm.predictions.aggregates()
    loss = jm.metrics.traces["loss"].last()
    evals = jm.metrics.traces["eval_loss"]
    return {
        "job": job.id, "status": job.status, "config": job.config_name, "model": job.model_name,
        "method": job.method, "provider": job.provider, "gpu": job.gpu_type, "steps": p.step,
        "final loss": job.final_loss if job.final_loss is not None else (loss[1] if loss else None),
        "best eval loss": float(evals.y.min()) if evals.n else None,
        "BLEU": _last_value(agg["bleu"]), "ROUGE-L": _last_value(agg["rouge_l"]),
        "tokens seen": jm.metrics.tokens_seen.last()[1] if jm.metrics.tokens_seen.n else None,
        "time_s": p.elapsed_s, "cost_usd": jm.cost(p).spent, "estimated_cost_usd": _launch_cost(job.estimate or {}),
    }


def _last_value(values: list[float | None]) -> float | None:
    for v in reversed(values):
        if v is not None:
            return v
    return None


def on_tokens_axis(jm: JobMonitor, steps: np.ndarray) -> np.ndarray | None:
    """Tokens seen at each of ``steps`` (interpolated), or None when the job reported no token throughput."""
    tok = jm.metrics.tokens_seen
    if not tok.n:
        return None
    x = np.concatenate([[0], tok.x])
    y = np.concatenate([[0.0], tok.y])
    return np.interp(steps, x, y)

"""Benchmark: one monitor refresh of a 200,000-step run against the same refresh of a 1,000-step run.

    python bench/monitor.py                      # 200,000 rows + 5,000 predictions vs 1,000 rows
    python bench/monitor.py --rows 50000 --repeat 20

Seeds both jobs in a temporary SQLite store (every step logged with every metric: the worst case), then measures,
interleaved so both see the same machine load, the server-side time of one refresh of the Monitor screen:

- ``JobMonitor.refresh``: the job row, its errors, the metric rows and prediction rows newer than those held;
- what the screen derives: progress and ETA, cost outlook, rankings, the selected sample's history (read again
  only when a prediction round arrives, as the page does), and every figure (core.charts);
- the JSON Streamlit ships per chart, made the way ``st.plotly_chart`` makes it
  (``plotly.tools.return_figure_from_figure_or_data`` then ``plotly.io.to_json``).

Streamlit's own protobuf and websocket work is the same for both jobs and is left out of that figure;
``--apptest N`` adds a second one that includes it: N full reruns of the real Monitor page per job through
streamlit.testing's AppTest (script, fragment, every element serialised), each session keeping its cache.

*first load*: a fresh JobMonitor (a new browser session) reads everything. *incremental*: before each timed
refresh, ``--new-rows`` steps are written to each job (untimed, as a trainer would between two refreshes), and every
tenth round a new prediction round too. Target: incremental refresh of the long run <= 1.5x the short run's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def render(jm, store, sample_cache: dict) -> int:
    """What pages/monitor.py computes for one refresh after JobMonitor.refresh; returns the bytes of chart JSON."""
    import plotly.io
    import plotly.tools

    from core.charts import monitor_figures, sample_trend_figure
    from core.monitor import sample_history

    p = jm.progress()
    jm.cost(p)
    jm.error_rows()
    ranks = jm.predictions.rankings("rouge_l")
    figs = monitor_figures(jm)
    if jm.predictions.count:
        sid = (ranks["regressed"] or ranks["worst"])[0]["sample_id"]
        key = (sid, jm.predictions.last_step, jm.predictions.count)
        if sample_cache.get("key") != key:
            sample_cache.update(key=key, history=sample_history(store, jm.job_id, sid))
        figs["sample_trend"] = sample_trend_figure(sample_cache["history"], sid)
    size = 0
    for fig in figs.values():
        if fig is not None:
            size += len(plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(fig, True), validate=False))
    return size


def timed_refresh(jm, store, sample_cache: dict) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    jm.refresh(store)
    t1 = time.perf_counter()
    size = render(jm, store, sample_cache)
    return t1 - t0, time.perf_counter() - t1, size


def stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"median": statistics.median(xs) * 1000, "mean": statistics.fmean(xs) * 1000,
            "p90": xs[min(len(xs) - 1, int(0.9 * len(xs)))] * 1000}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=200_000, help="metric rows of the long run")
    ap.add_argument("--small", type=int, default=1_000, help="metric rows of the short run")
    ap.add_argument("--predictions", type=int, default=5_000, help="prediction rows of the long run")
    ap.add_argument("--samples", type=int, default=50, help="samples per prediction round (both runs)")
    ap.add_argument("--repeat", type=int, default=40, help="incremental refreshes per run")
    ap.add_argument("--first", type=int, default=3, help="first loads per run")
    ap.add_argument("--new-rows", type=int, default=10, dest="new_rows", help="steps written between refreshes")
    ap.add_argument("--apptest", type=int, default=10, help="full reruns of the Monitor page per run (0: skip)")
    ap.add_argument("--keep", action="store_true", help="keep the seeded store (removed otherwise)")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="ftc-bench-monitor-"))
    try:
        return run(args, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> int:
    os.environ["CONSOLE_HOME"] = str(tmp)  # the AppTest part opens the same store
    os.environ.pop("CONSOLE_STORE_URL", None)

    from core.monitor import JobMonitor
    from core.store import open_store
    from tests.support.monitor_seed import add_steps, prediction_rows, seed_job

    store = open_store()
    t = time.perf_counter()
    rounds_big = max(1, args.predictions // args.samples)
    big = seed_job(store, steps=args.rows, total_steps=args.rows * 2, samples=args.samples, rounds=rounds_big,
                   name="long", budget=500.0)
    small = seed_job(store, steps=args.small, total_steps=args.small * 2, samples=args.samples, rounds=5,
                     name="short", budget=500.0)
    print(f"seeded in {time.perf_counter() - t:.1f}s: long run {store.count_metrics(big.id):,} metric rows, "
          f"{len(store.get_predictions(big.id)):,} predictions; short run {store.count_metrics(small.id):,} metric "
          f"rows, {len(store.get_predictions(small.id)):,} predictions ({tmp})")

    warm = JobMonitor(small.id)  # imports and first-use caches (plotly validators, tsdownsample) off the clock
    warm.refresh(store)
    render(warm, store, {})

    runs = {"long": big, "short": small}
    first: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.first):
        for name, job in runs.items():
            jm = JobMonitor(job.id)
            a, b, _ = timed_refresh(jm, store, {})
            first[name].append(a + b)

    monitors = {k: JobMonitor(j.id) for k, j in runs.items()}
    caches: dict[str, dict] = {k: {} for k in runs}
    for name, jm in monitors.items():
        timed_refresh(jm, store, caches[name])
    inc: dict[str, list[float]] = {k: [] for k in runs}
    data: dict[str, list[float]] = {k: [] for k in runs}
    sizes: dict[str, int] = {}
    points: dict[str, int] = {}
    next_step = {k: (j.current_step or 0) + 1 for k, j in runs.items()}
    for i in range(args.repeat):
        order = list(runs) if i % 2 == 0 else list(reversed(runs))
        for name in order:
            job = runs[name]
            add_steps(store, job, next_step[name], args.new_rows)
            next_step[name] += args.new_rows
            if i % 10 == 9:
                rows = prediction_rows(args.samples, 1, 1)
                for r in rows:
                    r["step"] = next_step[name] - 1
                store.upsert_predictions(job.id, rows)
            a, b, size = timed_refresh(monitors[name], store, caches[name])
            inc[name].append(a + b)
            data[name].append(a)
            sizes[name] = size
    for name, jm in monitors.items():
        points[name] = sum(len(tr.points()[0]) for tr in jm.metrics.traces.values())

    print(f"\n{'':28}{'long run':>14}{'short run':>14}{'ratio':>9}")
    for label, series in (("first load", first), ("incremental refresh", inc), ("  of which data", data)):
        a, b = stats(series["long"]), stats(series["short"])
        for k in ("median", "mean", "p90"):
            print(f"{label + ' ' + k + ' (ms)':28}{a[k]:>14.1f}{b[k]:>14.1f}{a[k] / b[k]:>8.2f}x")
    print(f"{'points drawn (all metrics)':28}{points['long']:>14,}{points['short']:>14,}")
    print(f"{'chart JSON per refresh (KB)':28}{sizes['long'] / 1024:>14.0f}{sizes['short'] / 1024:>14.0f}")
    ratio = stats(inc["long"])["median"] / stats(inc["short"])["median"]
    if args.apptest:
        page = apptest_reruns(runs, store, args.apptest, args.new_rows, next_step)
        a, b = stats(page["long"]), stats(page["short"])
        for k in ("median", "mean", "p90"):
            print(f"{'page rerun ' + k + ' (ms)':28}{a[k]:>14.1f}{b[k]:>14.1f}{a[k] / b[k]:>8.2f}x")
    print(f"\nincremental refresh, long run / short run (median): {ratio:.2f}x — target <= 1.5x: "
          f"{'met' if ratio <= 1.5 else 'NOT met'}")
    return 0


def apptest_reruns(runs: dict, store, n: int, new_rows: int, next_step: dict) -> dict[str, list[float]]:
    """Full reruns of the real app on the Monitor page, one AppTest session per job (its cache warm first)."""
    import logging

    from streamlit.testing.v1 import AppTest

    logging.getLogger("streamlit").setLevel(logging.ERROR)  # "missing ScriptRunContext" is expected in bare mode

    from tests.support.monitor_seed import add_steps

    tests = {}
    for name, job in runs.items():
        at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
        at.session_state["monitor_job"] = job.id
        at.run()
        at.switch_page("pages/monitor.py")
        at.run()
        if at.exception:
            raise RuntimeError(f"the monitor page failed: {at.exception}")
        tests[name] = at
    out: dict[str, list[float]] = {k: [] for k in runs}
    for i in range(n):
        for name in (list(runs) if i % 2 == 0 else list(reversed(runs))):
            add_steps(store, runs[name], next_step[name], new_rows)
            next_step[name] += new_rows
            t0 = time.perf_counter()
            tests[name].run()
            out[name].append(time.perf_counter() - t0)
    return out


if __name__ == "__main__":
    sys.exit(main())

import json

import numpy as np
import pytest

from core.monitor import (
    JobMonitor,
    Trace,
    config_diff,
    diff_words,
    minmax_indices,
    on_tokens_axis,
    run_summary,
)
from core.store.records import JobRecord, new_id
from core.store.sqlite import SQLiteStore
from tests.support.monitor_seed import SPIKE_LOSS, add_steps, seed_job


@pytest.fixture()
def store(tmp_path):
    return SQLiteStore(tmp_path / "c.db")


class CountingStore:
    """The real store, recording what each metric read asked for and returned."""

    def __init__(self, inner):
        self.inner = inner
        self.metric_reads: list[tuple[int | None, int]] = []

    def get_metric_tuples(self, job_id, *, since_step=None, columns=None):
        rows = self.inner.get_metric_tuples(job_id, since_step=since_step, columns=columns)
        self.metric_reads.append((since_step, len(rows)))
        return rows

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_refresh_reads_only_rows_newer_than_held(store):
    job = seed_job(store, steps=300, total_steps=1000)
    spy = CountingStore(store)
    jm = JobMonitor(job.id)
    assert jm.refresh(spy).metric_rows == 300
    add_steps(store, job, 301, 7)
    got = jm.refresh(spy)
    # the 7 new steps and the last held one, read again because the trainer merges late columns into it
    assert spy.metric_reads == [(None, 300), (299, 8)]
    assert got.metric_rows == 8
    loss = jm.metrics.traces["loss"]
    assert loss.n == 307 and list(loss.x[-8:]) == list(range(300, 308))
    assert jm.refresh(spy).metric_rows == 1 and spy.metric_reads[-1] == (306, 1)


def test_a_late_merge_into_the_last_step_is_picked_up_without_duplicates(store):
    job = store.create_job(JobRecord(id=new_id("job"), provider="local", status="running", total_steps=100))
    store.upsert_metrics(job.id, [{"step": s, "loss": 3.0 - s * 0.1} for s in range(1, 11)])
    jm = JobMonitor(job.id)
    jm.refresh(store)
    assert jm.metrics.traces["cpu_pct"].n == 0
    store.upsert_metrics(job.id, [{"step": 10, "cpu_pct": 55.0, "eval_loss": 1.7}, {"step": 11, "loss": 1.9}])
    jm.refresh(store)
    assert list(jm.metrics.traces["cpu_pct"].x) == [10] and jm.metrics.traces["cpu_pct"].y[0] == 55.0
    assert list(jm.metrics.traces["eval_loss"].x) == [10]
    assert list(jm.metrics.traces["loss"].x) == list(range(1, 12))
    assert jm.metrics.latest["loss"] == pytest.approx(1.9) and jm.metrics.previous_loss == pytest.approx(2.0)


def test_minmax_keeps_extremes_ends_and_bounds_points():
    rng = np.random.default_rng(0)
    x = np.arange(50_000, dtype=np.int64)
    y = rng.normal(0, 1, len(x))
    y[12_345], y[40_001] = 80.0, -70.0
    idx = minmax_indices(x, y, 1000)
    assert len(idx) <= 1000
    assert {12_345, 40_001, 0, 49_999} <= set(idx.tolist())
    assert np.all(np.diff(idx) > 0)
    small = minmax_indices(x[:500], y[:500], 1000)
    assert small.tolist() == list(range(500))


def test_trace_folds_old_points_but_keeps_spikes_and_the_latest_value():
    tr = Trace(max_points=500)
    rng = np.random.default_rng(1)
    for start in range(1, 200_001, 2_000):
        steps = np.arange(start, start + 2_000, dtype=np.int64)
        vals = rng.normal(1.0, 0.1, len(steps))
        if start == 50_001:
            vals[17] = 42.0
        tr.put(steps, vals)
        assert tr.n <= 500
    for step in range(200_001, 200_401):  # then point by point, as live refreshes add them
        tr.put(np.array([step]), np.array([1.0]))
        assert tr.n <= 500
    x, y = tr.points()
    assert len(x) <= 500 and tr.folds > 100
    assert y.max() == 42.0 and x[np.argmax(y)] == 50_018
    assert x[-1] == 200_400 and x[0] == 1
    assert np.all(np.diff(x) > 0)


def test_first_load_of_a_long_run_is_downsampled_and_keeps_the_loss_spike(store):
    job = seed_job(store, steps=6_000, spike_step=4_321)
    jm = JobMonitor(job.id, max_points=400)
    jm.refresh(store)
    x, y = jm.metrics.traces["loss"].points()
    assert len(x) <= 400 and y.max() == SPIKE_LOSS and 4_321 in x.tolist() and x[-1] == 6_000


def test_prediction_aggregates_and_rankings(store):
    job = seed_job(store, steps=200, samples=6, rounds=5)
    jm = JobMonitor(job.id)
    jm.refresh(store)
    rows = store.get_predictions(job.id)
    agg = jm.predictions.aggregates()
    steps = sorted({r["step"] for r in rows})
    assert agg["step"] == steps
    for step, bleu, rouge in zip(agg["step"], agg["bleu"], agg["rouge_l"]):
        at = [r for r in rows if r["step"] == step]
        assert bleu == pytest.approx(sum(r["bleu"] for r in at) / len(at))
        assert rouge == pytest.approx(sum(r["rouge_l"] for r in at) / len(at))
    ranks = jm.predictions.rankings("rouge_l")
    assert ranks["worst"][0]["sample_id"] == "s000"
    top = ranks["regressed"][0]
    assert top["sample_id"] == "s001" and top["peak"] == pytest.approx(0.95) and top["latest"] == pytest.approx(0.2)
    assert top["drop"] == pytest.approx(0.75) and top["peak_step"] == steps[-2]
    assert [r["latest"] for r in ranks["best"]] == sorted((r["latest"] for r in ranks["best"]), reverse=True)


def test_a_prediction_round_written_in_two_batches_is_counted_once(store):
    job = store.create_job(JobRecord(id=new_id("job"), provider="local", status="running"))

    def row(step, sid, score):
        return {"step": step, "sample_id": sid, "generated_text": "g", "expected_text": "e", "bleu": score * 100,
                "rouge_l": score}

    store.upsert_predictions(job.id, [row(10, "a", 0.2), row(10, "b", 0.4)])
    jm = JobMonitor(job.id)
    jm.refresh(store)
    store.upsert_predictions(job.id, [row(20, "a", 0.6)])
    jm.refresh(store)
    store.upsert_predictions(job.id, [row(20, "b", 0.8)])
    jm.refresh(store)
    assert jm.predictions.count == 4
    agg = jm.predictions.aggregates()
    assert agg["step"] == [10, 20] and agg["rouge_l"] == pytest.approx([0.3, 0.7]) and agg["samples"] == [2, 2]
    assert [r["sample_id"] for r in jm.predictions.latest_rows] == ["a", "b"]
    # a rescored row replaces the one held; a late row for an earlier round slots in before it
    jm.predictions.extend([row(20, "b", 0.9), row(15, "b", 0.5)])
    assert jm.predictions.count == 5 and [h[0] for h in jm.predictions.by_sample["b"]] == [10, 15, 20]
    agg = jm.predictions.aggregates()
    assert agg["step"] == [10, 15, 20] and agg["rouge_l"] == pytest.approx([0.3, 0.5, 0.75])
    assert jm.predictions.rankings()["best"][0] == pytest.approx(
        {**jm.predictions.rankings()["best"][0], "sample_id": "b", "latest": 0.9, "peak": 0.9})


def test_word_diff_marks_missing_and_extra_words():
    assert diff_words("the cat sat on the mat", "the dog sat on mat") == [
        ("equal", "the"), ("delete", "cat"), ("insert", "dog"), ("equal", "sat on"), ("delete", "the"),
        ("equal", "mat")]
    assert diff_words("same words", "same words") == [("equal", "same words")]


def test_progress_eta_and_cost_projection(store):
    job = seed_job(store, steps=600, total_steps=1000, seconds_per_step=0.5, budget=0.2)
    jm = JobMonitor(job.id)
    jm.refresh(store)
    p = jm.progress()
    assert p.step == 600 and p.total_steps == 1000 and p.fraction == pytest.approx(0.6)
    assert p.steps_per_s == pytest.approx(2.0, rel=0.01)
    assert p.eta_s == pytest.approx(200, rel=0.01)
    assert p.epochs_estimated and p.epochs_total == pytest.approx(3.0)
    cost = jm.cost(p)
    spent = 600 * 0.5 / 3600 * 1.8
    assert cost.spent == pytest.approx(spent)
    assert cost.projected == pytest.approx(spent + 1.8 * 200 / 3600, rel=0.01)
    assert cost.over_budget and cost.line == [(600, pytest.approx(spent)), (1000, pytest.approx(cost.projected))]
    expect = 600 + (0.2 - spent) / (cost.projected - spent) * 400
    assert cost.budget_step == pytest.approx(expect, abs=1) and 790 < cost.budget_step < 810


def test_tokens_seen_follow_the_throughput_ratio(store):
    # 256 tokens per sample, 8 x 2 samples per step: 4096 tokens a step
    job = seed_job(store, steps=500, tokens_per_sample=256, batch=8, accum=2)
    jm = JobMonitor(job.id)
    jm.refresh(store)
    assert jm.metrics.tokens_seen.last() == (500, pytest.approx(500 * 4096))
    assert on_tokens_axis(jm, np.array([100, 250])) == pytest.approx([100 * 4096, 250 * 4096])
    summary = run_summary(jm)
    assert summary["tokens seen"] == pytest.approx(500 * 4096) and summary["steps"] == 500


def test_config_diff_lists_only_what_differs():
    a = {"training": {"learning_rate": 1e-4, "batch_size": 8}, "lora": {"r": 16, "target_modules": ["q", "v"]}}
    b = {"training": {"learning_rate": 2e-4, "batch_size": 8}, "lora": {"r": 16, "target_modules": ["q", "k"]}}
    rows = config_diff({"A": a, "B": b})
    assert rows == [{"setting": "lora.target_modules", "A": "q, v", "B": "q, k"},
                    {"setting": "training.learning_rate", "A": "0.0001", "B": "0.0002"}]
    assert len(config_diff({"A": a, "B": b}, only_different=False)) == 4


def test_a_finished_job_is_read_once_more_then_never_again(store):
    job = seed_job(store, steps=50, status="completed")
    spy = CountingStore(store)
    jm = JobMonitor(job.id)
    jm.refresh(spy)
    jm.refresh(spy)
    assert len(spy.metric_reads) == 1 and jm.progress().fraction == 1.0 and jm.progress().eta_s == 0.0


def test_cli_metrics_since_and_predictions_serve_the_monitor_rows(store, console_home, capsys):
    from core.cli import main
    from core.store import open_store

    s = open_store()
    job = seed_job(s, steps=40, samples=3, rounds=2)
    assert main(["metrics", job.id, "--since", "35", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["step"] for r in rows] == [36, 37, 38, 39, 40] and rows[0]["loss"] is not None
    assert main(["predictions", job.id, "--json"]) == 0
    preds = json.loads(capsys.readouterr().out)
    assert len(preds) == 6 and {p["sample_id"] for p in preds} == {"s000", "s001", "s002"}
    assert main(["predictions", job.id, "--sample", "s001", "--json"]) == 0
    assert [p["sample_id"] for p in json.loads(capsys.readouterr().out)] == ["s001", "s001"]
    assert main(["predictions", job.id, "--summary", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    jm = JobMonitor(job.id)
    jm.refresh(s)
    assert summary["steps"] == jm.predictions.aggregates()["step"]
    assert summary["worst"][0]["sample_id"] == "s000"


def test_before_the_first_step_eta_and_cost_come_from_the_launch_estimate(store):
    from core.store.records import utcnow

    est = {"cost_usd": 1.2, "cost_range": {"low": 0.9, "mid": 1.2, "high": 1.6},
           "time": {"hours": {"low": 0.5, "mid": 0.75, "high": 1.0}}}
    job = store.create_job(JobRecord(id=new_id("job"), provider="local", status="provisioning", cost_per_hour=1.6,
                                     budget_limit_usd=1.0, estimate=est))
    jm = JobMonitor(job.id)
    jm.refresh(store)
    p = jm.progress()
    assert p.step == 0 and p.eta_s == pytest.approx(0.75 * 3600)
    cost = jm.cost(p)
    assert cost.basis == "estimate" and cost.projected == pytest.approx(1.2) and cost.over_budget
    assert cost.estimate == {"low": 0.9, "mid": 1.2, "high": 1.6}
    # once steps are measured the pace decides, and the launch estimate stays for reference
    store.update_job(job.id, status="running", started_at=utcnow(), total_steps=1000)
    add_steps(store, job, 1, 100)
    jm.refresh(store)
    cost = jm.cost()
    assert cost.basis == "pace" and cost.estimate["high"] == 1.6
    assert cost.projected == pytest.approx(cost.spent + 1.6 * jm.progress().eta_s / 3600)
    # the trainer's own ETA wins over the launch estimate while the monitor has no pace
    store.update_job(job.id, estimate={**est, "eta_seconds": 42.0})
    fresh = JobMonitor(job.id)
    fresh.refresh(store)
    fresh.metrics._recent.clear()
    assert fresh.progress().eta_s == 42.0

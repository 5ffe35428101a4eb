"""Every figure kind of core/charts.py, built the fast way (no validation) and then validated by Plotly: the fast
path must never ship a spec the browser would reject."""

import plotly.graph_objects as go
import pytest

from core.charts import compare_loss_figure, monitor_figures, sample_trend_figure
from core.monitor import JobMonitor, sample_history
from core.store.sqlite import SQLiteStore
from tests.support.monitor_seed import seed_job


@pytest.fixture()
def monitors(tmp_path):
    s = SQLiteStore(tmp_path / "c.db")
    gpu = seed_job(s, steps=900, total_steps=2000, samples=4, rounds=3, budget=2.0, name="gpu")
    s.update_job(gpu.id, estimate={"cost_usd": 1.0, "cost_range": {"low": 0.8, "mid": 1.0, "high": 1.3}})
    cpu = seed_job(s, steps=300, status="completed", gpu=False, name="cpu")
    out = []
    for job in (gpu, cpu):
        jm = JobMonitor(job.id, max_points=500)
        jm.refresh(s)
        out.append(jm)
    return s, out


def validated(fig: go.Figure) -> go.Figure:
    """The same figure through Plotly's validators (raises ValueError on any unknown or ill-typed property)."""
    return go.Figure(fig.to_dict())


def test_every_figure_passes_plotly_validation(monitors):
    s, (gpu, cpu) = monitors
    figs = {**{f"gpu {k}": f for k, f in monitor_figures(gpu).items()},
            **{f"cpu {k}": f for k, f in monitor_figures(cpu).items()}}
    sid = sorted(gpu.predictions.by_sample)[0]
    figs["sample trend"] = sample_trend_figure(sample_history(s, gpu.job_id, sid), sid)
    figs["compare steps"] = compare_loss_figure([gpu, cpu], "step")[0]
    figs["compare tokens"] = compare_loss_figure([gpu, cpu], "tokens")[0]
    expected = {"gpu loss", "gpu learning_rate", "gpu throughput", "gpu grad_norm", "gpu gpu_memory", "gpu gpu_load",
                "gpu cost", "gpu scores", "cpu loss", "cpu cpu", "cpu cost", "sample trend", "compare steps",
                "compare tokens"}
    assert expected <= {k for k, f in figs.items() if f is not None}
    for name, fig in figs.items():
        if fig is None:
            continue
        checked = validated(fig)
        assert len(checked.data) == len(fig.data), name
        assert {t.type for t in checked.data} == {"scatter"}, name  # SVG only: no WebGL context taken
    cost = validated(figs["gpu cost"])
    assert [t.name for t in cost.data] == ["spent", "projection", "launch estimate", "budget"]
    assert "cpu gpu_memory" not in figs and "gpu cpu" not in figs  # CPU charts for CPU jobs, GPU charts for GPU jobs

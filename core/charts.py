"""Plotly figures of the monitor and the run comparison, built from a JobMonitor's downsampled traces.

Every trace is an SVG ``scatter``, never ``scattergl``: browsers give a page a handful of WebGL contexts
(Plotly in Streamlit breaks past about eight), and at a few thousand points per trace SVG is fast enough.
``uirevision`` keeps a person's zoom and hidden series across live refreshes.

The figures are rebuilt on every live refresh, so they are built cheaply: no copy of Plotly's default template
(Streamlit's chart theme styles the figure in the browser anyway) and no per-property validation of the specs
this module writes itself (tests/core/test_charts.py validates every figure kind once, the slow way).
"""

from __future__ import annotations

import base64
from typing import Any, Iterable

import numpy as np
import plotly.graph_objects as go

from core.monitor import CostOutlook, JobMonitor, minmax_indices, on_tokens_axis

HEIGHT = 290
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _figure(title: str, traces: list[dict], *, y_title: str = "", y2_title: str | None = None,
            x_title: str = "step", revision: str = "", shapes: list[dict] | None = None) -> go.Figure | None:
    if not traces:
        return None
    layout: dict[str, Any] = {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        "height": HEIGHT, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "xaxis": {"title": {"text": x_title}}, "yaxis": {"title": {"text": y_title}},
        # Under the plot: above it, the legend would sit beneath Plotly's toolbar.
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.22, "xanchor": "left", "x": 0},
        "hovermode": "x unified", "uirevision": revision,
    }
    if y2_title is not None:
        layout["yaxis2"] = {"title": {"text": y2_title}, "overlaying": "y", "side": "right", "showgrid": False}
    if shapes:
        layout["shapes"] = shapes
    return new_figure(traces, layout)


def new_figure(traces: list[dict], layout: dict[str, Any], *, validate: bool = False) -> go.Figure:
    if not validate:
        try:
            # Plotly's own switch (plotly/io/_templates.py builds its templates this way): a refresh redraws
            # several figures every two seconds, and validating them took most of its time.
            return go.Figure(data=traces, layout={"template": {"layout": {}}, **layout}, _validate=False)
        except (TypeError, ValueError):  # a Plotly without the switch: the same figure, validated
            pass
    return go.Figure(data=traces, layout={"template": "none", **layout})


def typed_array(values: Any) -> dict[str, str] | list:
    """A numeric array in Plotly's typed-array form ({dtype, bdata}), as plotly.py would write it: base64 of
    little-endian int32 (steps) or float64 values. A list of a few points passes through as it is."""
    if isinstance(values, list) and len(values) <= 8:
        return values
    a = np.asarray(values)
    if a.dtype.kind in "iu" and (a.size == 0 or (a.min() >= -(2 ** 31) and a.max() < 2 ** 31)):
        a, code = a.astype("<i4"), "i4"
    else:
        a, code = a.astype("<f8"), "f8"
    return {"dtype": code, "bdata": base64.b64encode(a.tobytes()).decode("ascii")}


def _line(x: Any, y: Any, name: str, *, color: str | None = None, dash: str | None = None, axis2: bool = False,
          markers: bool = False, scale: float = 1.0) -> dict[str, Any]:
    y = np.asarray(y, dtype=np.float64) * scale if scale != 1.0 else y
    line = {"width": 1.6, **({"color": color} if color else {}), **({"dash": dash} if dash else {})}
    return {"type": "scatter", "x": typed_array(x), "y": typed_array(y), "name": name,
            "mode": "lines+markers" if markers else "lines", "line": line, "yaxis": "y2" if axis2 else "y"}


def _trace(jm: JobMonitor, column: str, name: str, **kw: Any) -> list[dict]:
    tr = jm.metrics.traces.get(column)
    if tr is None or not tr.n:
        return []
    x, y = tr.points()
    return [_line(x, y, name, **kw)]


def loss_figure(jm: JobMonitor) -> go.Figure | None:
    traces = _trace(jm, "loss", "train loss", color=PALETTE[0]) + \
        _trace(jm, "eval_loss", "eval loss", color=PALETTE[1], markers=True)
    return _figure("Loss", traces, y_title="loss", revision=jm.job_id)


def learning_rate_figure(jm: JobMonitor) -> go.Figure | None:
    return _figure("Learning rate", _trace(jm, "learning_rate", "learning rate", color=PALETTE[2]),
                   y_title="lr", revision=jm.job_id)


def throughput_figure(jm: JobMonitor) -> go.Figure | None:
    traces = _trace(jm, "samples_per_sec", "samples/s", color=PALETTE[0]) + \
        _trace(jm, "tokens_per_sec", "tokens/s", color=PALETTE[3], axis2=True)
    return _figure("Throughput", traces, y_title="samples/s", y2_title="tokens/s", revision=jm.job_id)


def grad_norm_figure(jm: JobMonitor) -> go.Figure | None:
    return _figure("Gradient norm", _trace(jm, "grad_norm", "grad norm", color=PALETTE[4]),
                   y_title="‖g‖", revision=jm.job_id)


def system_figures(jm: JobMonitor) -> dict[str, go.Figure | None]:
    """GPU memory, utilisation and temperature for GPU jobs; CPU and RAM otherwise."""
    if jm.uses_gpu():
        mem = _trace(jm, "gpu_memory_mb", "used", color=PALETTE[0], scale=1 / 1024) + \
            _trace(jm, "gpu_memory_total_mb", "total", color="#888", dash="dash", scale=1 / 1024)
        load = _trace(jm, "gpu_util_pct", "utilisation %", color=PALETTE[2]) + \
            _trace(jm, "gpu_temp_c", "temperature °C", color=PALETTE[3], axis2=True)
        return {
            "gpu_memory": _figure("GPU memory", mem, y_title="GB", revision=jm.job_id),
            "gpu_load": _figure("GPU utilisation and temperature", load, y_title="%", y2_title="°C",
                                revision=jm.job_id),
        }
    load = _trace(jm, "cpu_pct", "CPU %", color=PALETTE[2]) + \
        _trace(jm, "ram_mb", "RAM GB", color=PALETTE[0], axis2=True, scale=1 / 1024)
    return {"cpu": _figure("CPU and memory (no GPU)", load, y_title="CPU %", y2_title="RAM GB", revision=jm.job_id)}


def cost_figure(jm: JobMonitor, outlook: CostOutlook, total_steps: int | None) -> go.Figure | None:
    traces = _trace(jm, "cost_usd", "spent", color=PALETTE[0])
    if outlook.line:
        (x0, y0), (x1, y1) = outlook.line
        traces.append(_line([x0, x1], [y0, y1], "projection", color=PALETTE[1], dash="dot"))
    end = total_steps or (jm.metrics.last_step or 1)
    if outlook.estimate is not None and outlook.estimate["high"] > 0:  # the launch quote, low to high (not if free)
        low, high = outlook.estimate["low"], outlook.estimate["high"]
        traces.append({"type": "scatter", "x": [0, end, end, 0, 0], "y": [low, low, high, high, low],
                       "name": "launch estimate", "mode": "lines", "fill": "toself", "hoverinfo": "skip",
                       "fillcolor": "rgba(127,127,127,0.15)", "line": {"width": 0, "color": "#999"}})
    if outlook.budget is not None:
        traces.append(_line([0, end], [outlook.budget, outlook.budget], "budget", color=PALETTE[3], dash="dash"))
    if not traces and outlook.spent:
        traces.append(_line([jm.metrics.last_step or 0], [outlook.spent], "spent", color=PALETTE[0], markers=True))
    return _figure("Dollars spent", traces, y_title="USD", revision=jm.job_id)


def scores_figure(jm: JobMonitor) -> go.Figure | None:
    agg = jm.predictions.aggregates()
    if not agg["step"]:
        return None
    steps = np.asarray(agg["step"], dtype=np.int64)
    traces = []
    for key, name, color, axis2 in (("bleu", "BLEU", PALETTE[0], False), ("rouge_l", "ROUGE-L", PALETTE[2], True)):
        y = np.asarray([np.nan if v is None else v for v in agg[key]], dtype=np.float64)
        ok = ~np.isnan(y)
        if ok.any():
            x, yv = steps[ok], y[ok]
            idx = minmax_indices(x, yv, jm.max_points)
            traces.append(_line(x[idx], yv[idx], name, color=color, axis2=axis2, markers=len(idx) <= 60))
    return _figure("Mean prediction scores per round", traces, y_title="BLEU (0-100)", y2_title="ROUGE-L (0-1)",
                   revision=jm.job_id)


def sample_trend_figure(history: list[dict[str, Any]], sample_id: str) -> go.Figure | None:
    steps = [r["step"] for r in history]
    traces = []
    for key, name, color, axis2 in (("bleu", "BLEU", PALETTE[0], False), ("rouge_l", "ROUGE-L", PALETTE[2], True)):
        pts = [(s, r[key]) for s, r in zip(steps, history) if r.get(key) is not None]
        if pts:
            traces.append(_line([p[0] for p in pts], [p[1] for p in pts], name, color=color, axis2=axis2,
                                markers=True))
    return _figure(f"Scores of {sample_id}", traces, y_title="BLEU", y2_title="ROUGE-L", revision=sample_id)


def monitor_figures(jm: JobMonitor) -> dict[str, go.Figure | None]:
    """Every chart of the monitor for one refresh, by key (None where there is nothing to draw yet)."""
    p = jm.progress()
    return {
        "loss": loss_figure(jm),
        "learning_rate": learning_rate_figure(jm),
        "throughput": throughput_figure(jm),
        "grad_norm": grad_norm_figure(jm),
        **system_figures(jm),
        "cost": cost_figure(jm, jm.cost(p), p.total_steps),
        "scores": scores_figure(jm),
    }


def compare_loss_figure(monitors: Iterable[JobMonitor], axis: str = "step",
                        labels: dict[str, str] | None = None) -> tuple[go.Figure | None, list[str]]:
    """Train (solid) and eval (dashed) loss of several runs on one chart, against steps or tokens seen.
    Returns the figure and the jobs left out (no token throughput when the axis is tokens)."""
    traces, skipped = [], []
    for i, jm in enumerate(monitors):
        color = PALETTE[i % len(PALETTE)]
        label = (labels or {}).get(jm.job_id, jm.job_id)
        for column, suffix, dash, markers in (("loss", "train", None, False), ("eval_loss", "eval", "dash", True)):
            tr = jm.metrics.traces[column]
            if not tr.n:
                continue
            x, y = tr.points()
            if axis == "tokens":
                x = on_tokens_axis(jm, x)
                if x is None:
                    if jm.job_id not in skipped:
                        skipped.append(jm.job_id)
                    continue
            traces.append(_line(x, y, f"{label} {suffix}", color=color, dash=dash, markers=markers))
    x_title = "tokens seen" if axis == "tokens" else "step"
    return _figure("Loss", traces, y_title="loss", x_title=x_title, revision="compare"), skipped

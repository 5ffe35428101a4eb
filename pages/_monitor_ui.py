"""What the Jobs, Monitor and Compare screens share: the per-session cache of job monitors and small renderers."""

from __future__ import annotations

import html
from collections import OrderedDict
from typing import Any

import streamlit as st

from pages._shared import store

MAX_CACHED_JOBS = 8  # monitors kept per browser session; each holds a few thousand points per metric

STATUS_ICON = {
    "queued": "⚪", "provisioning": "🔵", "running": "🔵", "completing": "🟣", "completed": "🟢",
    "failed": "🔴", "cancelled": "🟠", "budget_stopped": "🟠",
}


def status_label(status: str) -> str:
    return f"{STATUS_ICON.get(status, '⚪')} {status.replace('_', ' ')}"


def monitor_for(job_id: str) -> Any:
    """The job's JobMonitor for this session: created once, then refreshed incrementally by every rerun."""
    from core.monitor import JobMonitor

    cache: OrderedDict = st.session_state.setdefault("_job_monitors", OrderedDict())
    key = (id(store()), job_id)
    jm = cache.pop(key, None) or JobMonitor(job_id)
    cache[key] = jm
    while len(cache) > MAX_CACHED_JOBS:
        cache.popitem(last=False)
    return jm


def plot(fig: Any, key: str, empty: str = "No data yet.") -> None:
    if fig is None:
        st.caption(empty)
    else:
        st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False})


_DIFF_STYLE = {
    "insert": "background:rgba(46,160,67,.28);border-radius:3px;padding:0 2px",
    "delete": "background:rgba(248,81,73,.25);text-decoration:line-through;border-radius:3px;padding:0 2px",
}


def diff_html(ops: list[tuple[str, str]]) -> str:
    """Word diff as one line of HTML: green for words only the model wrote, struck red for expected words it
    missed. Escaped, and kept in one block so Markdown does not reinterpret the model's text."""
    parts = []
    for op, text in ops:
        t = html.escape(text)
        style = _DIFF_STYLE.get(op)
        parts.append(f'<span class="ftc-{op}" style="{style}">{t}</span>' if style else t)
    return '<div class="ftc-diff">' + " ".join(parts) + "</div>"


def fmt_num(x: float | None, digits: int = 4) -> str:
    if x is None:
        return "—"
    if abs(x) >= 10 ** 6:
        return f"{x / 10 ** 6:,.{max(1, digits - 2)}f}M"
    if abs(x) >= 10 ** digits:
        return f"{x:,.0f}"
    if x != 0 and abs(x) < 10 ** -(digits - 1):
        return f"{x:.{max(1, digits - 2)}e}"
    return f"{x:.{digits}g}"

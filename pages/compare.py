"""Compare runs: two to five jobs, their loss curves on one chart, what differs in their configs, and their final
scores, time and cost."""

from __future__ import annotations

import streamlit as st

from pages._monitor_ui import fmt_num, monitor_for, plot, status_label
from pages._shared import fmt_duration, fmt_money, guard, short_model, store

st.title("Compare runs")


def _range(r: dict | None) -> str:
    if not r:
        return "—"
    return fmt_money(r["mid"]) if r["low"] == r["high"] else f"{fmt_money(r['low'])} – {fmt_money(r['high'])}"


with guard("listing jobs"):
    jobs = store().list_jobs()
    if len(jobs) < 2:
        st.info("Comparing needs at least two jobs.")
        st.stop()
    by_id = {j.id: j for j in jobs}
    picked = st.multiselect(
        "Jobs (two to five)", list(by_id), key="compare_pick", max_selections=5,
        default=[j for j in st.session_state.get("compare_jobs", []) if j in by_id][:5],
        format_func=lambda i: f"{i} · {status_label(by_id[i].status)} · "
                              f"{by_id[i].config_name or short_model(by_id[i].model_name)}",
    )
    st.session_state["compare_jobs"] = picked
    if len(picked) < 2:
        st.caption("Pick at least two jobs.")
        st.stop()

with guard("comparing runs"):
    from core.charts import compare_loss_figure
    from core.monitor import config_diff, run_summary

    monitors = [monitor_for(j) for j in picked]
    for jm in monitors:
        jm.refresh(store())
    labels = {jm.job_id: jm.job.config_name or jm.job_id for jm in monitors}
    if len(set(labels.values())) < len(labels):  # two runs of one config: tell them apart by id
        labels = {j: f"{name} ({j[-6:]})" for j, name in labels.items()}

    axis = st.radio("Loss against", ["step", "tokens"], horizontal=True, key="compare_axis",
                    format_func=lambda a: {"step": "steps", "tokens": "tokens seen"}[a])
    fig, skipped = compare_loss_figure(monitors, axis, labels)
    plot(fig, "compare_loss", "None of these jobs has logged a loss yet.")
    if skipped:
        st.caption("Left out (no token throughput reported): " + ", ".join(labels[j] for j in skipped))

    st.subheader("Results")
    rows = []
    for jm in monitors:
        s = run_summary(jm)
        rows.append({
            "run": labels[jm.job_id], "status": status_label(s["status"]), "model": short_model(s["model"]),
            "method": (s["method"] or "").upper(), "steps": s["steps"], "final loss": s["final loss"],
            "best eval loss": s["best eval loss"], "BLEU": s["BLEU"], "ROUGE-L": s["ROUGE-L"],
            "tokens seen": fmt_num(s["tokens seen"], 3), "time": fmt_duration(s["time_s"]),
            "cost": fmt_money(s["cost_usd"]),
            "estimated at launch": _range(s["estimated_cost_usd"]),
        })
    st.dataframe(rows, hide_index=True, width="stretch", key="compare_results",
                 column_config={k: st.column_config.NumberColumn(format="%.4f")
                                for k in ("final loss", "best eval loss", "ROUGE-L")}
                 | {"BLEU": st.column_config.NumberColumn(format="%.2f")})

    st.subheader("Config differences")
    show_all = st.toggle("Show every setting", key="compare_all_settings")
    diff = config_diff({labels[jm.job_id]: jm.job.config for jm in monitors}, only_different=not show_all)
    if diff:
        st.dataframe(diff, hide_index=True, width="stretch", key="compare_config")
    else:
        st.caption("The configs are identical.")

"""Jobs: every job with its status, provider, model, progress, cost and timing; open one or compare several."""

from __future__ import annotations

import streamlit as st

from pages._monitor_ui import status_label
from pages._shared import elapsed_s, fmt_duration, fmt_money, guard, select_job, short_model, status_badge, store

st.title("Jobs")


def _matches(job, text: str) -> bool:
    hay = " ".join(filter(None, [job.id, job.config_name, job.model_name, job.gpu_type, job.method])).lower()
    return all(word in hay for word in text.lower().split())


with guard("listing jobs"):
    jobs = store().list_jobs()
    if not jobs:
        st.info("No jobs yet. Upload a dataset, set up a model on **Model & training**, then launch it on **Deploy**.")
        st.page_link("pages/training.py", label="Set up a model", icon=":material/tune:")
        st.stop()
    c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
    pick_status = c1.multiselect("Status", sorted({j.status for j in jobs}), key="home_status")
    pick_provider = c2.multiselect("Provider", sorted({j.provider for j in jobs}), key="home_provider")
    pick_model = c3.multiselect("Model", sorted({short_model(j.model_name) for j in jobs}), key="home_model")
    text = c4.text_input("Search", key="home_search", placeholder="job id, config, model, GPU…")
    shown = [j for j in jobs
             if (not pick_status or j.status in pick_status)
             and (not pick_provider or j.provider in pick_provider)
             and (not pick_model or short_model(j.model_name) in pick_model)
             and (not text or _matches(j, text))]
    live = sum(1 for j in jobs if not j.is_terminal)
    st.caption(f"{len(shown)} of {len(jobs)} jobs · {live} live · "
               f"{fmt_money(sum(j.total_cost_usd or 0 for j in jobs))} spent in all")
    rows = [{
        "status": status_label(j.status),
        "job": j.id,
        "config": j.config_name or "—",
        "provider": j.provider,
        "gpu": j.gpu_type or "—",
        "model": short_model(j.model_name),
        "method": (j.method or "").upper(),
        "progress": round(min(1.0, j.progress or 0) * 100),
        "step": f"{j.current_step}/{j.total_steps or '?'}",
        "cost": fmt_money(j.total_cost_usd),
        "started": j.started_at.strftime("%Y-%m-%d %H:%M") if j.started_at else "—",
        "duration": fmt_duration(elapsed_s(j)),
    } for j in shown]
    event = st.dataframe(
        rows, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row", key="home_jobs",
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=100,
                                                                   format="%d%%")},
    )
    picked = [shown[i] for i in (event.selection.rows if event and event.selection else []) if i < len(shown)]
    if not picked:
        st.caption("Select a job to open it in the monitor, or two to five jobs to compare them.")
    elif len(picked) == 1:
        job = picked[0]
        st.markdown(f"**{job.id}** {status_badge(job.status)}" + (f" — {job.reason}" if job.reason else ""))
        if st.button("Open in monitor", icon=":material/monitoring:", key="home_open"):
            select_job(job.id)
            st.switch_page("pages/monitor.py")
    elif len(picked) <= 5:
        if st.button(f"Compare these {len(picked)} jobs", icon=":material/compare_arrows:", key="home_compare"):
            st.session_state["compare_jobs"] = [j.id for j in picked]
            st.switch_page("pages/compare.py")
    else:
        st.caption("Compare takes two to five jobs.")

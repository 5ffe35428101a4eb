"""Jobs: every job with its status, provider, model, progress, cost and timing."""

from __future__ import annotations

import streamlit as st

from pages._shared import elapsed_s, fmt_duration, fmt_money, guard, select_job, short_model, status_badge, store

st.title("Jobs")

with guard("listing jobs"):
    jobs = store().list_jobs()
    if not jobs:
        st.info("No jobs yet. Upload a dataset, set up a model on **Model & training**, then launch it on **Deploy**.")
        st.page_link("pages/training.py", label="Set up a model", icon=":material/tune:")
    else:
        statuses = sorted({j.status for j in jobs})
        providers = sorted({j.provider for j in jobs})
        c1, c2 = st.columns(2)
        pick_status = c1.multiselect("Status", statuses, key="home_status")
        pick_provider = c2.multiselect("Provider", providers, key="home_provider")
        shown = [j for j in jobs if (not pick_status or j.status in pick_status)
                 and (not pick_provider or j.provider in pick_provider)]
        rows = [{
            "job": j.id,
            "status": j.status,
            "provider": j.provider,
            "model": short_model(j.model_name),
            "method": (j.method or "").upper(),
            "progress": round(j.progress * 100),
            "cost": fmt_money(j.total_cost_usd),
            "started": j.started_at.strftime("%Y-%m-%d %H:%M") if j.started_at else "—",
            "duration": fmt_duration(elapsed_s(j)),
        } for j in shown]
        event = st.dataframe(
            rows, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
            key="home_jobs",
            column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=100,
                                                                       format="%d%%")},
        )
        sel = event.selection.rows if event and event.selection else []
        if sel:
            job = shown[sel[0]]
            st.markdown(f"**{job.id}** {status_badge(job.status)}" + (f" — {job.reason}" if job.reason else ""))
            if st.button("Open in monitor", icon=":material/monitoring:"):
                select_job(job.id)
                st.switch_page("pages/monitor.py")

"""Monitor one job live: status, progress, loss and learning-rate charts, predictions, cancel."""

from __future__ import annotations

import streamlit as st

from core import lifecycle as L
from pages._shared import (
    elapsed_s,
    fmt_duration,
    fmt_money,
    guard,
    select_job,
    service,
    short_model,
    status_badge,
    store,
)

st.title("Monitor")

with guard("listing jobs"):
    jobs = store().list_jobs()
    if not jobs:
        st.info("No jobs yet; launch one on **Deploy**.")
        st.stop()
    ids = [j.id for j in jobs]
    wanted = st.session_state.get("monitor_job")
    idx = ids.index(wanted) if wanted in ids else 0
    by_id = {j.id: j for j in jobs}
    job_id = st.selectbox("Job", ids, index=idx, key="monitor_pick",
                          format_func=lambda i: f"{i} · {by_id[i].status} · {short_model(by_id[i].model_name)}")
    select_job(job_id)


def _charts(job_id: str) -> None:
    import plotly.graph_objects as go

    rows = store().get_metrics(job_id)
    loss = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
    eval_loss = [(r["step"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    lr = [(r["step"], r["learning_rate"]) for r in rows if r.get("learning_rate") is not None]
    c1, c2 = st.columns(2)
    with c1:
        fig = go.Figure()
        if loss:
            fig.add_trace(go.Scatter(x=[s for s, _ in loss], y=[v for _, v in loss], name="train loss"))
        if eval_loss:
            fig.add_trace(go.Scatter(x=[s for s, _ in eval_loss], y=[v for _, v in eval_loss], name="eval loss",
                                     mode="lines+markers"))
        fig.update_layout(title="Loss", height=300, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="step")
        st.plotly_chart(fig, width="stretch", key="chart_loss")
    with c2:
        fig = go.Figure()
        if lr:
            fig.add_trace(go.Scatter(x=[s for s, _ in lr], y=[v for _, v in lr], name="learning rate"))
        fig.update_layout(title="Learning rate", height=300, margin=dict(l=10, r=10, t=40, b=10), xaxis_title="step")
        st.plotly_chart(fig, width="stretch", key="chart_lr")


def _predictions(job_id: str) -> None:
    rows = store().get_predictions(job_id)
    if not rows:
        st.caption("No predictions yet.")
        return
    steps = sorted({r["step"] for r in rows})
    means = []
    for s in steps:
        at = [r for r in rows if r["step"] == s]
        means.append({"step": s, "bleu": round(sum(r["bleu"] or 0 for r in at) / len(at), 2),
                      "rouge_l": round(sum(r["rouge_l"] or 0 for r in at) / len(at), 3)})
    st.markdown(f"**Predictions** · {len(rows)} generated · latest step {steps[-1]} · "
                f"BLEU {means[-1]['bleu']} · ROUGE-L {means[-1]['rouge_l']}")
    latest = [r for r in rows if r["step"] == steps[-1]]
    st.dataframe([{"sample": r["sample_id"], "prompt": r["prompt"], "generated": r["generated_text"],
                   "expected": r["expected_text"], "bleu": r["bleu"], "rouge_l": r["rouge_l"]} for r in latest],
                 hide_index=True, width="stretch", key="pred_table")


@st.fragment(run_every=2.0)
def live_view() -> None:
    with guard("refreshing the job"):
        job = store().get_job(st.session_state["monitor_job"])
        svc = service()
        head = st.container()
        with head:
            c = st.columns(5)
            c[0].markdown(f"**Status**\n\n{status_badge(job.status)}")
            c[1].metric("Provider", job.provider, help=job.gpu_type or None)
            c[2].metric("Elapsed", fmt_duration(elapsed_s(job)))
            c[3].metric("Step", f"{job.current_step}/{job.total_steps or '?'}")
            spent = fmt_money(job.total_cost_usd) + (f" / {fmt_money(job.budget_limit_usd)}" if job.budget_limit_usd else "")
            c[4].metric("Cost", spent)
            st.progress(min(1.0, max(0.0, job.progress)),
                        text=f"epoch {job.epoch or 0:.2f} · {job.progress * 100:.0f}%")
            if job.reason:
                (st.error if job.status == L.FAILED else st.info)(job.reason)
            if svc.is_stale(job):
                st.warning("No heartbeat from the trainer for a while; the machine may be stuck.")
            for e in store().get_errors(job.id):
                with st.expander(f"Error: {e.error_type} — {e.error_message[:120]}"):
                    if e.hint:
                        st.markdown(f"**What to do:** {e.hint}")
                    if e.traceback:
                        st.code(e.traceback[-4000:], language="text")
        _charts(job.id)
        _predictions(job.id)
        if job.status in L.LIVE:
            st.session_state["monitor_live"] = True
        elif st.session_state.get("monitor_live"):
            st.session_state["monitor_live"] = False
            st.rerun()  # the job ended: a full rerun drops the cancel button


live_view()

with guard("reading the job"):
    job = store().get_job(st.session_state["monitor_job"])
    if job.status in L.LIVE:
        if job.cancel_requested:
            st.caption("Cancel requested; the trainer is saving a checkpoint and stopping.")
        elif st.toggle("I want to cancel this job", key="monitor_cancel_confirm"):
            if st.button("Cancel job (saves a checkpoint first)", type="primary", key="monitor_cancel"):
                service().cancel(job.id)
                st.toast("Cancel requested.")
                st.rerun()
    if job.log_path:
        with st.expander("Log tail"):
            from core.providers.local import tail_file
            from pathlib import Path

            st.code(tail_file(Path(job.log_path), 60) or "(empty)", language="text")
    if job.status == L.COMPLETED:
        st.page_link("pages/models.py", label="See the model in the registry", icon=":material/inventory_2:")

"""Monitor one job live: header, training / system / cost charts, the predictions browser, log and errors, stop.

The live part is a fragment that reruns every REFRESH_S seconds while the job is live. Its JobMonitor (kept per
job in session state) reads only the rows written since the previous refresh, so a 200,000-step run redraws as
fast as a short one; see core/monitor.py.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import streamlit as st

from core import lifecycle as L
from pages._monitor_ui import diff_html, fmt_num, monitor_for, plot
from pages._estimate_panel import render_job_estimate
from pages._shared import fmt_duration, fmt_money, guard, select_job, service, short_model, status_badge, store

REFRESH_S = 2.0

st.title("Monitor")

with guard("listing jobs"):
    jobs = store().list_jobs()
    if not jobs:
        st.info("No jobs yet; launch one on **Deploy**.")
        st.stop()
    by_id = {j.id: j for j in jobs}
    ids = list(by_id)
    wanted = st.session_state.get("monitor_job")
    # No status in the label: the list is read once per full run, the header below is the live status.
    job_id = st.selectbox("Job", ids, index=ids.index(wanted) if wanted in by_id else 0, key="monitor_pick",
                          format_func=lambda i: f"{i} · {by_id[i].config_name or short_model(by_id[i].model_name)} · "
                                                f"{by_id[i].provider}")
    select_job(job_id)
    opened_live = by_id[job_id].status in L.LIVE


# -- header -----------------------------------------------------------------------------------------------------

def _epochs(p) -> str:
    if p.epochs_total is None:
        return "?"
    value = f"{p.epochs_total:g}" if float(p.epochs_total).is_integer() else f"{p.epochs_total:.2f}"
    return ("≈" if p.epochs_estimated else "") + value


def header(jm) -> None:
    job = jm.job
    p = jm.progress()
    cost = jm.cost(p)
    gpu = f"{job.gpu_count}× {job.gpu_type}" if job.gpu_type and job.gpu_count > 1 else (job.gpu_type or "no GPU")
    rate = f" · {fmt_money(job.cost_per_hour)}/h" if job.cost_per_hour else ""
    pod = f" `{job.provider_ref}`" if job.provider_ref and job.provider != "local" else ""
    st.markdown(f"{status_badge(job.status)} &nbsp; **{job.provider}**{pod} · {gpu}{rate} · "
                f"{job.config_name or short_model(job.model_name)}")
    st.progress(p.fraction, text=f"epoch {p.epoch or 0:.2f} / {_epochs(p)} · step {p.step} / {p.total_steps or '?'} · "
                                 f"{p.fraction * 100:.0f}%")
    latest = jm.metrics.latest
    m = st.columns(5)
    m[0].metric("Step", f"{p.step} / {p.total_steps or '?'}")
    m[1].metric("Elapsed", fmt_duration(p.elapsed_s))
    m[2].metric("ETA", "—" if p.eta_s is None else ("done" if job.is_terminal else fmt_duration(p.eta_s)),
                help=f"{p.steps_per_s:.2f} steps/s recently" if p.steps_per_s else None)
    m[3].metric(f"Spent (budget {fmt_money(cost.budget)})" if cost.budget else "Spent (no budget)",
                fmt_money(cost.spent),
                help=f"{fmt_money(max(0.0, cost.budget - cost.spent))} of the budget left" if cost.budget else None)
    m[4].metric("Projected at the end", fmt_money(cost.projected), help=_projection_help(cost))
    loss = jm.metrics.traces["loss"].last()
    delta = None
    if loss and jm.metrics.previous_loss is not None:
        delta = f"{loss[1] - jm.metrics.previous_loss:+.4f}"
    m = st.columns(5)
    m[0].metric("Loss", fmt_num(loss[1]) if loss else "—", delta=delta, delta_color="inverse")
    m[1].metric("Eval loss", fmt_num(latest.get("eval_loss")))
    m[2].metric("Learning rate", fmt_num(latest.get("learning_rate"), 3))
    m[3].metric("Samples/s", fmt_num(latest.get("samples_per_sec"), 3))
    m[4].metric("Tokens/s", fmt_num(latest.get("tokens_per_sec"), 3))
    m = st.columns(5)
    if jm.uses_gpu() and latest.get("gpu_memory_mb") is not None:
        used, total = latest["gpu_memory_mb"] / 1024, (latest.get("gpu_memory_total_mb") or 0) / 1024
        m[0].metric(f"GPU memory (of {total:.0f} GB)" if total else "GPU memory", f"{used:.1f} GB",
                    help=f"{used / total * 100:.0f}% used" if total else None)
        m[1].metric("GPU utilisation", f"{latest['gpu_util_pct']:.0f}%" if "gpu_util_pct" in latest else "—",
                    help=f"{latest['gpu_temp_c']:.0f} °C" if "gpu_temp_c" in latest else None)
    else:
        m[0].metric("CPU", f"{latest['cpu_pct']:.0f}%" if latest.get("cpu_pct") is not None else "—")
        m[1].metric("RAM", f"{latest['ram_mb'] / 1024:.1f} GB" if latest.get("ram_mb") is not None else "—")
    preds = jm.predictions
    agg = preds.aggregates()
    m[2].metric("BLEU", fmt_num(agg["bleu"][-1], 3) if agg["step"] else "—",
                help=f"Mean over the samples of the latest round (step {agg['step'][-1]})" if agg["step"] else None)
    m[3].metric("ROUGE-L", fmt_num(agg["rouge_l"][-1], 3) if agg["step"] else "—")
    ago = None
    if preds.latest_at:
        ago = f"the last {fmt_duration((datetime.now(timezone.utc) - preds.latest_at).total_seconds())} ago"
    m[4].metric("Predictions", preds.count, help=ago)
    if job.reason:
        (st.error if job.status == L.FAILED else st.info)(job.reason)
    if service().is_stale(job):
        st.warning("No heartbeat from the trainer for a while; the machine may be stuck.")
    if cost.over_budget and cost.budget_step is not None:
        st.warning(f"At this pace the ${cost.budget:.2f} budget runs out near step {cost.budget_step}, before the "
                   "end; the trainer will then save a checkpoint and stop.")
    elif cost.over_budget and cost.basis == "estimate":
        st.warning(f"The launch estimate ({fmt_money(cost.projected)}) is over the {fmt_money(cost.budget)} budget; "
                   "the trainer will save a checkpoint and stop when the budget is spent.")
    render_job_estimate(job)  # a price the provider reported differently, and once it ended, the estimate's error
    for e in jm.error_rows():
        st.error(f"**{e['type']}**: {e['message']}")
        if e["hint"]:
            st.markdown(f"**What to do:** {e['hint']}")
        if e["traceback"]:
            with st.expander("Traceback"):
                st.code(e["traceback"][-4000:], language="text")


def _projection_help(cost) -> str | None:
    basis = {"pace": "At the pace of the last minutes", "progress": "Spent so far over the share of steps done",
             "final": "The run has ended", "estimate": "The launch estimate: no step measured yet"}.get(cost.basis)
    if basis and cost.estimate and cost.basis != "estimate":
        basis += (f" · estimated at launch: {fmt_money(cost.estimate['low'])} – {fmt_money(cost.estimate['high'])}")
    return basis


# -- tabs -------------------------------------------------------------------------------------------------------

def training_tab(figs: dict) -> None:
    a, b = st.columns(2)
    with a:
        plot(figs["loss"], "chart_loss", "No loss logged yet.")
    with b:
        plot(figs["learning_rate"], "chart_lr", "No learning rate logged yet.")
    a, b = st.columns(2)
    with a:
        plot(figs["throughput"], "chart_throughput", "No throughput logged yet.")
    with b:
        plot(figs["grad_norm"], "chart_grad_norm", "No gradient norm logged yet.")


def system_tab(jm, figs: dict) -> None:
    charts = [(k, figs[k]) for k in ("gpu_memory", "gpu_load", "cpu") if k in figs] + [("cost", figs["cost"])]
    for i in range(0, len(charts), 2):
        for col, (key, fig) in zip(st.columns(2), charts[i: i + 2]):
            with col:
                plot(fig, f"chart_{key}", "No cost recorded yet." if key == "cost" else "No system samples yet.")
                if key == "cost":
                    cost = jm.cost()
                    if cost.projected is not None and not jm.job.is_terminal:
                        st.caption(f"Projected at the end: {fmt_money(cost.projected)}"
                                   + (f" of a {fmt_money(cost.budget)} budget" if cost.budget else " (no budget set)"))


def predictions_tab(jm, figs: dict) -> None:
    preds = jm.predictions
    if not preds.count:
        st.caption("No predictions yet: they are generated at the frequency set under Predictions in the config.")
        return
    since = ""
    if preds.latest_at:
        since = f" · last {fmt_duration((datetime.now(timezone.utc) - preds.latest_at).total_seconds())} ago"
    st.caption(f"{preds.count} predictions for {len(preds.by_sample)} samples over {len(preds.step_sums)} rounds"
               f"{since}")
    plot(figs["scores"], "chart_scores")
    metric = st.radio("Rank samples by", ["rouge_l", "bleu"], horizontal=True, key="monitor_rank_metric",
                      format_func=lambda m: {"rouge_l": "ROUGE-L", "bleu": "BLEU"}[m])
    ranks = preds.rankings(metric)
    cols = st.columns(3)
    for col, (key, title) in zip(cols, (("worst", "Worst"), ("best", "Best"), ("regressed", "Most regressed"))):
        with col:
            st.markdown(f"**{title}**")
            rows = [{"sample": r["sample_id"], "latest": round(r["latest"], 3), "peak": round(r["peak"], 3),
                     "drop": round(r["drop"], 3)} for r in ranks[key]]
            if rows:
                st.dataframe(rows, hide_index=True, width="stretch", key=f"rank_{key}")
            else:
                st.caption("None.")
    sample_browser(jm, ranks)


def sample_browser(jm, ranks: dict) -> None:
    from core.charts import sample_trend_figure
    from core.monitor import sample_history

    samples = sorted(jm.predictions.by_sample)
    # Opens on the most regressed sample. The default is kept while the samples stay the same (a changing index
    # would reset the person's pick), and passed as index: a value set through session state does not survive
    # the fragment's timed reruns.
    default = st.session_state.get("_monitor_sample_default")
    if default not in samples:
        default = (ranks["regressed"] or ranks["worst"] or [{"sample_id": samples[0]}])[0]["sample_id"]
        st.session_state["_monitor_sample_default"] = default
    sid = st.selectbox("Sample", samples, index=samples.index(default), key="monitor_sample")
    # One query per sample and prediction round, not one per refresh.
    cache_key = (jm.job_id, sid, jm.predictions.last_step, jm.predictions.count)
    if st.session_state.get("_sample_cache", (None,))[0] != cache_key:
        st.session_state["_sample_cache"] = (cache_key, sample_history(store(), jm.job_id, sid))
    history = st.session_state["_sample_cache"][1]
    if not history:
        return
    meta = history[-1]
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Prompt**")
        st.code(meta.get("prompt") or "", language="text", wrap_lines=True)
        st.markdown("**Expected**")
        st.code(meta.get("expected_text") or "(no reference answer)", language="text", wrap_lines=True)
    with right:
        plot(sample_trend_figure(history, sid), "chart_sample_trend")
    st.markdown("**Generations across rounds** (green: only in the generation; struck red: expected but missing)")
    # One element for all the rounds shown: a refresh sends one block, not two per round.
    blocks = []
    for r in reversed(history[-20:]):
        scores = f"BLEU {fmt_num(r.get('bleu'), 3)} · ROUGE-L {fmt_num(r.get('rouge_l'), 3)}"
        epoch = f" · epoch {r['epoch']:.2f}" if r.get("epoch") is not None else ""
        blocks.append(f'<div class="ftc-round">step <b>{r["step"]}</b>{epoch} · {scores}</div>{diff_html(r["diff"])}')
    st.markdown('<div style="margin-bottom:.6em"></div>'.join(blocks), unsafe_allow_html=True)
    if len(history) > 20:
        with st.expander(f"All {len(history)} rounds"):
            st.dataframe([{"step": r["step"], "generated": r.get("generated_text"), "bleu": r.get("bleu"),
                           "rouge_l": r.get("rouge_l")} for r in history], hide_index=True, width="stretch",
                         key="sample_all_rounds")


def log_tab(jm) -> None:
    job = jm.job
    if job.log_path:
        from core.providers.local import tail_file

        st.code(tail_file(Path(job.log_path), 80) or "(empty)", language="text")
    elif job.provider_ref:
        if st.button("Fetch the latest log lines", key="monitor_fetch_log"):
            st.session_state["_log_tail"] = (job.id, service().provider(job.provider).logs(job.provider_ref, 80))
        held = st.session_state.get("_log_tail")
        if held and held[0] == job.id:
            st.code(held[1] or "(empty)", language="text")
    else:
        st.caption("No log yet: the machine has not started.")


# -- the live part ----------------------------------------------------------------------------------------------

def live_view() -> None:
    from core.charts import monitor_figures

    with guard("refreshing the job"):
        jm = monitor_for(job_id)
        jm.refresh(store())
        if opened_live and jm.job.is_terminal:
            st.rerun(scope="app")  # the job ended: a full run stops the timer and drops the stop buttons
        header(jm)
        figs = monitor_figures(jm)
        training, system, predictions, log = st.tabs(["Training", "System & cost", "Predictions", "Log"])
        with training:
            training_tab(figs)
        with system:
            system_tab(jm, figs)
        with predictions:
            predictions_tab(jm, figs)
        with log:
            log_tab(jm)


st.fragment(run_every=REFRESH_S if opened_live else None)(live_view)()


def finished_model_links(job) -> None:
    """From a finished job to the model it registered: the Models and Playground screens open on that model
    (each keeps its own last pick, so the hand-off names the model rather than relying on the job)."""
    model = store().find_model_by_job(job.id)
    if model is None:
        if job.status == L.COMPLETED:
            st.caption("The model is being registered; it will appear on **Models** in a moment.")
        return
    row = st.container(horizontal=True)
    if row.button("See the model in the registry", icon=":material/inventory_2:", key="monitor_to_models",
                  help=model.name):
        st.session_state["models_selected"] = model.id
        st.switch_page("pages/models.py")
    if row.button("Try it in the Playground", icon=":material/chat:", key="monitor_to_playground"):
        st.session_state["playground_model"] = model.id
        st.switch_page("pages/playground.py")


def resume_control(job) -> None:
    """A stopped job continues from its latest checkpoint (JobService.resume says why when it cannot)."""
    if job.status not in (L.FAILED, L.CANCELLED, L.BUDGET_STOPPED):
        return
    row = st.container(horizontal=True, vertical_alignment="bottom")
    budget = None
    if job.status == L.BUDGET_STOPPED:
        budget = row.number_input("New budget (USD)", min_value=0.0, step=1.0, key="monitor_resume_budget",
                                  value=float(max(job.budget_limit_usd or 0.0, (job.total_cost_usd or 0.0) * 2)))
    if row.button("Resume from the last checkpoint", icon=":material/play_arrow:", key="monitor_resume"):
        service().resume(job.id, budget_usd=budget)
        st.toast("Resumed: the job is queued and continues from its checkpoint.")
        st.rerun()


# -- stop and cancel --------------------------------------------------------------------------------------------

ACTIONS = {
    "stop": ("Stop and keep checkpoint", "The trainer saves a checkpoint and the adapter trained so far, then "
             "stops; the machine is released.", True),
    "cancel": ("Cancel now", "The machine is released at once; nothing trained so far is kept.", False),
}

with guard("stopping the job"):
    job = store().get_job(job_id)
    if job.status in L.LIVE:
        if job.cancel_requested:
            st.caption("Stop requested; the trainer is saving a checkpoint and stopping.")
        else:
            pending = st.session_state.get("monitor_confirm")
            if pending and pending[1] == job.id:
                label, what, keep = ACTIONS[pending[0]]
                st.warning(f"**{label}?** {what}")
                row = st.container(horizontal=True)
                if row.button(f"Yes, {label.lower()}", type="primary", key="monitor_confirm_yes"):
                    st.session_state.pop("monitor_confirm", None)
                    service().cancel(job.id, keep_checkpoint=keep)
                    st.toast("Stop requested." if keep else "Job cancelled.")
                    st.rerun()
                if row.button("Keep it running", key="monitor_confirm_no"):
                    st.session_state.pop("monitor_confirm", None)
                    st.rerun()
            else:
                row = st.container(horizontal=True)
                for action in ACTIONS:
                    if row.button(ACTIONS[action][0], key=f"monitor_{action}",
                                  type="secondary", icon=":material/stop_circle:" if action == "stop" else
                                  ":material/cancel:"):
                        st.session_state["monitor_confirm"] = (action, job.id)
                        st.rerun()
    else:
        finished_model_links(job)
        resume_control(job)
    st.page_link("pages/compare.py", label="Compare with other runs", icon=":material/compare_arrows:")

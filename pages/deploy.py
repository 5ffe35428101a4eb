"""Deploy: pick a saved config, a provider and a GPU, set the budget, launch, and follow the launch."""

from __future__ import annotations

import streamlit as st

from core.config import parse_config
from core.errors import ConsoleError
from pages._estimate_panel import render_estimate, render_job_estimate
from pages._shared import guard, select_job, service, status_badge, store

st.title("Deploy")

PLANNED = {
    "runpod": "RunPod pods",
    "kaggle": "Kaggle notebooks (free weekly GPU quota)",
    "lambda": "Lambda Cloud instances",
    "huggingface": "Hugging Face Jobs and Spaces",
    "skypilot": "Any cloud or Kubernetes through SkyPilot",
}

with guard("loading configs"):
    configs = store().list_configs()
    if not configs:
        st.info("Save a config on **Model & training** first.")
        st.page_link("pages/training.py", label="Model & training", icon=":material/tune:")
        st.stop()
    by_id = {c.id: c for c in configs}
    default_id = st.session_state.get("deploy_config_id")
    ids = list(by_id)
    idx = ids.index(default_id) if default_id in by_id else 0
    cfg_id = st.selectbox("Config", ids, index=idx, format_func=lambda i: f"{by_id[i].name} ({by_id[i].method}, "
                          f"{by_id[i].model_name})", key="deploy_cfg")
    cfg = parse_config(by_id[cfg_id].config)

from core.providers.base import provider_names  # noqa: E402 - after the config so errors above show first

with guard("listing providers"):
    available = provider_names()
    choices = available + [p for p in PLANNED if p not in available]
    provider = st.radio(
        "Provider", choices, horizontal=True, key="deploy_provider",
        format_func=lambda p: p if p in available else f"{p} (not available yet)",
    )
    if provider not in available:
        st.info(f"{PLANNED.get(provider, provider)}: this provider is not available in this build yet.")
        st.stop()
    svc = service()
    prov = svc.provider(provider)
    unsupported = {k: v for k, v in prov.capabilities.items() if v}
    if unsupported:
        with st.expander("What this provider cannot do"):
            for feature, reason in unsupported.items():
                st.markdown(f"- ~~{feature.replace('_', ' ')}~~ — {reason}")
    offers = prov.offers()
    labels = [f"{o.gpu_type} · {o.vram_gb:g} GB · " + ("free" if not o.price_per_hour else f"${o.price_per_hour:.2f}/h")
              for o in offers]
    pick = st.selectbox("GPU", range(len(offers)), format_func=lambda i: labels[i], key="deploy_gpu") if offers else None
    budget = st.number_input("Budget (USD)", min_value=0.0, value=float(cfg.budget.max_usd or 0.0), step=1.0,
                             help="0 means no limit; the trainer stops and saves a checkpoint before passing it",
                             key="deploy_budget")
    chosen = offers[pick] if offers and pick is not None else None
    render_estimate(cfg, provider=provider, gpu=chosen.gpu_type if chosen else None,
                    price_per_hour=chosen.price_per_hour if chosen else None, budget_usd=budget or None)

if st.button("Launch", type="primary", icon=":material/rocket_launch:", key="deploy_launch"):
    with guard("launching"):
        offer = offers[pick] if offers and pick is not None else None
        job = svc.deploy(cfg, provider=provider, gpu_type=offer.gpu_type if offer else None,
                         budget_usd=budget or None, config_id=cfg_id,
                         cost_per_hour=offer.price_per_hour if offer else None)
        st.session_state["deploy_last_job"] = job.id
        select_job(job.id)

last = st.session_state.get("deploy_last_job")
if last:
    @st.fragment(run_every=2.0)
    def launch_progress() -> None:
        from core.jobs import deployment_response

        try:
            job = store().get_job(last)
        except ConsoleError as exc:
            st.error(str(exc))
            return
        st.markdown(f"**{job.id}** {status_badge(job.status)}" + (f" — {job.reason}" if job.reason else ""))
        render_job_estimate(job)
        if job.total_steps:
            st.progress(min(1.0, job.progress), text=f"step {job.current_step}/{job.total_steps}")
        with st.expander("Deployment response"):
            st.json(deployment_response(job))

    launch_progress()
    if st.button("Open in monitor", icon=":material/monitoring:", key="deploy_open_monitor"):
        select_job(last)
        st.switch_page("pages/monitor.py")

"""Deploy: pick a saved config, a provider (cards with what each can and cannot do), check its credentials with a
real call, pick a GPU (VRAM, price, fit), set the budget, launch, and follow the launch to its DeploymentResponse."""

from __future__ import annotations

import hashlib
import types
import typing
from typing import Any, Literal

import streamlit as st

from core.config import parse_config
from core.errors import ConsoleError
from pages._estimate_panel import render_estimate, render_job_estimate
from pages._shared import fmt_duration, fmt_money, guard, select_job, service, status_badge, store

st.title("Deploy")

PROVIDERS = {
    "local": "Your own CPU or GPUs; nothing to pay.",
    "runpod": "On-demand GPU pods, community or secure cloud.",
    "kaggle": "Free notebooks with a weekly GPU quota.",
    "lambda": "Lambda Cloud GPU instances.",
    "huggingface": "Hugging Face Jobs and Spaces hardware.",
    "skypilot": "Any cloud or Kubernetes cluster, several nodes.",
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

from core.providers.base import CAPABILITY_LABELS, provider_class, provider_names  # noqa: E402

# -- provider cards ---------------------------------------------------------------------------------------------

available = provider_names()
names = list(dict.fromkeys(["local", *available, *PROVIDERS]))
if st.session_state.get("deploy_provider") not in available:
    st.session_state["deploy_provider"] = "local" if "local" in available else available[0]
provider = st.session_state["deploy_provider"]

st.subheader("Where to train")
for row in range(0, len(names), 3):
    cols = st.columns(3)
    for col, name in zip(cols, names[row:row + 3]):
        with col.container(border=True):
            if name not in available:
                st.markdown(f"**{name}** :gray-badge[not in this build]")
                st.caption(PROVIDERS.get(name, ""))
                continue
            cls = provider_class(name)
            chosen = name == provider
            st.markdown(f"**{cls.display_name}**" + (" :green-badge[selected]" if chosen else ""))
            st.caption(PROVIDERS.get(name, ""))
            lines = []
            for feature, reason in cls.capabilities.items():
                label = CAPABILITY_LABELS.get(feature, feature.replace("_", " "))
                lines.append(f":green[✓] {label}" if reason is None else f":gray[~~{label}~~ — {reason}]")
            st.markdown("  \n".join(lines))
            st.caption(f"Reports through: {cls.report_channel}")
            if not chosen and st.button("Use", key=f"deploy_use_{name}", width="stretch"):
                st.session_state["deploy_provider"] = name
                st.rerun()

svc = service()
prov_cls = provider_class(provider)

# -- credentials ----------------------------------------------------------------------------------------------------

from core.credentials import ENV_VARS, mask, set_session_credentials  # noqa: E402

fields = ENV_VARS.get(provider, {})
checked = st.session_state.setdefault("deploy_checked", {})
# In team mode keys are each user's own, encrypted in the team database; a key typed here is saved there, never in
# this process (which serves every signed-in user) and never read from the server's environment.
team = bool(getattr(store(), "team_mode", False))
if fields:
    st.subheader("Credentials")
    have = svc.credentials(provider)
    cols = st.columns(len(fields))
    typed = {}
    where = ("Stored encrypted for you alone (see **Account**); typed here it replaces your saved key." if team else
             "Read from ${var} or .streamlit/secrets.toml [{provider}]; typed here it stays in this process only, "
             "never in the database or a log.")
    for col, (field, var) in zip(cols, fields.items()):
        typed[field] = col.text_input(
            f"{field.replace('_', ' ')} ({var})", type="password", key=f"deploy_cred_{provider}_{field}",
            placeholder=mask(have.get(field)) or "not set", help=where.format(var=var, provider=provider))
    if any(v and v != have.get(k) for k, v in typed.items()):  # a new key, not the one already in use
        values = {**{k: v for k, v in have.items() if k in fields}, **{k: v for k, v in typed.items() if v}}
        if team:
            with guard("saving your key"):
                svc.vault.save(provider, values)
        else:
            set_session_credentials(provider, values)
        svc.reset_provider(provider)
    if st.button("Check credentials", key="deploy_check", icon=":material/key:"):
        with guard("checking credentials"):
            svc.reset_provider(provider)
            checked[provider] = svc.provider(provider).validate_credentials()
    if provider in checked:
        facts = ", ".join(f"{k}: {v}" for k, v in checked[provider].items() if v not in (None, "", []))
        st.success(f"Credentials accepted ({facts}).")

# -- GPU ---------------------------------------------------------------------------------------------------------


@st.cache_data(ttl=120, show_spinner="Reading live GPU offers…")
def _offers(name: str, cred_fingerprint: str) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [asdict(o) for o in svc.provider(name).offers()]


st.subheader("GPU")
offers: list[dict[str, Any]] = []
with guard("reading GPU offers"):
    # Offers are cached per credentials, so a new key is not answered with the old account's offers.
    fingerprint = hashlib.sha256("\0".join(sorted(svc.credentials(provider).values())).encode()).hexdigest()
    offers = _offers(provider, fingerprint)
if not offers:
    st.warning("This provider offers no GPU right now (or its credentials are missing).")
    st.stop()


def _offer_label(i: int) -> str:
    o = offers[i]
    price = "free" if not o["price_per_hour"] else f"${o['price_per_hour']:.2f}/h per GPU"
    where = " · ".join(x for x in (o.get("cloud") and o["cloud"].lower(), o.get("region")) if x)
    state = "" if o.get("available") is not False else " · no capacity now"
    return f"{o['gpu_type']} · {o['vram_gb']:g} GB · {price}" + (f" · {where}" if where else "") + state


pick = st.selectbox("GPU", range(len(offers)), format_func=_offer_label, key=f"deploy_gpu_{provider}")
offer = offers[pick]
c1, c2 = st.columns(2)
count = c1.number_input("GPUs", min_value=1, max_value=max(1, int(offer.get("max_count") or 1)), value=1,
                        key=f"deploy_count_{provider}",
                        disabled=prov_cls.capabilities.get("multi_gpu") is not None)
budget = c2.number_input("Budget (USD)", min_value=0.0, value=float(cfg.budget.max_usd or 0.0), step=1.0,
                         key="deploy_budget",
                         help="0 means no limit. The trainer stops and saves a checkpoint before passing it; on "
                              "providers that enforce it, the machine also stops itself at the deadline.")
price = (offer["price_per_hour"] or 0.0) * count
m1, m2 = st.columns(2)
m1.metric("Price", fmt_money(price) + "/h" if price else "free")
if budget and price:
    hours = budget / price
    m2.metric("The budget buys", fmt_duration(hours * 3600))
    if prov_cls.capabilities.get("budget_enforced_by_provider") is None:
        st.caption(f"The machine stops itself after {fmt_duration(hours * 3600)} even if this console is closed.")
render_estimate(cfg, provider=provider, gpu=offer["gpu_type"], gpu_count=int(count), price_per_hour=price or None,
                budget_usd=budget or None)

# -- provider settings ---------------------------------------------------------------------------------------------


def _params_form(params_cls: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """Simple fields of the provider's pydantic params as widgets (lists and maps keep their defaults)."""
    out: dict[str, Any] = {}
    for name, info in params_cls.model_fields.items():
        ann = info.annotation
        default = defaults.get(name, info.default if info.default is not None else None)
        key = f"deploy_p_{provider}_{name}"
        label = name.replace("_", " ")
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        core_t = args[0] if typing.get_origin(ann) in (typing.Union, types.UnionType) and len(args) == 1 else ann
        if typing.get_origin(core_t) is Literal:
            choices = list(typing.get_args(core_t))
            out[name] = st.selectbox(label, choices, index=choices.index(default) if default in choices else 0,
                                     key=key, help=info.description)
        elif core_t is bool:
            out[name] = st.checkbox(label, value=bool(default), key=key, help=info.description)
        elif core_t is int:
            out[name] = int(st.number_input(label, value=int(default or 0), step=1, key=key, help=info.description))
        elif core_t is str:
            text = st.text_input(label, value=default or "", key=key, help=info.description)
            if text:
                out[name] = text
    return out


params: dict[str, Any] = {}
if prov_cls.Params.model_fields:
    defaults: dict[str, Any] = {}
    if offer.get("cloud"):
        defaults["cloud_type"] = offer["cloud"]  # the cloud type quoted is the cloud type launched
    if offer.get("region"):
        defaults["region"] = offer["region"].split(", ")[0]
    with st.expander(f"{prov_cls.display_name} settings"):
        params = _params_form(prov_cls.Params, defaults)
    with guard("checking the settings"):
        prov_cls.parse_params(params)

# -- launch ------------------------------------------------------------------------------------------------------

if st.button("Launch", type="primary", icon=":material/rocket_launch:", key="deploy_launch"):
    with guard("launching"):
        if provider != "local":
            checked[provider] = svc.provider(provider).validate_credentials()  # before anything is created
        job = svc.deploy(cfg, provider=provider, gpu_type=offer.get("provider_gpu_id") or offer["gpu_type"],
                         gpu_count=int(count), budget_usd=budget or None, config_id=cfg_id,
                         params=params or None, cost_per_hour=price or None)
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
        st.markdown(f"**{job.id}** {status_badge(job.status)} on {job.provider}"
                    + (f" — {job.reason}" if job.reason else ""))
        render_job_estimate(job)
        if job.total_steps:
            st.progress(min(1.0, job.progress), text=f"step {job.current_step}/{job.total_steps}")
        elif job.status == "provisioning":
            st.caption("The machine is starting: renting, pulling the image, installing, receiving the files.")
        c1, c2 = st.columns(2)
        c1.metric("Cost so far", fmt_money(job.total_cost_usd))
        c2.metric("Rate", fmt_money(job.cost_per_hour) + "/h" if job.cost_per_hour else "—")
        st.markdown("**Deployment response**")
        st.json(deployment_response(job))

    launch_progress()
    b1, b2 = st.columns(2)
    if b1.button("Open in monitor", icon=":material/monitoring:", key="deploy_open_monitor"):
        select_job(last)
        st.switch_page("pages/monitor.py")
    if b2.button("Show the machine's log", icon=":material/terminal:", key="deploy_log"):
        with guard("reading the log"):
            job = store().get_job(last)
            st.code(svc.provider(job.provider).logs(job.provider_ref, 40) if job.provider_ref else "(no machine yet)")

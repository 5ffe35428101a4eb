"""Model & training: presets, the config form, validation with the fix for each field, named configs."""

from __future__ import annotations

import streamlit as st

from core.config import FALLBACK_CHAT_TEMPLATE_NOTE, METHOD_INFO, parse_config
from core.errors import ConfigError
from pages import _config_form as form
from pages._estimate_panel import render_estimate
from pages._shared import guard, store

st.title("Model & training")


def _preset_choices() -> dict[str, dict]:
    from core.demo import demo_ready
    from core.paths import demo_dir
    from core.presets import PRESETS, demo_config_dict

    out: dict[str, dict] = {}
    d = demo_dir()
    if demo_ready(d):
        data = d / "data"
        out["demo (SFT, tiny local model)"] = demo_config_dict(str(d / "tiny-llama"), str(data / "sft_chat.jsonl"), "sft")
        out["demo (DPO, tiny local model)"] = demo_config_dict(str(d / "tiny-llama"), str(data / "dpo_pairs.jsonl"), "dpo")
    for name, build in PRESETS.items():
        out[f"{name} preset"] = build()
    return out


with guard("loading presets"):
    presets = _preset_choices()
    saved = {c.name: c for c in store().list_configs()}
    if "cfg_current" not in st.session_state:
        first = next(iter(presets.values()))
        st.session_state["cfg_current"] = first

    c1, c2, c3 = st.columns([3, 3, 1], vertical_alignment="bottom")
    preset_name = c1.selectbox("Start from a preset", list(presets), key="training_preset")
    if c1.button("Load preset", key="load_preset"):
        form.reset_form(presets[preset_name])
        st.rerun()
    if saved:
        saved_name = c2.selectbox("Or a saved config", list(saved), key="training_saved")
        if c2.button("Load saved", key="load_saved"):
            form.reset_form(saved[saved_name].config)
            st.rerun()
    else:
        c2.caption("No saved configs yet.")

with guard("building the form"):
    datasets = store().list_datasets()
    if datasets:
        with st.popover("Use an uploaded dataset", icon=":material/dataset:"):
            labels = {f"{d.name} · {d.format or '?'} · {d.row_count} rows": d.id for d in datasets}
            pick = st.selectbox("Dataset", list(labels), key="training_ds_pick")
            if st.button("Use it", key="training_ds_use"):
                st.session_state[f"{form.PREFIX}.data.train_path"] = labels[pick]
                st.rerun()
    values = form.render(st.session_state["cfg_current"])

st.divider()
problems: list[tuple[str, str]] = []
cfg = None
try:
    cfg = parse_config(values)
except ConfigError as exc:
    problems = exc.problems

if problems:
    st.error("Fix these before saving or launching:")
    for field, msg in problems:
        st.markdown(f"- **{field}**: {msg}")
else:
    st.success("The config is valid.", icon=":material/check_circle:")
    method = METHOD_INFO[cfg.training.method]
    if method["experimental"]:
        st.warning(f"{method['label']} is experimental: {method['note']}", icon=":material/science:")
    if not cfg.model.chat_template:
        st.caption(FALLBACK_CHAT_TEMPLATE_NOTE)
    render_estimate(cfg)

b1, b2, _ = st.columns([1, 1, 3])
if b1.button("Save config", type="primary", disabled=cfg is None, key="save_config"):
    with guard("saving the config"):
        rec = store().save_config(cfg.name, cfg.to_dict())
        st.session_state["cfg_current"] = cfg.to_dict()
        st.toast(f"Saved '{rec.name}' ({rec.id})")
        st.session_state["deploy_config_id"] = rec.id
if b2.button("Deploy it", disabled=cfg is None, key="goto_deploy"):
    with guard("saving the config"):
        rec = store().save_config(cfg.name, cfg.to_dict())
        st.session_state["deploy_config_id"] = rec.id
        st.switch_page("pages/deploy.py")

"""Models: the registry of trained models (list and detail with config, loss curve and scores), and the step from
a finished job to a served model: merge, push to the Hub, export for or register with Ollama, serve with vLLM."""

from __future__ import annotations

import streamlit as st

from pages._shared import fmt_duration, fmt_money, guard, short_model, store

st.title("Models")


def _pick(models: list) -> object:
    """The model asked for (Playground/Monitor hand-offs), else the newest."""
    ids = [m.id for m in models]
    wanted = st.session_state.get("models_selected")
    job = st.session_state.get("monitor_job")
    if wanted not in ids and job:
        wanted = next((m.id for m in models if m.source_job_id == job), None)
    by_id = {m.id: m for m in models}
    model_id = st.selectbox("Model", ids, index=ids.index(wanted) if wanted in ids else 0, key="models_pick",
                            format_func=lambda i: f"{by_id[i].name} · {short_model(by_id[i].base_model)}")
    st.session_state["models_selected"] = model_id
    return by_id[model_id]


def _loss_chart(m) -> None:
    import plotly.graph_objects as go

    from core.registry import loss_curve

    rows = loss_curve(store(), m)
    if not rows:
        st.caption("No loss was logged for this model's job.")
        return
    fig = go.Figure()
    for key, label in (("loss", "train loss"), ("eval_loss", "eval loss")):
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            fig.add_trace(go.Scatter(x=[s for s, _ in pts], y=[v for _, v in pts], name=label,
                                     mode="lines" if key == "loss" else "lines+markers"))
    fig.update_layout(height=220, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="step", legend=dict(x=0.6, y=1))
    st.plotly_chart(fig, width="stretch", key="models_loss")


def _detail(m) -> None:
    meta, metrics = m.metadata or {}, m.metrics or {}
    c = st.columns(5)
    c[0].metric("Final loss", f"{metrics['final_loss']:.3f}" if metrics.get("final_loss") is not None else "—")
    bleu, first = metrics.get("bleu"), metrics.get("bleu_first")
    c[1].metric("BLEU", "—" if bleu is None else bleu,
                delta=round(bleu - first, 2) if bleu is not None and first is not None else None)
    c[2].metric("ROUGE-L", metrics.get("rouge_l", "—"))
    hours = meta.get("training_time_hours")
    c[3].metric("Training time", fmt_duration(hours * 3600 if hours is not None else None))
    c[4].metric("Cost", fmt_money(meta.get("total_cost_usd")))
    left, right = st.columns([3, 2])
    with left:
        _loss_chart(m)
    with right:
        art = meta.get("artifact") or {}
        st.markdown(f"**Base:** `{m.base_model}`  \n**Method:** {(meta.get('training_method') or '').upper()} · "
                    f"LoRA r {(m.adapters.get('lora') or {}).get('r', '—')}  \n"
                    f"**Job:** `{m.source_job_id}` on {meta.get('provider', '—')} ({meta.get('gpu_type') or '—'})  \n"
                    f"**Dataset:** {m.dataset_size or '—'} rows · sha256 `{(m.dataset_hash or '')[:12]}`  \n"
                    f"**Artifact ({art.get('kind', 'local')}):** `{m.artifact_path}`")
        scores = {k: v for k, v in metrics.items() if v is not None and k != "final_loss"}
        if scores:
            st.dataframe([{"score": k, "value": v} for k, v in scores.items()], hide_index=True, width="stretch",
                         key="models_scores", height=min(35 * (len(scores) + 1) + 3, 250))
    with st.expander("Training config"):
        st.json(m.config, expanded=False)
    actions = meta.get("actions") or {}
    if actions:
        with st.expander(f"What was done with this model ({len(actions)})"):
            st.json(actions, expanded=True)


def _merge_tab(m, summary: dict) -> None:
    from core import serving

    if summary.get("full"):
        st.info(f"This job fully fine-tuned the model: there is no adapter to merge, and `{summary['full']}` is "
                "served, pushed and imported as it is.")
        return
    st.caption("Folds the LoRA update into the base weights and saves a plain transformers model (safetensors): "
               "what Ollama, llama.cpp and most servers load without PEFT.")
    if summary.get("merged"):
        st.success(f"Merged model: `{summary['merged']}`")
    again = bool(summary.get("merged"))
    if st.button("Merge again" if again else "Merge adapter into base", key="models_merge",
                 icon=":material/merge:"):
        with guard("merging the adapter"), st.spinner("Merging (loads the base model)..."):
            out = serving.merge(store(), m.id, overwrite=again)
            st.session_state["models_merge_result"] = out
            st.rerun()
    if (res := st.session_state.get("models_merge_result")) and res.get("path"):
        st.caption(f"Last merge: {len(res['files'])} files in {res['seconds']} s.")


def _hub_tab(m, summary: dict) -> None:
    from core import serving
    from core.credentials import credentials_for, mask

    have = credentials_for("huggingface").get("token")
    c1, c2 = st.columns([3, 2])
    repo = c1.text_input("Repository", value=m.name, key="models_hub_repo",
                         help="user/name or org/name; a bare name goes under your own account")
    what = c2.radio("Push", ["model"] if summary.get("full") else ["adapter", "merged"], horizontal=True,
                    key="models_hub_what", help="the merged model needs a merge first")
    private = st.checkbox("Private repository", value=True, key="models_hub_private")
    token = st.text_input("Token with write access", type="password", key="models_hub_token",
                          placeholder=f"using {mask(have)}" if have else "hf_...")
    if st.button("Push to the Hub", key="models_hub_push", icon=":material/cloud_upload:"):
        with guard("pushing to the Hugging Face Hub"), st.spinner("Uploading..."):
            out = serving.push(store(), m.id, repo.strip(), what=what, private=private, token=token or None)
            st.success(f"Pushed the {out['what']} to {out['url']} ({'private' if out['private'] else 'public'}).")


def _ollama_tab(m, summary: dict) -> None:
    from core import ollama, serving

    info = summary.get("ollama") or {}
    st.markdown(f"Route: **{info.get('route', '—')}** ({info.get('arch') or 'unknown architecture'}) — "
                f"{info.get('reason', '')}")
    base = st.text_input("Base model's name in Ollama (optional)", key="models_ollama_base",
                         placeholder="e.g. llama3.2:1b; empty imports the local base folder")
    if st.button("Write Modelfile", key="models_ollama_export", icon=":material/description:"):
        with guard("writing the Modelfile"):
            st.session_state["models_ollama_files"] = serving.export_ollama(store(), m.id, base=base or None)
    files = st.session_state.get("models_ollama_files")
    if files:
        from pathlib import Path

        st.code(Path(files["files"]["Modelfile"]).read_text(encoding="utf-8"), language="dockerfile")
        st.code(files["command"], language="bash")
        if "GGUF.md" in files["files"]:
            st.markdown(Path(files["files"]["GGUF.md"]).read_text(encoding="utf-8"))
    c1, c2 = st.columns(2)
    host = c1.text_input("Ollama server", value=ollama.host_url(), key="models_ollama_host")
    name = c2.text_input("Name in Ollama", value=info.get("name") or ollama.ollama_name(m), key="models_ollama_name")
    if st.button("Register with Ollama", key="models_ollama_register", icon=":material/publish:"):
        with guard("registering with Ollama"), st.status("Registering with Ollama...", expanded=True) as box:
            out = serving.register_ollama(store(), m.id, name=name, base=base or None, host=host,
                                          on_status=lambda s: box.write(s))
            box.update(label=f"Registered {out['name']} ({out['route']})", state="complete")
            st.success(f"`ollama run {out['name']}` — or chat with it on the Playground through {out['chat_url']}.")


def _vllm_tab(m, summary: dict) -> None:
    from core import serving, vllm

    st.caption(f"Adapter rank r = {summary.get('lora_r', '—')} → `--max-lora-rank {summary.get('max_lora_rank')}`"
               if summary.get("max_lora_rank") else summary.get("vllm_note", ""))
    c1, c2, c3 = st.columns(3)
    port = c1.number_input("Port", value=8000, min_value=1, max_value=65535, key="models_vllm_port")
    merged = c2.checkbox("Serve the merged model", key="models_vllm_merged",
                         disabled=not summary.get("merged") or bool(summary.get("full")))
    runtime = c3.checkbox("Allow hot-loading more adapters", key="models_vllm_runtime",
                          disabled=bool(summary.get("full")))
    with guard("building the vLLM command"):
        cmd = vllm.serve_command(m, merged=merged, port=int(port), allow_runtime_lora=runtime)
        st.code(cmd.shell, language="bash")
        st.caption(f"Then chat at `{cmd.base_url}` with model `{cmd.served_name}`.")
    if summary.get("full"):
        return
    st.markdown("**Hot-load into a running vLLM** (started with `--enable-lora` and "
                "`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`)")
    c1, c2 = st.columns(2)
    url = c1.text_input("vLLM URL", value="http://localhost:8000", key="models_vllm_url")
    key = c2.text_input("API key (if the server has one)", type="password", key="models_vllm_key")
    where = st.text_input("Adapter path as the server sees it (optional)", key="models_vllm_path",
                          placeholder=summary.get("adapter") or "")
    if st.button("Load adapter", key="models_vllm_load", icon=":material/bolt:"):
        with guard("loading the adapter into vLLM"):
            out = serving.vllm_hot_load(store(), m.id, url, api_key=key or None, path_on_server=where or None)
            st.success(f"{out['message']} Chat with `{out['lora_name']}` at {out['base_url']}.")


def _actions(m) -> None:
    from core.serving import serving_summary

    summary = serving_summary(m)
    if summary.get("unavailable"):
        st.warning(summary["unavailable"])
        return
    if st.button("Open in Playground", key="models_to_playground", icon=":material/chat:", type="primary"):
        st.session_state["playground_model"] = m.id
        st.switch_page("pages/playground.py")
    tabs = st.tabs(["Merge", "Hugging Face Hub", "Ollama", "vLLM"])
    for tab, render in zip(tabs, (_merge_tab, _hub_tab, _ollama_tab, _vllm_tab)):
        with tab:
            render(m, summary)


with guard("listing models"):
    models = store().list_models()
    if not models:
        st.info("No models yet: a job that completes registers its model here.")
        st.stop()
    rows = [{"model": m.name, "base": short_model(m.base_model), "method": (m.metadata.get("training_method") or "").upper(),
             "final loss": m.metrics.get("final_loss"), "BLEU": m.metrics.get("bleu"), "ROUGE-L": m.metrics.get("rouge_l"),
             "cost": fmt_money(m.metadata.get("total_cost_usd")), "created": m.created_at.strftime("%Y-%m-%d %H:%M")
             if m.created_at else "—"} for m in models]
    st.dataframe(rows, hide_index=True, width="stretch", key="models_table")
    model = _pick(models)

with guard("showing the model"):
    _detail(model)
st.subheader("Use it")
with guard("preparing the serving options"):
    _actions(model)

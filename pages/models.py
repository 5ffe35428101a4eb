"""Models: the registry of trained models with their lineage."""

from __future__ import annotations

import streamlit as st

from pages._shared import fmt_money, guard, short_model, store

st.title("Models")

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
    by_name = {m.name: m for m in models}
    name = st.selectbox("Details", list(by_name), key="models_pick")
    m = by_name[name]
    c1, c2, c3 = st.columns(3)
    c1.metric("Final loss", f"{m.metrics['final_loss']:.3f}" if m.metrics.get("final_loss") is not None else "—")
    c2.metric("BLEU", m.metrics.get("bleu", "—"),
              delta=round(m.metrics["bleu"] - m.metrics["bleu_first"], 2) if m.metrics.get("bleu_first") is not None
              and m.metrics.get("bleu") is not None else None)
    c3.metric("ROUGE-L", m.metrics.get("rouge_l", "—"))
    st.markdown(f"**Artifact:** `{m.artifact_path}`")
    st.markdown(f"**Lineage:** base `{m.base_model}` · job `{m.source_job_id}` · dataset `{m.dataset_id}` "
                f"(sha256 `{(m.dataset_hash or '')[:12]}`, {m.dataset_size} rows)")
    with st.expander("Metadata"):
        st.json(m.metadata)
    with st.expander("Training config"):
        st.json(m.config)

"""Dataset: upload a JSONL file; it is stored once by content hash and checked line by line."""

from __future__ import annotations

import streamlit as st

from pages._shared import guard, store

st.title("Dataset")

uploaded = st.file_uploader("JSONL file", type=["jsonl", "json"], key="ds_upload")
if uploaded is not None:
    with guard("reading the upload"):
        from core.datasets.ingest import ingest_bytes
        from core.datasets.validate import validate_file

        rec = ingest_bytes(store(), uploaded.getvalue(), uploaded.name)
        report = validate_file(rec.path)
        st.session_state["ds_current"] = rec.id
        if report.fatal:
            st.error(f"{uploaded.name} cannot be used: {report.fatal}")
        else:
            c = st.columns(4)
            c[0].metric("Format", report.format or "—")
            c[1].metric("Rows", report.rows)
            c[2].metric("Valid rows", report.valid_rows)
            c[3].metric("Errors", len(report.errors))
            if report.errors:
                st.dataframe([e.model_dump() for e in report.errors], hide_index=True, width="stretch")
            st.success(f"Stored as `{rec.id}`; pick it on **Model & training**.")

with guard("listing datasets"):
    datasets = store().list_datasets()
    if datasets:
        st.subheader("Stored datasets")
        st.dataframe([{"id": d.id, "name": d.name, "format": d.format, "rows": d.row_count, "valid": d.valid_rows,
                       "size": f"{d.size_bytes / 1024:.1f} KB"} for d in datasets], hide_index=True, width="stretch")

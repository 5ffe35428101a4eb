"""Dataset: upload a JSONL file (or name one on this machine), see its format, every bad line with the reason and
its lengths in the chosen model's tokens, fix it, and keep it (stored once by content hash)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from pages._shared import guard, store

NO_MODEL = "None (characters only)"
OTHER = "Another model id or path…"
ROLE_AVATAR = {"chosen": ":material/thumb_up:", "rejected": ":material/thumb_down:", "text": ":material/notes:",
               "label": ":material/label:", "raw": ":material/error:", "system": ":material/settings:",
               "tool": ":material/build:"}

st.title("Dataset")
st.caption("Every line is checked: its format, required keys and types, roles and turns. Nothing is uploaded to a "
           "GPU until the file is clean.")


def _model_choices() -> dict[str, str | None]:
    from core.paths import demo_dir

    choices: dict[str, str | None] = {NO_MODEL: None}
    cfg_model = (st.session_state.get("cfg_current") or {}).get("model", {}).get("name")
    if cfg_model:
        choices[f"Config's model ({cfg_model})"] = cfg_model
    demo = demo_dir() / "tiny-llama"
    if (demo / "tokenizer.json").exists():
        choices["Demo model (tiny-llama)"] = str(demo)
    choices[OTHER] = ""
    return choices


def _settings() -> dict[str, Any]:
    cfg = st.session_state.get("cfg_current") or {}
    c1, c2, c3 = st.columns([2, 1, 1])
    choices = _model_choices()
    pick = c1.selectbox("Tokenizer for token counts", list(choices), key="ds_model_pick",
                        help="Lengths are measured with this model's tokenizer and chat template.")
    model = choices[pick]
    if model == "":
        model = c1.text_input("Model id or local path", key="ds_model_other").strip() or None
    max_length = c2.number_input("max_length (tokens)", min_value=16, max_value=262144, step=64,
                                 value=int(cfg.get("data", {}).get("max_length", 1024)), key="ds_max_length")
    methods = ["any", "sft", "dpo", "kto", "orpo"]
    current = cfg.get("training", {}).get("method", "any")
    method = c3.selectbox("Training method", methods, index=methods.index(current) if current in methods else 0,
                          key="ds_method")
    return {"model": model, "max_length": int(max_length), "method": None if method == "any" else method,
            "eval_split": float(cfg.get("data", {}).get("eval_split", 0.1))}


def _source() -> tuple[Path, str] | None:
    """The file to check: an upload (staged by content hash) or a path on this machine."""
    from core.datasets.ingest import save_upload

    up_tab, path_tab = st.tabs(["Upload", "File on this machine"])
    with up_tab:
        uploaded = st.file_uploader("JSONL file", type=["jsonl", "json", "txt"], key="ds_upload")
    with path_tab:
        local = st.text_input("Path to a JSONL file (for files larger than the upload limit)", key="ds_path")
        if st.button("Check this file", key="ds_check_path") and local.strip():
            st.session_state["ds_source"] = (str(Path(local.strip()).expanduser()), Path(local.strip()).name)
    if uploaded is not None:
        key = (uploaded.name, uploaded.size)
        if st.session_state.get("ds_uploaded_key") != key:
            uploaded.seek(0)
            bar = st.progress(0.0, text=f"Saving {uploaded.name}…")
            staged = save_upload(uploaded, uploaded.name, lambda f: bar.progress(f, text=f"Saving {uploaded.name}…"),
                                 total=uploaded.size)
            bar.empty()
            st.session_state["ds_uploaded_key"] = key
            st.session_state["ds_source"] = (str(staged), uploaded.name)
    src = st.session_state.get("ds_source")
    return (Path(src[0]), src[1]) if src else None


def _digest(path: Path) -> str:
    """The file's content hash, computed once per (path, size, mtime) in the session (reruns are frequent)."""
    from core.datasets.ingest import sha256_file

    if not path.is_file():
        return str(path)
    st_ = path.stat()
    known = st.session_state.setdefault("ds_digests", {})
    fid = (str(path), st_.st_size, st_.st_mtime_ns)
    if fid not in known:
        known[fid] = sha256_file(path)
    return known[fid]


def _validate(path: Path, name: str, opts: dict[str, Any]) -> Any:
    """The report for (content, settings), computed once per combination and kept for the session's reruns."""
    from core.datasets.validate import validate_file

    digest = _digest(path)
    key = (digest, tuple(sorted(opts.items())))
    cached = st.session_state.get("ds_report")
    if cached and cached[0] == key:
        return cached[1], digest
    bar = st.progress(0.0, text=f"Checking {name}…")
    rep = validate_file(path, progress=lambda f: bar.progress(f, text=f"Checking {name}… {f:.0%}"), **opts)
    bar.empty()
    st.session_state["ds_report"] = (key, rep)
    return rep, digest


def _store_dataset(path: Path, name: str, digest: str, rep: Any) -> Any:
    from core.datasets.ingest import ingest_file

    s = store()
    existing = s.find_dataset_by_hash(digest)
    if existing and Path(existing.path).exists():
        st.info(f"Recognised by its content: stored as **{existing.name}** (`{existing.id}`).",
                icon=":material/content_copy:")
        return existing
    return ingest_file(s, path, name=name, stats=rep.summary())


def _summary(rep: Any, rec: Any) -> None:
    s = rep.stats
    with st.container(border=True):
        if rep.fatal:
            st.error(rep.message, icon=":material/block:")
        elif rep.errors:
            n = sum(s["error_counts"].values())
            st.warning(f"{rep.rows - rep.valid_rows:,} of {rep.rows:,} rows are invalid ({n:,} problems). Fix them, "
                       "or drop the invalid lines below.", icon=":material/warning:")
        else:
            st.success(f"All {rep.rows:,} rows are valid `{rep.format}` rows.", icon=":material/check_circle:")
        c = st.columns(6)
        c[0].metric("Format", rep.format or "—")
        c[1].metric("Rows", f"{rep.rows:,}")
        c[2].metric("Valid rows", f"{rep.valid_rows:,}")
        c[3].metric("Errors", f"{sum(s.get('error_counts', {}).values()):,}")
        c[4].metric("Warnings", f"{sum(s.get('warning_counts', {}).values()):,}")
        c[5].metric("Duplicates", f"{s.get('duplicates', 0):,}")
        if rep.fatal:
            return
        tok = s.get("tokens")
        t = st.columns(6)
        chars = s.get("chars", {})
        t[0].metric("Median chars", f"{chars.get('p50', 0):,}")
        if tok:
            t[1].metric("Median tokens", f"{tok['p50']:,}")
            t[2].metric("p95 tokens", f"{tok['p95']:,}")
            t[3].metric("Max tokens", f"{tok['max']:,}")
            t[4].metric(f"Truncated at {tok['max_length']}", f"{(tok['truncated_share'] or 0):.1%}")
            t[5].metric("Training tokens / epoch", f"{tok['train_tokens']:,}")
            if tok["sampled"]:
                st.caption(f"Token lengths measured on a uniform sample of {tok['sample_size']:,} of "
                           f"{rep.valid_rows:,} valid rows; totals are scaled up from it.")
        else:
            t[1].metric("p95 chars", f"{chars.get('p95', 0):,}")
            t[2].metric("Max chars", f"{chars.get('max', 0):,}")
            st.caption("Pick a tokenizer above to see token lengths, truncation and training tokens.")
        split = s.get("split", {})
        st.caption(f"Split: {split.get('train', 0):,} train / {split.get('eval', 0):,} eval rows "
                   f"(eval_split {split.get('eval_split')}) · roles: "
                   + (", ".join(f"{k} {v:,}" for k, v in s.get("roles", {}).items()) or "—")
                   + (f" · blank lines skipped: {s['blank_lines']:,}" if s.get("blank_lines") else ""))
        if rec is not None:
            st.caption(f"Stored as `{rec.id}`; pick it on **Model & training**.")


def _issues(rep: Any, kind: str) -> None:
    from core.datasets.validate import filter_issues, issues_csv

    issues = rep.errors if kind == "errors" else rep.warnings
    if not issues:
        return
    counts = rep.stats.get(f"{'error' if kind == 'errors' else 'warning'}_counts", {})
    st.subheader("Errors" if kind == "errors" else "Warnings")
    c1, c2 = st.columns([2, 1])
    rules = c1.multiselect("Rules", sorted(counts), format_func=lambda r: f"{r} ({counts.get(r, 0):,})",
                           key=f"ds_{kind}_rules")
    text = c2.text_input("Search field, message or line", key=f"ds_{kind}_text")
    shown = filter_issues(issues, rules=rules, text=text)
    st.dataframe([i.model_dump() for i in shown], hide_index=True, width="stretch",
                 column_config={"line": st.column_config.NumberColumn("line", format="%d")}, key=f"ds_{kind}_table")
    if rep.stats.get("issues_capped"):
        st.caption(f"The first {rep.stats['max_issues_per_rule']:,} of each rule are listed; the counts above are "
                   "complete.")
    st.download_button(f"Download {kind} as CSV", issues_csv(shown), file_name=f"{kind}.csv", mime="text/csv",
                       key=f"ds_{kind}_csv", icon=":material/download:")


def _histogram(rep: Any, max_length: int) -> None:
    import plotly.graph_objects as go

    tokens = bool(rep.token_lengths)
    values = rep.token_lengths if tokens else rep.char_lengths
    if not values:
        return
    fig = go.Figure(go.Histogram(x=values, nbinsx=50, marker_color="#4C78A8"))
    unit = "tokens" if tokens else "characters"
    if tokens:
        fig.add_vline(x=max_length, line_dash="dash", line_color="#E45756", annotation_text=f"max_length {max_length}")
    fig.update_layout(title=f"Row length in {unit}", xaxis_title=unit, yaxis_title="rows", height=320,
                      margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(fig, key="ds_hist")


def _preview(path: Path, rep: Any) -> None:
    from core.datasets.preview import preview_rows

    st.subheader("Rows")
    c1, c2 = st.columns([1, 3])
    only = c1.radio("Show", ["all", "invalid", "valid"], horizontal=True, key="ds_preview_only")
    n = c2.slider("How many", 1, 50, 5, key="ds_preview_n")
    bad_lines = {e.line for e in rep.errors if e.line is not None}
    for row in preview_rows(path, rep.format, limit=n, only=only):
        label = f"Line {row['line']}" + ("" if row["valid"] else " · invalid")
        with st.container(border=True):
            st.caption(label)
            if row["line"] in bad_lines:
                for e in rep.errors:
                    if e.line == row["line"]:
                        st.markdown(f":red[**{e.rule}**] `{e.field or 'row'}`: {e.message}")
            for turn in row["turns"]:
                with st.chat_message(turn["role"], avatar=ROLE_AVATAR.get(turn["role"])):
                    st.caption(turn["role"])
                    st.text(turn["content"])


def _fixes(path: Path, name: str, rep: Any) -> None:
    from core.datasets.fixes import FIXES, apply_fix

    if not rep.fixes:
        return
    st.subheader("Fixes")
    cols = st.columns(len(rep.fixes))
    for col, fix in zip(cols, rep.fixes):
        if col.button(FIXES[fix], key=f"ds_fix_{fix}", type="primary"):
            with guard(f"applying '{FIXES[fix]}'"):
                res = apply_fix(store(), fix, path, name=name)
                st.session_state["ds_current"] = res.dataset.id
                st.session_state["ds_source"] = (res.dataset.path, res.dataset.name)
                st.session_state["ds_fixed"] = (f"Saved **{res.dataset.name}** (`{res.dataset.id}`): {res.kept:,} rows "
                                                f"kept, {res.dropped:,} dropped.")
                st.rerun()


opts = _settings()
if msg := st.session_state.pop("ds_fixed", None):
    st.success(msg, icon=":material/auto_fix_high:")
with guard("reading the dataset"):
    src = _source()
    if src is not None:
        path, name = src
        rep, digest = _validate(path, name, opts)
        rec = None
        if not rep.fatal:
            rec = _store_dataset(path, name, digest, rep)
            st.session_state["ds_current"] = rec.id
            if Path(rec.path) != path and path.parent.name == "uploads":  # the staged copy is no longer needed
                st.session_state["ds_source"] = (rec.path, name)
                path.unlink(missing_ok=True)
                path = Path(rec.path)
        _summary(rep, rec)
        _fixes(path, name, rep)
        _issues(rep, "errors")
        if not rep.fatal:
            _histogram(rep, opts["max_length"])
            _preview(path, rep)
        _issues(rep, "warnings")

with guard("listing datasets"):
    datasets = store().list_datasets()
    if datasets:
        st.subheader("Stored datasets")
        st.dataframe([{"id": d.id, "name": d.name, "format": d.format, "rows": d.row_count, "valid": d.valid_rows,
                       "size": f"{d.size_bytes / 1024:.1f} KB"} for d in datasets], hide_index=True, width="stretch",
                     key="ds_stored")

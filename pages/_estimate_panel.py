"""The compact "know before you pay" panel (issue 9): fit, time and cost of a config, on the training and deploy
screens; and, for a launched job, the price check and the estimate's error once it ended.

The estimate itself comes from ``core.estimate``; the first one in a console process imports transformers (for
AutoConfig), so it is cached per config and per count of finished jobs (whose throughput refines it).
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from pages._shared import fmt_duration, fmt_money, guard, store

VERDICT = {"fits": ":green-badge[fits]", "tight": ":orange-badge[tight]", "no": ":red-badge[does not fit]"}


@st.cache_data(show_spinner="Estimating memory, time and cost…", ttl=600, max_entries=64)
def _estimate(cfg_json: str, provider: str | None, gpu: str | None, gpu_count: int, price: float | None,
              budget: float | None, finished_jobs: int, _store: Any) -> dict[str, Any]:
    from core.config import parse_config
    from core.estimate import estimate_for_config

    est = estimate_for_config(parse_config(json.loads(cfg_json)), store=_store, provider=provider, gpu=gpu,
                              gpu_count=gpu_count, price_per_hour=price, budget_usd=budget)
    return est.model_dump(mode="json")


def _finished_jobs(s: Any) -> int:
    from core import lifecycle as L

    return len(s.list_jobs(statuses=sorted(L.TERMINAL), limit=500))


def _count(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def _hours(r: dict[str, float] | None) -> str:
    if not r:
        return "—"
    return f"{fmt_duration(r['low'] * 3600)} – {fmt_duration(r['high'] * 3600)}"


def _money(r: dict[str, float] | None) -> str:
    if not r:
        return "—"
    return f"{fmt_money(r['low'])} – {fmt_money(r['high'])}"


def render_estimate(cfg: Any, *, provider: str | None = None, gpu: str | None = None, gpu_count: int = 1,
                    price_per_hour: float | None = None, budget_usd: float | None = None) -> dict[str, Any] | None:
    """Show the estimate of ``cfg`` (a valid TrainingConfig); returns it as a dict, or None when it failed."""
    with guard("estimating memory, time and cost"):
        s = store()
        est = _estimate(json.dumps(cfg.to_dict(), sort_keys=True), provider, gpu, gpu_count, price_per_hour,
                        budget_usd, _finished_jobs(s), s)
        _render(est)
        return est
    return None


def _render(est: dict[str, Any]) -> None:
    model, mem, fit, t = est["model"], est.get("memory"), est.get("fit"), est.get("time")
    with st.container(border=True):
        st.markdown("**Estimate** · know before you pay")
        c1, c2, c3, c4 = st.columns(4)
        params = model.get("params")
        c1.metric("Model", f"{_count(params)} params" if params else "unknown",
                  help=f"Sized from the {model['source']}" + (f". {model['note']}" if model.get("note") else ""))
        if mem:
            where = f" on {est['gpu']}" if est.get("gpu") else ""
            c2.metric(f"Memory{where}", f"{mem['total_gb']:.1f} GB",
                      help=f"{mem['precision']}; weights {mem['weights_gb']:.1f}, adapters {mem['adapters_gb']:.2f}, "
                           f"gradients {mem['gradients_gb']:.2f}, optimizer {mem['optimizer_gb']:.2f}, "
                           f"activations {mem['activations_gb']:.2f}, overhead {mem['overhead_gb']:.2f} GB")
        c3.metric("Time", _hours(t["hours"]) if t else "—",
                  help=(t["source"] if t else est["dataset"].get("note")) or None)
        c4.metric("Cost", "free" if est.get("price_per_hour") == 0 else _money(est.get("cost_range")),
                  help=est.get("price_source") or "No price known for this GPU on this provider.")
        if fit:
            st.markdown(f"{VERDICT.get(fit['verdict'], fit['verdict'])} {fit['gpu']} ({fit['vram_gb']:g} GB)"
                        + (f" — {fit['reason']}" if fit.get("reason") else ""))
        for w in est.get("warnings", []):
            st.warning(w, icon=":material/warning:")
        with st.expander("Details: memory, tokens, cheapest GPU per provider"):
            _details(est)


def _details(est: dict[str, Any]) -> None:
    mem, d, t = est.get("memory"), est["dataset"], est.get("time")
    if mem:
        st.markdown(f"Memory at micro-batch {mem['micro_batch']} × {mem['seq_len']} tokens ({mem['precision']}):")
        st.dataframe([{"part": k.removesuffix("_gb"), "GB": mem[k]} for k in (
            "weights_gb", "adapters_gb", "gradients_gb", "optimizer_gb", "activations_gb", "overhead_gb", "total_gb")],
            hide_index=True)
        for n in mem.get("notes", []):
            st.caption(n)
    if d.get("train_tokens"):
        st.markdown(f"Training tokens: {d['train_tokens']:,.0f} ({d['train_rows']:,} rows × {d['tokens_per_row']:g} "
                    f"tokens × {d['epochs']:g} epochs, {d['steps']:,} steps; {d['basis']}).")
    if t:
        tps = t["tokens_per_sec"]
        st.markdown(f"Throughput {tps['low']:,.0f}–{tps['high']:,.0f} tokens/s ({t['basis']}): {t['source']}")
    if est.get("cheapest"):
        st.markdown("Cheapest GPU that fits, per provider:")
        st.dataframe([{"provider": c["provider"], "GPU": c["gpu"], "tier": c.get("tier") or "",
                       "$/h": c["price_per_hour"], "fit": c["verdict"], "time": _hours(c["hours"]),
                       "cost": _money(c["cost_usd"])} for c in est["cheapest"]], hide_index=True)
    for a in est.get("assumptions", []):
        st.caption(a)


def render_job_estimate(job: Any) -> None:
    """For a launched job: a price-mismatch warning, and once it ended the estimate's error."""
    est = job.estimate or {}
    check = est.get("price_check")
    if check:
        st.warning(check["message"], icon=":material/price_change:")
    out = est.get("outcome")
    if not out:
        return
    parts = [f"ran {fmt_duration(out['actual_hours'] * 3600)}"]
    if out.get("estimated_hours"):
        parts.append(f"estimated {_hours(out['estimated_hours'])}")
    if out.get("time_error_pct") is not None:
        parts.append(f"time error {out['time_error_pct']:+.0f}%")
    if out.get("actual_cost_usd") is not None:
        parts.append(f"cost {fmt_money(out['actual_cost_usd'])}")
    if out.get("estimated_cost_usd"):
        parts.append(f"estimated {_money(out['estimated_cost_usd'])}")
    if out.get("cost_error_pct") is not None:
        parts.append(f"cost error {out['cost_error_pct']:+.0f}%")
    st.caption("Estimate vs actual: " + ", ".join(parts) + (f". {out['note']}" if out.get("note") else ""))

"""What every screen shares: the store and job service, the poller singleton, error handling and formatting.

Screens stay thin: they read session state, call ``core`` and render. Nothing here imports torch or an SDK.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

import streamlit as st

from core.errors import ConfigError, ConsoleError

log = logging.getLogger("finetune_console.ui")

STATUS_BADGE = {
    "queued": ("gray", "Queued"),
    "provisioning": ("blue", "Provisioning"),
    "running": ("blue", "Running"),
    "completing": ("violet", "Completing"),
    "completed": ("green", "Completed"),
    "failed": ("red", "Failed"),
    "cancelled": ("orange", "Cancelled"),
    "budget_stopped": ("orange", "Budget stopped"),
}


def store() -> Any:
    from core.store import open_store
    from pages._team import session_store

    return session_store() or open_store()  # team mode: the signed-in user's view, under row-level security


def service() -> Any:
    from core.team_jobs import job_service_for

    key = "_job_service"
    svc = st.session_state.get(key)
    if svc is None or svc.store is not store():
        svc = job_service_for(store())
        st.session_state[key] = svc
    return svc


@st.cache_resource(show_spinner=False)
def _poller_singleton(store_id: int) -> Any:
    """One lifecycle loop per console process, whatever the number of browser sessions."""
    from core.poller import Poller
    from core.store import open_store
    from core.team_jobs import job_service_for

    return Poller(job_service_for(open_store()), interval_s=2.0).start()


def ensure_poller() -> Any:
    from core.store import open_store

    return _poller_singleton(id(open_store()))


@contextmanager
def guard(action: str | None = None) -> Iterator[None]:
    """Catch errors once per screen: a ConsoleError is shown as is; anything else is logged, never traced on the page."""
    try:
        yield
    except ConfigError as exc:
        st.error(exc.message if not exc.problems else "The config has problems:")
        for field, msg in exc.problems:
            st.markdown(f"- **{field}**: {msg}")
    except ConsoleError as exc:
        st.error(str(exc))
    except Exception:  # noqa: BLE001 - the one place unexpected errors are turned into a message
        log.exception("unexpected error%s", f" while {action}" if action else "")
        st.error(
            f"Something went wrong{f' while {action}' if action else ''}. Nothing was lost; the details are in "
            "the console's log."
        )


def status_badge(status: str) -> str:
    colour, label = STATUS_BADGE.get(status, ("gray", status))
    return f":{colour}-badge[{label}]"


def fmt_money(x: float | None) -> str:
    return "—" if x is None else f"${x:,.2f}" if x >= 0.01 or x == 0 else f"${x:.4f}"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def elapsed_s(job: Any) -> float | None:
    if not job.started_at:
        return None
    end = job.completed_at or datetime.now(timezone.utc)
    return (end - job.started_at).total_seconds()


def short_model(name: str | None) -> str:
    if not name:
        return "—"
    return name.rstrip("/").split("/")[-1] if name.startswith("/") else name


def select_job(job_id: str) -> None:
    st.session_state["monitor_job"] = job_id

"""FineTune Console: the router and the shared sidebar. Screens live in pages/."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="FineTune Console", page_icon=":material/model_training:", layout="wide")

from pages._shared import ensure_poller, guard, store  # noqa: E402 - set_page_config must come first
from pages._team import team_pages, team_sidebar  # noqa: E402

PAGES = {
    "Build": [
        st.Page("pages/home.py", title="Jobs", icon=":material/list_alt:", default=True),
        st.Page("pages/dataset.py", title="Dataset", icon=":material/dataset:"),
        st.Page("pages/training.py", title="Model & training", icon=":material/tune:"),
        st.Page("pages/deploy.py", title="Deploy", icon=":material/rocket_launch:"),
    ],
    "Watch": [
        st.Page("pages/monitor.py", title="Monitor", icon=":material/monitoring:"),
        st.Page("pages/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
        st.Page("pages/models.py", title="Models", icon=":material/inventory_2:"),
        st.Page("pages/playground.py", title="Playground", icon=":material/chat:"),
    ],
}


def sidebar() -> None:
    from core.paths import console_home

    with st.sidebar:
        st.caption("FineTune Console")
        if not team_sidebar():  # team mode waits for a sign-in
            return
        s = store()
        engine = type(s).__name__.removesuffix("Store")
        st.caption(f"Store: {engine} · `{console_home()}`")
        poller = ensure_poller()
        st.caption("Job poller: running" if poller.alive else "Job poller: stopped")


nav = st.navigation(team_pages(PAGES))
# The last net under every screen: what a page's own guard did not catch is a message, never a stack trace.
with guard("opening the console's store"):
    sidebar()
with guard():
    nav.run()

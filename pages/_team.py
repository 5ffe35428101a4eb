"""Team mode in the app: the signed-in session, the selected team, and the store acting as that user.

Nothing here runs in the embedded single-user mode (``team_mode()`` is false without a team database URL).
The session (tokens, identity) is kept in Streamlit's session state, which lives on the server.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from core.errors import ConsoleError

AUTH_KEY = "ftc_auth"
TEAM_KEY = "ftc_team_id"
STORE_KEY = "ftc_team_store"


def team_mode() -> bool:
    from core.team_settings import team_settings

    return team_settings().enabled


def auth() -> Any:
    from core.auth import SupabaseAuth
    from core.team_settings import team_settings

    s = team_settings()
    return SupabaseAuth(s.url, s.anon_key)


def current_session() -> Any:
    """The signed-in AuthSession, refreshed when about to expire; None when signed out."""
    sess = st.session_state.get(AUTH_KEY)
    if sess is None or not sess.expiring():
        return sess
    try:
        sess = auth().refresh(sess)
    except ConsoleError:
        forget_session()
        return None
    st.session_state[AUTH_KEY] = sess
    return sess


def remember_session(sess: Any) -> None:
    forget_session()
    st.session_state[AUTH_KEY] = sess


def forget_session() -> None:
    for key in (AUTH_KEY, TEAM_KEY, STORE_KEY, "_job_service"):
        st.session_state.pop(key, None)


def session_store() -> Any:
    """In team mode, the store acting as the signed-in user in the selected team; None in embedded mode."""
    if not team_mode():
        return None
    sess = current_session()
    if sess is None:
        raise ConsoleError("Sign in first, on the Account page.")
    key = (sess.user_id, st.session_state.get(TEAM_KEY))
    cached = st.session_state.get(STORE_KEY)
    if cached is None or cached[0] != key:
        from core.store import open_store

        cached = (key, open_store().as_user(sess.identity(), team_id=key[1]))
        st.session_state[STORE_KEY] = cached
    return cached[1]


def select_team(team_id: str | None) -> None:
    st.session_state[TEAM_KEY] = team_id


def team_service() -> Any:
    from core.team import TeamService

    return TeamService(session_store())


def team_pages(pages: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """The router's pages: unchanged in embedded mode; in team mode the Account page, alone until sign-in."""
    if not team_mode():
        return pages
    if current_session() is None:
        return {"Team": [st.Page("pages/account.py", title="Sign in", icon=":material/login:", default=True)]}
    return {**pages, "Team": [st.Page("pages/account.py", title="Account", icon=":material/account_circle:")]}


def team_sidebar() -> bool:
    """Who is signed in and which team is shown; False when team mode waits for a sign-in."""
    if not team_mode():
        return True
    sess = current_session()
    if sess is None:
        st.caption("Team mode: sign in to see your team's work.")
        return False
    st.caption(f"Signed in as **{sess.email}**")
    try:
        teams = team_service().my_teams()
    except ConsoleError as exc:
        st.error(str(exc))
        return False
    options = [None, *[t["id"] for t in teams]]
    names = {None: "Personal", **{t["id"]: t["name"] for t in teams}}
    current = st.session_state.get(TEAM_KEY)
    picked = st.selectbox("Team", options, index=options.index(current) if current in options else 0,
                          format_func=lambda t: names[t], key=f"ftc_team_switcher_{current}")
    if picked != current:
        select_team(picked)
        st.rerun()
    if st.button("Sign out", key="ftc_sign_out", icon=":material/logout:"):
        auth().sign_out(sess)
        forget_session()
        st.rerun()
    return True

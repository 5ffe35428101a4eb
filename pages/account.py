"""Account (team mode): sign in or create an account, then teams, members, invitations and provider credentials.

Provider credentials are written encrypted and shown masked; no stored value is ever sent back to the page.
"""

from __future__ import annotations

import streamlit as st

from core.credentials import ENV_VARS
from pages._shared import guard
from pages._team import auth, current_session, forget_session, remember_session, select_team, session_store, \
    team_mode, team_service

CLOUD_PROVIDERS = {name: list(fields) for name, fields in ENV_VARS.items() if fields} | {"openai": ["api_key"]}


def signed_out() -> None:
    st.title("Sign in")
    st.caption("This console is shared by a team on Supabase. Sign in to see your team's datasets, configs, jobs "
               "and models.")
    sign_in, sign_up = st.tabs(["Sign in", "Create account"])
    with sign_in, st.form("ftc_sign_in"):
        email = st.text_input("Email", key="signin_email")
        password = st.text_input("Password", type="password", key="signin_password")
        if st.form_submit_button("Sign in", type="primary"):
            with guard("signing in"):
                remember_session(auth().sign_in(email, password))
                st.rerun()
    with sign_up, st.form("ftc_sign_up"):
        email = st.text_input("Email", key="signup_email")
        password = st.text_input("Password (6 characters or more)", type="password", key="signup_password")
        if st.form_submit_button("Create account"):
            with guard("creating the account"):
                sess = auth().sign_up(email, password)
                if sess is None:
                    st.success("Account created. Confirm your address from the email Supabase sent, then sign in.")
                else:
                    remember_session(sess)
                    st.rerun()


def teams_section(svc) -> None:
    st.subheader("Teams")
    teams = svc.my_teams()
    if teams:
        st.dataframe([{"team": t["name"], "your role": t["role"]} for t in teams], hide_index=True, key="acc_teams")
    else:
        st.caption("You are in no team yet: your work is personal. Create a team or accept an invitation.")
    with st.form("ftc_new_team", clear_on_submit=True):
        name = st.text_input("New team name", key="acc_team_name")
        if st.form_submit_button("Create team"):
            with guard("creating the team"):
                select_team(svc.create_team(name))
                st.rerun()

    mine = svc.my_invitations()
    if mine:
        st.subheader("Invitations for you")
        for inv in mine:
            c1, c2, c3 = st.columns([3, 1, 1])
            c1.markdown(f"**{inv['team_name']}** invites you as {inv['role']}")
            if c2.button("Accept", key=f"acc_accept_{inv['id']}", type="primary"):
                with guard("accepting the invitation"):
                    select_team(svc.accept(str(inv["id"])))
                    st.rerun()
            if c3.button("Decline", key=f"acc_decline_{inv['id']}"):
                with guard("declining the invitation"):
                    svc.withdraw(str(inv["id"]))
                    st.rerun()


def members_section(svc, team_id: str) -> None:
    teams = {t["id"]: t for t in svc.my_teams()}
    team = teams.get(team_id)
    if team is None:
        return
    st.subheader(f"Members of {team['name']}")
    st.dataframe([{"email": m["email"], "role": m["role"]} for m in svc.members(team_id)], hide_index=True,
                 key="acc_members")
    if team["role"] not in ("owner", "admin"):
        return
    with st.form("ftc_invite", clear_on_submit=True):
        c1, c2 = st.columns([3, 1])
        email = c1.text_input("Invite by email address", key="acc_invite_email")
        role = c2.selectbox("Role", ["member", "admin"], key="acc_invite_role")
        if st.form_submit_button("Invite"):
            with guard("inviting"):
                inv = svc.invite(team_id, email, role)
                st.success(f"Invited {inv['email']}: they see the invitation here once they sign in with that "
                           "address.")
    for inv in svc.invitations(team_id):
        c1, c2 = st.columns([4, 1])
        c1.caption(f"Invited: {inv['email']} ({inv['role']})")
        if c2.button("Revoke", key=f"acc_revoke_{inv['id']}"):
            with guard("revoking the invitation"):
                svc.withdraw(str(inv["id"]))
                st.rerun()


def credentials_section() -> None:
    from core.credential_vault import CredentialVault
    from core.team_settings import team_settings

    st.subheader("Provider credentials")
    st.caption("Stored encrypted for you alone, decrypted only to launch and watch your jobs. They are never shown "
               "again: replace or delete them.")
    vault = CredentialVault(session_store(), team_settings().credentials_key)
    stored = vault.masked()
    if stored:
        st.dataframe([{"provider": r["provider"], "key": r["key_hint"],
                       "updated": r["updated_at"].strftime("%Y-%m-%d %H:%M")} for r in stored],
                     hide_index=True, key="acc_creds")
    provider = st.selectbox("Provider", sorted(CLOUD_PROVIDERS), key="acc_cred_provider")
    with st.form("ftc_credentials", clear_on_submit=True):
        values = {f: st.text_input(f.replace("_", " ").capitalize(), type="password", key=f"acc_cred_{f}")
                  for f in CLOUD_PROVIDERS[provider]}
        c1, c2 = st.columns(2)
        if c1.form_submit_button("Save", type="primary"):
            with guard("saving the credentials"):
                vault.save(provider, values)
                st.rerun()
        if c2.form_submit_button("Delete stored"):
            with guard("deleting the credentials"):
                vault.delete(provider)
                st.rerun()


if not team_mode():
    st.title("Account")
    st.info("This console runs on this machine for one person; accounts and teams come with a hosted dashboard "
            "(see the README, \"Hosted dashboard\").")
elif current_session() is None:
    signed_out()
else:
    sess = current_session()
    st.title("Account")
    c1, c2 = st.columns([4, 1])
    c1.markdown(f"Signed in as **{sess.email}**")
    if c2.button("Sign out", key="acc_sign_out"):
        auth().sign_out(sess)
        forget_session()
        st.rerun()
    with guard("loading your teams"):
        svc = team_service()
        teams_section(svc)
        team_id = st.session_state.get("ftc_team_id")
        if team_id:
            members_section(svc, team_id)
    with guard("loading your provider credentials"):
        credentials_section()

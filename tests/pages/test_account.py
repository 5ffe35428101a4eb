"""The Account screen and the team switcher, driven with Streamlit's AppTest through the whole app (router,
sidebar, pages) in team mode: Supabase Auth from the GoTrue fake, data in the real PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from core.credential_vault import decrypt
from core.store.postgres import PostgresStore
from core.store.records import JobRecord

pytestmark = pytest.mark.postgres

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
KEY = "k" * 40
SECRET = "rpa_THISISTHEWHOLESECRETVALUE9f3k"


@pytest.fixture()
def team_env(console_home, local_supabase, pg_db, monkeypatch, tmp_path):
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    monkeypatch.setenv("SUPABASE_URL", local_supabase.url)
    monkeypatch.setenv("SUPABASE_ANON_KEY", local_supabase.anon_key)
    monkeypatch.setenv("SUPABASE_DB_URL", pg_db)
    monkeypatch.setenv("CONSOLE_CREDENTIALS_KEY", KEY)
    yield pg_db
    from pages._shared import ensure_poller

    ensure_poller().stop()  # the process-wide poller the app started, before its database goes


def app(signed_in: AppTest | None = None) -> AppTest:
    """A fresh browser session; ``signed_in`` carries over another one's sign-in and team. (AppTest runs the
    router, hence the sidebar, on a session's first run only; later runs execute the current page.)"""
    at = AppTest.from_file(APP, default_timeout=60)
    if signed_in is not None:
        for key in ("ftc_auth", "ftc_team_id"):
            at.session_state[key] = signed_in.session_state[key]
    return at.run()


def click(at: AppTest, label: str) -> AppTest:
    [b for b in at.button if b.label == label][0].click()
    return at.run()


def sign_up(at: AppTest, email: str) -> AppTest:
    at.text_input(key="signup_email").input(email)
    at.text_input(key="signup_password").input("correct horse battery")
    return click(at, "Create account")


def page_text(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.caption, *at.title, *at.subheader, *at.success, *at.error)]
    parts += [df.value.to_csv() for df in at.dataframe]
    # What the server renders into inputs (their defaults), not what the test itself typed into them.
    parts += [t.proto.default or "" for t in at.text_input]
    return "\n".join(str(p) for p in parts)


def test_local_mode_has_no_sign_in_and_the_account_page_says_why(console_home, monkeypatch, tmp_path):
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "none.toml"))
    for var in ("SUPABASE_DB_URL", "CONSOLE_STORE_URL"):
        monkeypatch.delenv(var, raising=False)
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and at.title[0].value == "Jobs"  # straight to work, no sign-in
    page = AppTest.from_file(str(Path(APP).parent / "pages" / "account.py"), default_timeout=60).run()
    assert not page.exception and "hosted dashboard" in page.info[0].value


def test_sign_up_team_invite_credentials_and_sign_out(team_env):
    dsn = team_env
    at = app()
    assert not at.exception and at.title[0].value == "Sign in"
    assert [b.label for b in at.button if b.label == "Sign out"] == []  # nothing but the sign-in screen

    at = sign_up(at, "alice@example.com")
    assert not at.exception, at.exception
    assert "Signed in as **alice@example.com**" in page_text(at)

    at.text_input(key="acc_team_name").input("Red")
    at = click(at, "Create team")
    assert not at.exception and "Members of Red" in page_text(at)
    team_id = at.session_state["ftc_team_id"]
    sidebar = app(signed_in=at).sidebar
    assert sidebar.selectbox(key=f"ftc_team_switcher_{team_id}").value == team_id  # the switcher follows
    assert sidebar.selectbox(key=f"ftc_team_switcher_{team_id}").options == ["Personal", "Red"]

    at.text_input(key="acc_invite_email").input("Bob@Example.com")
    at = click(at, "Invite")
    assert "Invited bob@example.com" in page_text(at)

    at.selectbox(key="acc_cred_provider").select("runpod")
    at = at.run()
    at.text_input(key="acc_cred_api_key").input(SECRET)
    at = click(at, "Save")
    assert not at.exception
    text = page_text(at)
    assert "rpa…9f3k" in text and SECRET not in text
    with psycopg.connect(dsn) as conn:
        stored = conn.execute("select api_key_encrypted from public.provider_credentials").fetchone()[0]
        invited = conn.execute("select email, team_id::text from public.invitations").fetchall()
    assert SECRET not in stored and decrypt(KEY, stored) == {"api_key": SECRET}
    assert invited == [("bob@example.com", team_id)]

    at = click(at, "Sign out")
    assert at.title[0].value == "Sign in" and "ftc_auth" not in at.session_state


def test_invited_member_accepts_and_sees_the_teams_jobs(team_env):
    dsn = team_env
    alice = app()
    alice = sign_up(alice, "alice@example.com")
    alice.text_input(key="acc_team_name").input("Red")
    alice = click(alice, "Create team")
    red = alice.session_state["ftc_team_id"]
    alice.text_input(key="acc_invite_email").input("bob@example.com")
    alice = click(alice, "Invite")
    owner = alice.session_state["ftc_auth"].identity()
    base = PostgresStore(dsn)
    try:
        base.as_user(owner, red).create_job(JobRecord(id="job_red_1", provider="local", model_name="tiny"))
        base.as_user(owner).create_job(JobRecord(id="job_alice_personal", provider="local"))
    finally:
        base.close()

    bob = sign_up(app(), "bob@example.com")
    assert "**Red** invites you as member" in page_text(bob)
    bob = click(bob, "Accept")
    assert not bob.exception and bob.session_state["ftc_team_id"] == red
    home = app(signed_in=bob)  # the router opens the Jobs screen, in the team just joined
    assert not home.exception and home.title[0].value == "Jobs"
    assert list(home.dataframe[0].value["job"]) == ["job_red_1"]  # the team's job, not Alice's personal one


def test_wrong_password_is_a_message_not_a_traceback(team_env):
    at = sign_up(app(), "carol@example.com")
    at = click(at, "Sign out")
    at.text_input(key="signin_email").input("carol@example.com")
    at.text_input(key="signin_password").input("not her password")
    at = click(at, "Sign in")
    assert not at.exception
    assert [e.value for e in at.error] == ["Wrong email or password."]
    assert at.title[0].value == "Sign in"


def test_a_key_typed_on_deploy_in_team_mode_is_saved_for_that_user_alone(team_env, demo_home):
    from core.config import load_config_file
    from core.credentials import credentials_for
    from pages._team import STORE_KEY

    dsn = team_env
    at = sign_up(app(), "alice@example.com")
    store = at.session_state[STORE_KEY][1]
    store.save_config("demo-sft", load_config_file(demo_home / "demo" / "sft.yaml").to_dict())
    at.session_state["deploy_provider"] = "runpod"
    at.switch_page("pages/deploy.py")
    at = at.run()
    assert not at.exception, at.exception
    assert "deploy_cred_runpod_api_key" in [t.key for t in at.text_input], [t.key for t in at.text_input]
    at.text_input(key="deploy_cred_runpod_api_key").input(SECRET)
    at = at.run()
    assert SECRET not in page_text(at)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select u.email, c.api_key_encrypted from public.provider_credentials c"
                            " join auth.users u on u.id = c.user_id").fetchall()
    assert [(email, decrypt(KEY, blob)) for email, blob in rows] == [("alice@example.com", {"api_key": SECRET})]
    assert credentials_for("runpod") == {}  # nothing kept in the process that serves every user

    bob = sign_up(app(), "bob@example.com")  # another user of the same console sees no key of alice's
    bob.session_state[STORE_KEY][1].save_config("bobs", load_config_file(demo_home / "demo" / "sft.yaml").to_dict())
    bob.session_state["deploy_provider"] = "runpod"
    bob.switch_page("pages/deploy.py")
    bob = bob.run()
    assert bob.text_input(key="deploy_cred_runpod_api_key").placeholder == "not set"

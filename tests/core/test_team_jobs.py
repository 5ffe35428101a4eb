"""TeamJobService on the real database: a launched machine gets a job token (never a key), each job runs with
its owner's decrypted credentials, and pollers of several consoles never act on one job at the same time."""

from __future__ import annotations

import json

import pytest

from core.config import load_config_file
from core.credential_vault import CredentialVault
from core.job_tokens import token_hash, unpack_credential
from core.jobspec import JobSpec
from core.providers.base import _REGISTRY, Provider, ProviderRef, ProviderStatus, register
from core.store.postgres import PostgresStore
from core.team_jobs import TeamJobService, job_service_for
from core.team_settings import TeamSettings
from tests.support.team_db import make_team, make_user

pytestmark = pytest.mark.postgres
KEY = "c" * 40


class TeamFake(Provider):
    """Records who it was made for and what it was asked; its machines run forever."""

    name = "teamfake"
    display_name = "Team fake"
    report_channel = "stdout"
    seen: list[tuple[str, dict, object]] = []

    def validate_credentials(self):
        return {}

    def offers(self):
        return []

    def launch(self, req):
        TeamFake.seen.append(("launch", dict(self.credentials), req))
        return ProviderRef(ref=f"fake-{req.job_id}")

    def status(self, ref):
        TeamFake.seen.append(("status", dict(self.credentials), ref))
        return ProviderStatus(state="running")

    def logs(self, ref, tail=200):
        return ""

    def cost(self, ref):
        return None

    def cancel(self, ref):
        TeamFake.seen.append(("cancel", dict(self.credentials), ref))

    def list_owned(self):
        return []


@pytest.fixture()
def fake_provider():
    TeamFake.seen = []
    register(TeamFake)
    yield TeamFake
    _REGISTRY.pop("teamfake", None)


@pytest.fixture()
def team(pg_db, demo_home, fake_provider):
    settings = TeamSettings(url="https://proj.supabase.co", anon_key="anon-public-key", db_url=pg_db,
                            credentials_key=KEY)
    base = PostgresStore(pg_db)
    alice, bob = make_user(pg_db, "alice@example.com"), make_user(pg_db, "bob@example.com")
    red = make_team(pg_db, alice, "Red")
    for who, secret in ((alice, "alice-secret-value-1"), (bob, "bob-secret-value-22")):
        CredentialVault(base.as_user(who), KEY).save("teamfake", {"api_key": secret})
    cfg = load_config_file(demo_home / "demo" / "sft.yaml")
    yield settings, base, alice, bob, red, cfg
    base.close()


def test_launch_gives_the_machine_a_job_token_and_the_owners_credentials(team, pg_db):
    settings, base, alice, _, red, cfg = team
    svc = TeamJobService(base.as_user(alice, red), team=settings)
    job = svc.deploy(cfg, provider="teamfake")
    assert job.status == "provisioning" and job.provider_ref == f"fake-{job.id}"
    event, creds, req = TeamFake.seen[0]
    assert event == "launch" and creds == {"api_key": "alice-secret-value-1"}
    spec = JobSpec.read(req.spec_path)
    assert (spec.sink.kind, spec.sink.url) == ("supabase", "https://proj.supabase.co")
    job_token, anon = unpack_credential(spec.sink.token)
    assert anon == "anon-public-key"
    tokens = base.query("select token_hash, job_id from public.job_tokens")
    assert tokens == [{"token_hash": token_hash(job_token), "job_id": job.id}]
    written = json.dumps(json.loads(open(req.spec_path).read()))
    for secret in (pg_db, KEY, "alice-secret-value-1"):
        assert secret not in written  # the machine gets neither the database, the vault key nor the API key
    assert req.env["FTC_SINK_TOKEN"] == spec.sink.token  # what a remote machine gets, through its secret env


def test_a_provider_without_a_secret_env_keeps_its_channel_and_gets_no_token(team, pg_db, monkeypatch):
    settings, base, alice, _, red, cfg = team
    monkeypatch.setattr(TeamFake, "secret_env", False)
    job = TeamJobService(base.as_user(alice, red), team=settings).deploy(cfg, provider="teamfake")
    _, _, req = TeamFake.seen[0]
    assert JobSpec.read(req.spec_path).sink.kind == "stdout" and "FTC_SINK_TOKEN" not in req.env
    assert base.query("select job_id from public.job_tokens where job_id = %s", (job.id,)) == []


def test_worker_polls_each_job_with_its_owners_credentials(team):
    settings, base, alice, bob, red, cfg = team
    for who, team_id in ((alice, red), (bob, None)):
        TeamJobService(base.as_user(who, team_id), team=settings).deploy(cfg, provider="teamfake")
    TeamFake.seen.clear()
    worker = job_service_for(base, team=settings)  # python -m core worker: no user, every team's jobs
    assert isinstance(worker, TeamJobService) and len(worker.poll_all()) == 2
    polled = {ref: creds["api_key"] for event, creds, ref in TeamFake.seen if event == "status"}
    jobs = {j.user_id: j.provider_ref for j in base.list_jobs()}
    assert polled == {jobs[alice.user_id]: "alice-secret-value-1", jobs[bob.user_id]: "bob-secret-value-22"}
    # Alice saves a new key: the worker's next poll of her job uses it, not the instance built with the old one.
    CredentialVault(base.as_user(alice), KEY).save("teamfake", {"api_key": "alice-new-secret-333"})
    TeamFake.seen.clear()
    worker.poll_all()
    polled = {ref: creds["api_key"] for event, creds, ref in TeamFake.seen if event == "status"}
    assert polled[jobs[alice.user_id]] == "alice-new-secret-333"


def test_pollers_skip_a_job_another_console_is_acting_on(team, pg_db):
    settings, base, alice, bob, red, cfg = team
    a = TeamJobService(base.as_user(alice, red), team=settings).deploy(cfg, provider="teamfake")
    b = TeamJobService(base.as_user(bob), team=settings).deploy(cfg, provider="teamfake")
    TeamFake.seen.clear()
    other_console = PostgresStore(pg_db)
    try:
        with other_console.job_lock(a.id) as held:
            assert held
            TeamJobService(base, team=settings).poll_all()
        assert [ref for event, _, ref in TeamFake.seen if event == "status"] == [b.provider_ref]
    finally:
        other_console.close()

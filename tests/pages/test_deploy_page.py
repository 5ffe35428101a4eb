"""The Deploy screen (streamlit AppTest): provider cards, credentials checked with a real call, GPU offers and a
launch on the fake RunPod, with the DeploymentResponse shown."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.fakes.machine import ROOT
from tests.fakes.runpod_api import FakeRunPod


@pytest.fixture()
def saved_config(demo_home):
    import yaml

    from core.store import open_store

    cfg = yaml.safe_load((demo_home / "demo" / "sft.yaml").read_text())
    return open_store().save_config("demo-sft", cfg)


@pytest.fixture()
def runpod(monkeypatch):
    import core.credentials as creds

    monkeypatch.setattr(creds, "_session", {})
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", "/nonexistent")
    with FakeRunPod() as f:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", f.url)
        yield f


def page() -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / "deploy.py"), default_timeout=60)


def test_cards_show_every_provider_and_grey_what_it_cannot_do(saved_config, runpod):
    at = page().run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "RunPod" in text and "Lambda" in text and "This machine" in text
    assert "~~Spot / interruptible price~~" in text  # RunPod cannot, and says why
    assert "a preempted pod would lose the run" in text
    assert at.selectbox(key="deploy_gpu_local").options  # the local CPU/GPU offer


def test_runpod_credentials_offers_and_launch(saved_config, runpod, monkeypatch):
    from core.store import open_store

    monkeypatch.setenv("RUNPOD_API_KEY", runpod.api_key)
    at = page()
    at.session_state["deploy_provider"] = "runpod"
    at.run()
    assert not at.exception
    at.button(key="deploy_check").click().run()
    assert any("Credentials accepted" in s.value and "user_fake123" in s.value for s in at.success)
    gpu = at.selectbox(key="deploy_gpu_runpod")
    labels = gpu.options  # already formatted
    assert any("RTX 4090 · 24 GB · $0.34/h per GPU · community" in str(label) for label in labels)
    at.number_input(key="deploy_budget").set_value(5.0).run()
    at.button(key="deploy_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = open_store().list_jobs()[0]
    assert job.provider == "runpod" and job.provider_ref and job.provider_ref.startswith("fakepod")
    assert runpod.deploy_inputs[-1]["cloudType"] == "COMMUNITY"  # the quoted offer's cloud
    shown = [j.value for j in at.json]
    resp = json.loads(shown[-1]) if isinstance(shown[-1], str) else shown[-1]
    assert resp["deployment_id"] == job.provider_ref and resp["cost"]["cost_per_hour"] == pytest.approx(0.34)


def test_a_refused_key_is_reported_and_nothing_is_launched(saved_config, runpod, monkeypatch):
    from core.store import open_store

    monkeypatch.setenv("RUNPOD_API_KEY", "wrong-key")
    at = page()
    at.session_state["deploy_provider"] = "runpod"
    at.run()
    at.button(key="deploy_check").click().run()
    assert any("refused the API key" in e.value for e in at.error)
    shown = [m.value for m in [*at.markdown, *at.caption, *at.error, *at.success]]
    shown += [t.placeholder or "" for t in at.text_input] + [str(t.value) for t in at.text_input]
    assert not [s for s in shown if "wrong-key" in s]  # the key is never shown, only masked
    assert open_store().list_jobs() == [] and runpod.deploy_inputs == []

"""Local-mode credentials: a key pasted with a trailing newline or space is used without it (requests refuses a
header with a newline, and the providers report that as "not reachable"), and a blank field is no credential."""

from __future__ import annotations

import pytest

from core import credentials as C


@pytest.fixture()
def clean(monkeypatch, tmp_path):
    monkeypatch.setattr(C, "_session", {})
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[lambda]\napi_key = "  from-file-key \\n"\n')
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(secrets))
    for var in ("RUNPOD_API_KEY", "KAGGLE_USERNAME", "KAGGLE_KEY", "LAMBDA_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_typed_keys_are_stripped_and_blank_ones_dropped(clean):
    C.set_session_credentials("kaggle", {"username": " ada ", "key": "   "})
    assert C.credentials_for("kaggle") == {"username": "ada"}


def test_keys_from_the_environment_and_the_secrets_file_are_stripped(clean, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_KEY123\n")
    assert C.credentials_for("runpod") == {"api_key": "rpa_KEY123"}
    assert C.credentials_for("lambda") == {"api_key": "from-file-key"}


def test_a_service_built_before_a_key_was_typed_uses_the_new_key(clean, tmp_path):
    # The poller's own JobService may have built the provider (orphan reaper, an earlier job) before the user
    # typed a key on the Deploy page; its status calls for the new job must not keep going out without it.
    from core.jobs import JobService
    from core.store.sqlite import SQLiteStore

    svc = JobService(SQLiteStore(tmp_path / "c.db"), credentials=C.credentials_for)
    before = svc.provider("runpod")
    assert before.credentials == {} and svc.provider("runpod") is before  # unchanged: the same instance
    C.set_session_credentials("runpod", {"api_key": "rpa_NEWKEY"})
    assert svc.provider("runpod").credentials == {"api_key": "rpa_NEWKEY"}

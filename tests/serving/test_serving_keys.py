"""The vLLM server's key reaches the CLI through $VLLM_API_KEY, so it need not sit in the process list as a
flag, and ``chat --with vllm`` sends it too (it used to send none: a keyed server answered 401)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core import chat, serving
from core.cli import main


@pytest.fixture()
def seen(monkeypatch):
    calls: dict[str, object] = {}
    monkeypatch.setenv("VLLM_API_KEY", "sk-from-env")
    monkeypatch.setattr(serving, "_store", lambda: None)
    monkeypatch.setattr(serving, "_model", lambda store, ref: SimpleNamespace(id="mdl_1", name="tuned"))

    def hot_load(store, model_id, url, *, api_key=None, path_on_server=None):
        calls["hot_load"] = api_key
        return {"message": "ok", "base_url": url, "lora_name": "tuned"}

    def stream_chat(url, model, messages, *, api_key=None, **kw):
        calls["chat"] = api_key
        yield "hi"

    monkeypatch.setattr(serving, "vllm_hot_load", hot_load)
    monkeypatch.setattr(chat, "stream_chat", stream_chat)
    return calls


def test_serve_hot_load_takes_the_key_from_the_environment(seen, capsys):
    assert main(["serve", "mdl_1", "--with", "vllm", "--url", "http://127.0.0.1:9"]) == 0
    assert seen["hot_load"] == "sk-from-env"
    assert main(["serve", "mdl_1", "--with", "vllm", "--url", "http://127.0.0.1:9", "--api-key", "sk-flag"]) == 0
    assert seen["hot_load"] == "sk-flag"


def test_chat_with_vllm_sends_the_key(seen, capsys):
    assert main(["chat", "mdl_1", "hello", "--with", "vllm", "--url", "http://127.0.0.1:9/v1", "--system", ""]) == 0
    assert seen["chat"] == "sk-from-env"
    assert main(["chat", "mdl_1", "hello", "--with", "ollama", "--system", ""]) == 0
    assert seen["chat"] is None  # Ollama has no key; the vLLM one is not sent elsewhere

"""Chat through a running server's OpenAI-compatible API, streamed (loopback vLLM and Ollama)."""

from __future__ import annotations

import pytest

from core.chat import base_url_for, parse_sse, served_models, stream_chat
from core.errors import ConsoleError, ResourceNotFound
from tests.support.fake_ollama import FakeOllama
from tests.support.fake_vllm import FakeVLLM


def test_parse_sse_yields_deltas_until_done():
    lines = ['data: {"choices":[{"delta":{"role":"assistant"}}]}', "", ": keep-alive",
             'data: {"choices":[{"delta":{"content":"Par"}}]}', 'data: {"choices":[{"delta":{"content":"is."}}]}',
             "data: [DONE]", 'data: {"choices":[{"delta":{"content":"never read"}}]}']
    assert list(parse_sse(iter(lines))) == ["Par", "is."]
    with pytest.raises(ConsoleError, match="out of memory"):
        list(parse_sse(iter(['data: {"error": {"message": "out of memory"}}'])))


def test_base_url_for_each_engine(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:11500")
    assert base_url_for("ollama") == "http://127.0.0.1:11500/v1"
    assert base_url_for("vllm") == "http://localhost:8000/v1"
    assert base_url_for("vllm", "http://gpu:8001/") == "http://gpu:8001/v1"
    with pytest.raises(ConsoleError, match="Unknown serving engine"):
        base_url_for("tgi")


def test_stream_from_vllm_arrives_in_pieces():
    with FakeVLLM("base-model", reply="The capital of France is Paris.") as server:
        url = base_url_for("vllm", server.url)
        pieces = list(stream_chat(url, "base-model", [{"role": "user", "content": "Capital of France?"}]))
        body = server.calls("POST", "/v1/chat/completions")[0].json()
        assert served_models(url) == ["base-model"]
        with pytest.raises(ResourceNotFound):
            list(stream_chat(url, "missing", [{"role": "user", "content": "hi"}]))
    assert len(pieces) > 1 and "".join(pieces) == "The capital of France is Paris."
    assert body["stream"] is True and body["messages"][0]["content"] == "Capital of France?"


def test_stream_from_ollama_through_ollama_host(monkeypatch):
    with FakeOllama(reply="Paris.", existing=("demo",)) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.url)
        text = "".join(stream_chat(base_url_for("ollama"), "demo", [{"role": "user", "content": "?"}]))
    assert text == "Paris."

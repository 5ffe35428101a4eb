"""Chat with a model served by vLLM or Ollama through their OpenAI-compatible API, tokens streamed as they come.

``POST {base}/chat/completions`` with ``"stream": true`` answers server-sent events: ``data: {chunk}`` lines whose
``choices[0].delta.content`` carry the text, ending with ``data: [DONE]`` (OpenAI API reference, "chat completion
chunk"; vLLM's and Ollama's ``/v1`` servers emit the same shape).
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from core import http_client
from core.errors import ConsoleError

ENGINES = ("vllm", "ollama")


def base_url_for(engine: str, url: str | None = None) -> str:
    """The ``/v1`` root for an engine: the URL given, else its usual local address."""
    if engine not in ENGINES:
        raise ConsoleError(f"Unknown serving engine '{engine}'. Choose one of: {', '.join(ENGINES)}.")
    if url:
        root = url.rstrip("/")
        return root if root.endswith("/v1") else root + "/v1"
    if engine == "ollama":
        from core.ollama import host_url

        return host_url() + "/v1"
    return "http://localhost:8000/v1"


def parse_sse(lines: Iterator[str]) -> Iterator[str]:
    """Text deltas from an OpenAI-style event stream."""
    for line in lines:
        line = line.strip()
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            return
        chunk = json.loads(payload)
        if chunk.get("error"):
            err = chunk["error"]
            raise ConsoleError(f"The server stopped the answer: {err.get('message') if isinstance(err, dict) else err}")
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content")
            if text:
                yield text


def stream_chat(base_url: str, model: str, messages: list[dict[str, str]], *, api_key: str | None = None,
                max_tokens: int = 256, temperature: float = 0.0, service: str = "the model server") -> Iterator[str]:
    body: dict[str, Any] = {"model": model, "messages": messages, "stream": True, "max_tokens": max_tokens,
                            "temperature": temperature}
    with http_client.stream("POST", f"{base_url.rstrip('/')}/chat/completions", service=service, json_body=body,
                            headers=http_client.bearer(api_key)) as resp:
        yield from parse_sse(resp.iter_lines())


def served_models(base_url: str, *, api_key: str | None = None, service: str = "the model server") -> list[str]:
    resp = http_client.call("GET", f"{base_url.rstrip('/')}/models", service=service,
                            headers=http_client.bearer(api_key), timeout=10)
    return [m.get("id") for m in resp.json().get("data", []) if m.get("id")]

"""One way to call the serving engines' HTTP APIs (Ollama, vLLM, any OpenAI-compatible server) with errors a
person can act on. httpx is imported on first use, so pages that never call a server do not pay for it."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Iterator

from core.errors import AuthError, ProviderError, QuotaError, ResourceNotFound


def _httpx():
    import httpx

    return httpx


def raise_for(service: str, url: str, status: int, body: str) -> None:
    if status < 400:
        return
    detail = _detail(body)
    if status == 401 or status == 403:
        raise AuthError(f"{service} refused the request ({status}): {detail}", hint="Check the API key.")
    if status == 404:
        raise ResourceNotFound(f"{service} has no {url.rsplit('/', 1)[-1] or url} ({detail}).")
    if status == 429:
        raise QuotaError(f"{service} is rate-limiting requests: {detail}", hint="Try again shortly.")
    err = ProviderError(f"{service} answered {status}: {detail}")
    err.retryable = status >= 500
    raise err


def _detail(body: str) -> str:
    """The message inside the servers' JSON error shapes, else the start of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300] or "no detail"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err)
        return str(err or data.get("message") or data.get("detail") or data)[:300]
    return str(data)[:300]


@contextmanager
def _transport(service: str, url: str, timeout: float) -> Iterator[None]:
    """Network failures (nothing listening, DNS, a server that stops talking) as messages naming the service."""
    httpx = _httpx()
    try:
        yield
    except httpx.TimeoutException:
        err = ProviderError(f"{service} at {url} did not answer within {timeout:.0f} s.")
        err.retryable = True
        raise err from None
    except httpx.HTTPError as exc:
        raise ProviderError(f"Cannot reach {service} at {url}: {exc}.",
                            hint=f"Is {service} running, and is the address right?") from None


def call(method: str, url: str, *, service: str, timeout: float = 30.0, headers: dict[str, str] | None = None,
         json_body: Any = None, content: Any = None) -> Any:
    """One request; returns the httpx response once its status is known to be a success."""
    with _transport(service, url, timeout):
        resp = _httpx().request(method, url, json=json_body, content=content, headers=headers, timeout=timeout)
    raise_for(service, url, resp.status_code, resp.text)
    return resp


@contextmanager
def stream(method: str, url: str, *, service: str, timeout: float = 300.0, headers: dict[str, str] | None = None,
           json_body: Any = None) -> Iterator[Any]:
    """A streamed response whose lines are read as they arrive (NDJSON or server-sent events); ``timeout`` bounds
    the wait for each piece, not the whole answer."""
    with _transport(service, url, timeout), _httpx().stream(method, url, json=json_body, headers=headers,
                                                            timeout=timeout) as resp:
        if resp.status_code >= 400:
            raise_for(service, url, resp.status_code, resp.read().decode("utf-8", "replace"))
        yield resp


def bearer(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}

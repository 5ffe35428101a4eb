"""Provider credentials from the environment or ``.streamlit/secrets.toml`` (the page may add more at run time).

Secrets are only read to make a provider call; they are never written to a job row, a log or a page.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from core.paths import PROJECT_ROOT

# provider -> {credential field: environment variable}
ENV_VARS: dict[str, dict[str, str]] = {
    "runpod": {"api_key": "RUNPOD_API_KEY"},
    "huggingface": {"token": "HF_TOKEN"},
    "kaggle": {"username": "KAGGLE_USERNAME", "key": "KAGGLE_KEY"},
    "lambda": {"api_key": "LAMBDA_API_KEY"},
    "skypilot": {},
    "local": {},
}

_session: dict[str, dict[str, str]] = {}


def _secrets_file() -> dict[str, Any]:
    path = Path(os.environ.get("CONSOLE_SECRETS_FILE") or PROJECT_ROOT / ".streamlit" / "secrets.toml")
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def set_session_credentials(provider: str, values: dict[str, str]) -> None:
    """Credentials typed on the page: kept in this process's memory only."""
    _session[provider] = {k: v.strip() for k, v in values.items() if v and v.strip()}


def credentials_for(provider: str) -> dict[str, str]:
    out: dict[str, str] = {}
    section = _secrets_file().get(provider) or {}
    out.update({k: str(v) for k, v in section.items() if isinstance(v, (str, int))})
    for field, var in ENV_VARS.get(provider, {}).items():
        if os.environ.get(var):
            out[field] = os.environ[var]
    out.update(_session.get(provider, {}))
    # A pasted key often ends in a newline or space: sent in a header, it fails as "provider not reachable".
    return {k: v.strip() for k, v in out.items() if v.strip()}


def mask(secret: str | None) -> str:
    if not secret:
        return ""
    return "•" * 8 if len(secret) < 12 else f"{secret[:3]}…{secret[-4:]}"

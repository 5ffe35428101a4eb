"""Team mode's settings: the ``[supabase]`` section of ``.streamlit/secrets.toml``, overridden by the environment.

Team mode is on when a database URL is set. ``url`` and ``anon_key`` are the Supabase project's API address and
public key (sign-in, and the training machines' ingest calls); ``db_url`` is the Postgres connection string the
dashboard and the worker connect with; ``credentials_key`` encrypts provider credentials stored per user.
"""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

from core.credentials import _secrets_file

ENV = {"url": "SUPABASE_URL", "anon_key": "SUPABASE_ANON_KEY", "db_url": "SUPABASE_DB_URL",
       "credentials_key": "CONSOLE_CREDENTIALS_KEY"}


class TeamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = ""
    anon_key: str = ""
    db_url: str = ""
    credentials_key: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.db_url)


def team_settings() -> TeamSettings:
    section = _secrets_file().get("supabase") or {}
    values = {k: str(section.get(k) or "") for k in ENV}
    values.update({k: os.environ[v] for k, v in ENV.items() if os.environ.get(v)})
    return TeamSettings(**values)

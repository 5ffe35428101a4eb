"""Store selection: the embedded SQLite file by default; team mode plugs in a Postgres/Supabase engine."""

from __future__ import annotations

import os
from pathlib import Path

from core.store.base import Store
from core.store.records import ConfigRecord, DatasetRecord, ErrorRecord, JobRecord, ModelRecord

_STORES: dict[str, Store] = {}


def open_store(url: str | None = None) -> Store:
    """Open (and cache per process) the store named by ``url`` or ``$CONSOLE_STORE_URL``.

    ``sqlite:///path/to/file.db`` or empty for ``$CONSOLE_HOME/console.db``; ``postgresql://...`` (or, with no
    URL given, ``[supabase] db_url`` in .streamlit/secrets.toml) for team mode, acting as the connection's role
    until a page narrows it to the signed-in user with ``as_user``.
    """
    url = url or os.environ.get("CONSOLE_STORE_URL") or _team_db_url()
    if url in _STORES:
        return _STORES[url]
    if url.startswith(("postgresql://", "postgres://")):
        from core.store.postgres import PostgresStore

        store: Store = PostgresStore(url)
    elif not url or url.startswith("sqlite:"):
        from core.paths import db_path
        from core.store.sqlite import SQLiteStore

        path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite://")) if url else db_path()
        store = SQLiteStore(path)
    else:
        from core.errors import ConsoleError
        from core.store.postgres import scrub_secret

        raise ConsoleError(f"Unsupported store URL '{scrub_secret(url, url)}'. Use sqlite:///path/to/console.db or "
                           "postgresql://...")
    _STORES[url] = store
    return store


def _team_db_url() -> str:
    from core.team_settings import team_settings

    return team_settings().db_url


def reset_store_cache() -> None:
    _STORES.clear()


__all__ = ["Store", "open_store", "reset_store_cache", "ConfigRecord", "DatasetRecord", "ErrorRecord", "JobRecord",
           "ModelRecord"]

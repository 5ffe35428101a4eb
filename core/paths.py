"""Where the console keeps its files: ``$CONSOLE_HOME`` (default ``~/.finetune-console``)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def console_home() -> Path:
    home = Path(os.environ.get("CONSOLE_HOME") or Path.home() / ".finetune-console").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def db_path() -> Path:
    return console_home() / "console.db"


def datasets_dir() -> Path:
    return _sub("datasets")


def jobs_dir() -> Path:
    return _sub("jobs")


def artifacts_dir() -> Path:
    return _sub("artifacts")


def demo_dir() -> Path:
    return _sub("demo")


def job_dir(job_id: str) -> Path:
    d = jobs_dir() / job_id
    d.mkdir(parents=True, exist_ok=True)
    return d


def _sub(name: str) -> Path:
    d = console_home() / name
    d.mkdir(parents=True, exist_ok=True)
    return d

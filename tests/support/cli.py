"""Run `python -m core ...` as a user would, in a subprocess with the test's CONSOLE_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, home: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    e = {**os.environ, "CONSOLE_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})}
    e.pop("CONSOLE_STORE_URL", None)
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=e, capture_output=True, text=True,
                          timeout=timeout)


def cli_json(*args: str, home: Path, expect_rc: int = 0, **kw):
    r = run_cli(*args, "--json", home=home, **kw)
    assert r.returncode == expect_rc, f"rc={r.returncode}\nstdout={r.stdout[-2000:]}\nstderr={r.stderr[-4000:]}"
    return json.loads(r.stdout)

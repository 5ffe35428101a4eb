"""A cloud machine for loopback tests: a local process group that runs what a provider would run at boot.

Stands in for a RunPod container or a Lambda instance. ``root`` plays the machine's disk: the bootstrap's work
folder is ``root/workspace/ftc`` (through ``FTC_WORK``), the image's Python is this test run's interpreter
(``FTC_PYTHON``) and installs are checked offline (``FTC_PIP_ARGS=--no-index``), so the generated script runs
unmodified. Killing the machine kills the whole process group, as a provider does when it removes a container.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalMachine:
    def __init__(self, root: Path, env: dict[str, str] | None = None, *, install: bool = False) -> None:
        self.root = Path(root)
        self.work = self.root / "workspace" / "ftc"
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "console.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("FTC_", "RUNPOD_", "HF_TOKEN"))}
        self.env = {
            **base,
            "FTC_WORK": str(self.work),
            "FTC_PYTHON": sys.executable,
            "FTC_REPORT_HOST": "127.0.0.1",
            **({"FTC_PIP_ARGS": "--no-index"} if install else {"FTC_SKIP_INSTALL": "1"}),
            **(env or {}),
        }
        self.proc: subprocess.Popen | None = None

    def start_command(self, command: str, env: dict[str, str] | None = None) -> "LocalMachine":
        """Run a container start command the way Docker runs ``CMD``: split into argv, no outer shell."""
        return self._start(shlex.split(command), env)

    def start_argv(self, argv: list[str], env: dict[str, str] | None = None) -> "LocalMachine":
        """Run a container command given as argv (Docker's exec form, as HF Jobs' ``command`` is)."""
        return self._start(list(argv), env)

    def start_script(self, script: str, env: dict[str, str] | None = None) -> "LocalMachine":
        path = self.root / "boot.sh"
        path.write_text(script, encoding="utf-8")
        return self._start(["bash", str(path)], env)

    def _start(self, argv: list[str], env: dict[str, str] | None) -> "LocalMachine":
        self.env.update(env or {})
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, env=self.env, cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout) if self.proc else None
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Remove the container: every process of the machine goes at once."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


def wait_for(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")

"""This machine: the trainer runs as a subprocess in its own process group.

The process is started through a tiny shell wrapper that records the trainer's exit status in
``exit_code`` beside the log, so a console that restarts (and is no longer the parent) still learns how a job
ended. The ref is ``local:<pid>:<create_time>:<job_id>``; the create time guards against a recycled pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import LaunchError
from core.paths import PROJECT_ROOT
from core.providers.base import GPUOffer, LaunchRequest, Provider, ProviderRef, ProviderStatus, register

# $1 is the exit-status file, the rest the trainer's command line (one process, or torchrun for several). The
# shell ignores SIGTERM so that a cancel, which signals the whole group, still gets the trainer's exit status
# recorded; the trainer installs its own SIGTERM handler (graceful stop).
WRAPPER = ('trap "" TERM; exit_file="$1"; shift; "$@"; echo $? > "$exit_file.tmp" && mv "$exit_file.tmp" '
           '"$exit_file"')


def _gpu_count() -> int:
    """CUDA GPUs visible, without importing torch (the console must start fast)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    smi = shutil.which("nvidia-smi")
    if not smi:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


@register
class LocalProvider(Provider):
    name = "local"
    display_name = "This machine"
    capabilities = {
        "gpu": None,
        "multi_gpu": None,
        "multi_node": "One machine only; use SkyPilot for several nodes.",
        "spot": "Not applicable on your own machine.",
        "budget_enforced_by_provider": "Your own machine has no bill; the time limit still applies.",
        "resume": None,
    }
    report_channel = "sqlite"

    def __init__(self, credentials: dict[str, str] | None = None, *, python: str | None = None,
                 grace_s: float = 20.0) -> None:
        super().__init__(credentials)
        self.python = python or sys.executable
        self.grace_s = grace_s

    # -- interface --------------------------------------------------------------------------------------
    def validate_credentials(self) -> dict[str, Any]:
        return {"account": "local", "gpus": _gpu_count()}

    def offers(self) -> list[GPUOffer]:
        n = _gpu_count()
        if n == 0:
            import psutil

            ram = psutil.virtual_memory().total / 2**30
            return [GPUOffer(gpu_type="CPU", vram_gb=round(ram, 1), price_per_hour=0.0, available=True,
                             source="live", notes=f"{os.cpu_count()} cores, no CUDA GPU")]
        return [GPUOffer(gpu_type=name, vram_gb=vram, price_per_hour=0.0, available=True, max_count=n, source="live")
                for name, vram in _nvidia_gpus()]

    def capacity(self) -> int:
        # One job per GPU; one on a CPU-only machine (two would just halve each other's speed).
        return max(1, _gpu_count())

    def launch(self, req: LaunchRequest) -> ProviderRef:
        job_dir = Path(req.job_dir)
        log_path = job_dir / "train.log"
        exit_path = job_dir / "exit_code"
        exit_path.unlink(missing_ok=True)
        env = {**os.environ, **req.env, "PYTHONUNBUFFERED": "1"}
        if _gpu_count() == 0 and "OMP_NUM_THREADS" not in env:
            # Leave a core to the console and the browser: torch's spinning OpenMP threads collapse (10-100x
            # slower steps, measured) when they compete with other busy processes for every core.
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) - 1))
        env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        from trainer.launch import trainer_argv

        argv = trainer_argv(self.python, req.spec_path, nproc=max(1, req.gpu_count),
                            resume=(job_dir / "resume").exists())
        try:
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    ["/bin/sh", "-c", WRAPPER, "sh", str(exit_path), *argv],
                    cwd=str(PROJECT_ROOT), env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True,  # own process group: cancel reaches the trainer and its workers
                )
        except OSError as exc:
            raise LaunchError(f"Could not start the local trainer: {exc}") from None
        created = _create_time(proc.pid)
        (job_dir / "pid").write_text(str(proc.pid))
        return ProviderRef(ref=f"local:{proc.pid}:{created}:{req.job_id}", cost_per_hour=0.0,
                           gpu_type=(self.offers()[0].gpu_type if self.offers() else None),
                           extra={"log_path": str(log_path)})

    def status(self, ref: str) -> ProviderStatus:
        pid, created, job_id = _parse(ref)
        job_dir = _job_dir(job_id)
        if _alive(pid, created):
            return ProviderStatus(state="running")
        code = _read_exit(job_dir / "exit_code") if job_dir else None
        if code is None:
            return ProviderStatus(state="failed", message="The trainer process ended without an exit status "
                                  "(killed, or the machine restarted).")
        return ProviderStatus(state="exited" if code == 0 else "failed", exit_code=code,
                              message=None if code == 0 else f"The trainer exited with status {code}.")

    def logs(self, ref: str, tail: int = 200) -> str:
        job_dir = _job_dir(_parse(ref)[2])
        return tail_file(job_dir / "train.log", tail) if job_dir else ""

    def cost(self, ref: str) -> float | None:
        return 0.0

    def cancel(self, ref: str) -> None:
        """SIGTERM the process group (the trainer saves a checkpoint and stops), then SIGKILL after the grace."""
        pid, created, _ = _parse(ref)
        if not _alive(pid, created):
            return
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            if not _alive(pid, created):
                return
            time.sleep(0.2)
        _signal_group(pid, signal.SIGKILL)

    def terminate_now(self, ref: str) -> None:
        pid, created, _ = _parse(ref)
        if _alive(pid, created):
            _signal_group(pid, signal.SIGKILL)

    def list_owned(self) -> list[str]:
        from core.paths import jobs_dir

        refs = []
        for pid_file in jobs_dir().glob("*/pid"):
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            created = _create_time(pid)
            if created is not None and _alive(pid, created):
                refs.append(f"local:{pid}:{created}:{pid_file.parent.name}")
        return refs


def _job_dir(job_id: str | None) -> Path | None:
    from core.paths import jobs_dir

    return jobs_dir() / job_id if job_id else None


def _parse(ref: str) -> tuple[int, float | None, str | None]:
    parts = ref.split(":", 3)
    if len(parts) < 2 or parts[0] != "local":
        raise LaunchError(f"'{ref}' is not a local job reference.")
    created = float(parts[2]) if len(parts) > 2 and parts[2] not in ("", "None") else None
    return int(parts[1]), created, (parts[3] if len(parts) > 3 else None)


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except psutil.Error:
        return None


def _alive(pid: int, created: float | None) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > 1.0:
            return False  # the pid was recycled by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        pass


def _read_exit(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _nvidia_gpus() -> list[tuple[str, float]]:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.splitlines():
        name, _, mem = line.rpartition(",")
        try:
            gpus.append((name.strip(), round(float(mem) / 1024, 1)))
        except ValueError:
            continue
    return gpus


def tail_file(path: Path, lines: int) -> str:
    """Last ``lines`` lines without reading a large log whole."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            block = min(size, max(4096, lines * 200))
            f.seek(size - block)
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])

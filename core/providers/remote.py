"""What every port-channel provider does before it starts a machine: bundle, payload map, deadline, script.

Kept apart from the providers so RunPod and Lambda launch the same way; ``remote.json`` records what the console
must remember about the launch (files to push, port, price, budget deadline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.bootstrap import build_bootstrap, build_bundle, deadline_from_budget, local_model_dir, pack_model
from core.errors import LaunchError
from core.jobspec import JobSpec
from core.providers.base import LaunchRequest
from core.providers.http_channel import save_remote


@dataclass
class Payload:
    script: str
    fetch: dict[str, dict[str, Any]]
    deadline_epoch: float | None
    spec: JobSpec


def prepare_payload(req: LaunchRequest, *, provider: str, price_per_hour: float, work_dir: str,
                    release_cmd: str | None, port: int, python: str = "python3", **bootstrap_kw: Any) -> Payload:
    spec = JobSpec.read(req.spec_path)
    if spec.sink.kind not in ("http", "supabase"):
        raise LaunchError(f"{provider} machines report over the http channel, but the job asks for "
                          f"'{spec.sink.kind}'.")
    fetch = {name: {"source": "push", "local": str(path)} for name, path in payload_files(req, spec).items()}
    payload = build_payload(req, spec, fetch, provider=provider, price_per_hour=price_per_hour, work_dir=work_dir,
                            release_cmd=release_cmd, python=python, channel_port=port, channel="http",
                            **bootstrap_kw)
    save_remote(req.job_id, provider=provider, port=port, price_per_hour=price_per_hour,
                deadline_epoch=payload.deadline_epoch, push={k: v["local"] for k, v in fetch.items()}, ref=None,
                launched_at=None, ended_at=None)
    return payload


def payload_files(req: LaunchRequest, spec: JobSpec) -> dict[str, Path]:
    """What the machine needs from this computer: the trainer bundle, the dataset and a local model, packed."""
    job_dir = Path(req.job_dir)
    files = {"bundle": build_bundle(job_dir / "bundle.tar.gz"), "dataset": Path(spec.dataset_path)}
    model_dir = local_model_dir(spec)
    if model_dir:
        files["model"] = pack_model(model_dir, job_dir / "model.tar.gz")
    return files


def build_payload(req: LaunchRequest, spec: JobSpec, fetch: dict[str, dict[str, Any]], *, provider: str,
                  price_per_hour: float | None, work_dir: str, release_cmd: str | None, python: str = "python3",
                  **bootstrap_kw: Any) -> Payload:
    """The bootstrap for ``fetch``, with the budget deadline counted from now (billing starts at launch)."""
    now = time.time()
    deadline_s = deadline_from_budget(req.budget_usd, price_per_hour, req.max_hours)
    extra = ["bitsandbytes>=0.45"] if spec.config.quantization.mode != "none" else []
    if deadline_s:
        # Time for the trainer to checkpoint after the watchdog's SIGTERM: 10% of the run, 2 s to 2 min.
        bootstrap_kw.setdefault("stop_grace_s", min(120.0, max(2.0, 0.1 * deadline_s)))
    script = build_bootstrap(
        spec, provider=provider, fetch=fetch, gpu_count=req.gpu_count, release_cmd=release_cmd,
        deadline_s=deadline_s, price_per_hour=price_per_hour, work_dir=work_dir, python=python,
        extra_requirements=extra, now=now, **bootstrap_kw,
    )
    return Payload(script=script, fetch=fetch, deadline_epoch=now + deadline_s if deadline_s else None, spec=spec)

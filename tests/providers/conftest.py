"""What every provider's tests share: a JobService that launches through the module's ``provider`` fixture, and
the demo config launched on it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.jobs import JobService, ServiceSettings


@pytest.fixture()
def service(demo_home, provider):
    from core.store import open_store

    return JobService(open_store(), provider_factory=lambda name: provider,
                      settings=ServiceSettings(provisioning_timeout_s=3600))


def launch_demo(service: JobService, demo_home, provider: str, **kw: Any):
    """The demo SFT config created and launched on ``provider``; ``kw`` goes to ``JobService.create``."""
    from core.config import load_config_file

    cfg = load_config_file(demo_home / "demo" / "sft.yaml")
    job = service.create(cfg, provider=provider, **{"params": {}, **kw})
    return service.launch(job.id)


def ftc(obj: Any) -> str:
    """One structured log line as the trainer prints it (trainer.report.StdoutSink)."""
    return "@@FTC " + json.dumps(obj)


def launch_small_remote(prov, demo_home, *, gpu_type: str, budget_usd: float, steps: int = 4,
                        params: dict[str, Any] | None = None):
    """A 4-step demo job launched on ``prov`` by a service that waits long enough for a machine to boot."""
    from core.store import open_store
    from tests.providers.test_runpod_e2e import small_demo

    svc = JobService(open_store(), provider_factory=lambda name: prov,
                     settings=ServiceSettings(provisioning_timeout_s=600))
    job = svc.create(small_demo(demo_home, steps), provider=prov.name, gpu_type=gpu_type, budget_usd=budget_usd,
                     params=params)
    return svc, svc.launch(job.id)

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

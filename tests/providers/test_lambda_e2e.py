"""A whole remote job on a fake Lambda Cloud whose instances are local processes.

The console launches through its Lambda client; the fake runs the instance's cloud-init user data, which writes the
env file (job token, the channel's TLS certificate and key, the API key) and starts the generated bootstrap. The
bootstrap serves the report channel over TLS, the console pushes the bundle, dataset and model to it with the
certificate pinned, the real trainer trains the tiny demo model, the console pulls the rows live and downloads the
adapter over the same pinned channel, and the instance terminates itself through the Lambda API.
"""

from __future__ import annotations

import pytest

from core import lifecycle as L
from core.providers.lambda_labs import LambdaProvider
from tests.fakes.lambda_api import FakeLambda
from tests.fakes.machine import free_port, wait_for
from tests.providers.conftest import launch_small_remote
from tests.providers.test_runpod_e2e import poll_to_end

pytestmark = [pytest.mark.training, pytest.mark.slow]


@pytest.fixture()
def cloud(tmp_path):
    with FakeLambda(machines_root=tmp_path / "instances") as f:
        yield f
        f.kill_all()


def test_a_lambda_job_trains_over_the_pinned_tls_channel_and_the_instance_terminates_itself(demo_home, cloud):
    from core.providers.http_channel import load_remote

    prov = LambdaProvider({"api_key": cloud.api_key}, base_url=f"{cloud.url}/api/v1")
    svc, job = launch_small_remote(prov, demo_home, gpu_type="A10", budget_usd=5.0, params={"port": free_port()})
    assert job.status == L.PROVISIONING, job.reason
    ref = job.provider_ref
    try:
        job, seen_live = poll_to_end(svc, job.id, live=lambda j: not j.is_terminal)
    finally:
        machine = cloud.machines.get(ref)
        # What cloud-init printed, and the detached bootstrap's own output and log.
        log = machine.output() + "".join(
            (machine.work / name).read_text(errors="replace") for name in ("boot.out", "bootstrap.log")
            if (machine.work / name).exists()) if machine else ""
    assert job.status == L.COMPLETED, (job.reason, log[-3000:])
    assert seen_live, "rows arrived while the instance was still at work"
    assert prov.channel_url(ref, job.id).startswith("https://127.0.0.1:") and load_remote(job.id)["tls_sha256"]
    assert svc.store.get_metrics(job.id)[-1]["loss"] is not None and svc.store.get_predictions(job.id)
    # The adapter came back over the pinned channel and is registered.
    assert (demo_home / "artifacts" / job.id / "final" / "adapter_model.safetensors").exists()
    assert svc.store.find_model_by_job(job.id).artifact_path == job.artifact_path
    # The instance released itself with the API key from its user data, and its processes are gone.
    assert cloud.instances[ref]["status"] == "terminated"
    wait_for(lambda: not machine.alive, 30, what="the instance's processes to stop")
    assert "[ftc] the trainer exited with status 0" in log  # the log read is the bootstrap's
    assert cloud.api_key not in log and "BEGIN PRIVATE KEY" not in log

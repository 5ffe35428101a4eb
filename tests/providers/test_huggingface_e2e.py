"""A whole remote job on a fake Hugging Face whose Jobs are local processes.

The console launches through the real huggingface_hub: the bundle, dataset and demo model go to a private files
repo on the fake Hub, ``run_job`` starts the job's command (which decodes and runs the generated bootstrap) as a
local process with the token as a secret, the bootstrap downloads the files with that token, the real trainer
trains the tiny demo model printing ``@@FTC`` lines, the fake serves that output as the job's log, and the console
pulls the rows from it into a real SQLite store. The bootstrap pushes the adapter to a private model repo on the fake
Hub, the job ends COMPLETED, and the console settles it and deletes the files repo.
"""

from __future__ import annotations

import pytest

from core import lifecycle as L
from core.providers.http_channel import resource_name
from core.providers.huggingface import HuggingFaceProvider
from tests.fakes.hf_api import FakeHub
from tests.providers.conftest import launch_small_remote
from tests.providers.test_runpod_e2e import poll_to_end

pytestmark = [pytest.mark.training, pytest.mark.slow]


@pytest.fixture()
def hub(tmp_path):
    f = FakeHub(machines_root=tmp_path / "jobs").start()
    f.machine_env = {"HF_ENDPOINT": f.url}  # the machine's Hub is the fake too (artifact upload)
    yield f
    f.kill_all()
    f.stop()


def test_a_hugging_face_job_trains_reports_through_its_log_and_completes(demo_home, hub):
    prov = HuggingFaceProvider({"token": hub.token}, endpoint=hub.url)
    svc, job = launch_small_remote(prov, demo_home, gpu_type="A10G", budget_usd=5.0)
    assert job.status == L.PROVISIONING, job.reason
    ref = job.provider_ref
    try:
        # Live: rows in the store while the Hub still reports the job RUNNING (4 steps train in seconds, so the
        # job may already be "completing", uploading its adapter, when the first rows come in).
        job, seen_running_with_metrics = poll_to_end(
            svc, job.id, live=lambda j: hub.jobs[ref]["status"]["stage"] == "RUNNING" and not j.is_terminal)
    finally:
        machine = hub.machines.get(ref)
        log = machine.output() if machine else ""
    assert job.status == L.COMPLETED, (job.reason, log[-3000:])
    assert hub.jobs[ref]["status"]["stage"] == "COMPLETED"
    assert seen_running_with_metrics, "rows arrived from the log while the job was still running"
    metrics = svc.store.get_metrics(job.id)
    assert metrics and metrics[-1]["loss"] is not None
    assert svc.store.get_predictions(job.id)
    # The adapter went to a private model repo on the Hub with the job's token, and the job row points at it.
    repo_id = f"alice/ftc-{job.id}"
    assert job.artifact_path == f"hf://{repo_id}"
    model_repo = hub.repos[("model", repo_id)]
    assert model_repo["private"] and "adapter_model.safetensors" in model_repo["files"]
    assert svc.store.find_model_by_job(job.id).artifact_path == job.artifact_path
    # Released: the staged files repo is deleted; the token never appeared in the job's visible spec or log.
    assert ("dataset", f"alice/{resource_name(job.id)}") not in hub.repos
    assert hub.token not in log
    assert job.total_cost_usd is not None and job.total_cost_usd >= 0

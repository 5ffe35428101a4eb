"""A whole remote job on a fake RunPod whose pods are local processes.

The console launches through the real runpod SDK; the fake starts the pod's start command, which decodes and runs
the generated bootstrap; the bootstrap checks the trainer's requirements offline, waits for the bundle, dataset and
model the console pushes through the channel, and the real trainer trains the tiny demo model. The console pulls
its rows into a real SQLite store over the http channel, downloads the adapter, and the pod removes itself with
``runpodctl`` (a shim calling the fake). Also issue #9: with the console gone mid-run, the job still ends at its
budget and the pod is released.
"""

from __future__ import annotations

import time

import pytest

from core import lifecycle as L
from core.jobs import JobService, ServiceSettings
from core.providers.runpod import RunPodProvider
from tests.fakes.machine import free_port, wait_for
from tests.fakes.runpod_api import FakeRunPod

pytestmark = [pytest.mark.training, pytest.mark.slow]


@pytest.fixture()
def pods(tmp_path, monkeypatch):
    # install=True: the bootstrap's pip step runs, offline, so trainer/requirements.txt must be met by this venv.
    f = FakeRunPod(machines_root=tmp_path / "pods", install=True).start()
    monkeypatch.setenv("RUNPOD_API_BASE_URL", f.url)
    yield f
    f.kill_all()
    f.stop()


def small_demo(demo_home, steps: int, **training):
    from core.config import load_config_file

    cfg = load_config_file(demo_home / "demo" / "sft.yaml")
    cfg.training.max_steps = steps
    cfg.training.logging_steps = 2
    cfg.training.save_steps = 1000
    for k, v in training.items():
        setattr(cfg.training, k, v)
    cfg.predictions.sample_count = 2
    cfg.predictions.step_interval = 2
    cfg.predictions.max_new_tokens = 8
    return cfg


def poll_to_end(svc, job_id, timeout=420, live=None):
    """Poll like the console does until the job ends; also the steps seen while rows were arriving live
    (``live(job)`` says whether the machine is still at work; by default, the job is still running)."""
    seen_running_with_metrics = []
    live = live or (lambda j: j.status == L.RUNNING)

    def done():
        j = svc.poll(job_id)
        if live(j) and svc.store.count_metrics(job_id):
            seen_running_with_metrics.append(j.current_step)
        return j.is_terminal and j

    return wait_for(done, timeout, 0.5, "the remote job to end"), seen_running_with_metrics


def service_for(pods, port):
    from core.store import open_store

    prov = RunPodProvider({"api_key": pods.api_key}, proxy_url="http://127.0.0.1:{port}")
    return JobService(open_store(), provider_factory=lambda name: prov,
                      settings=ServiceSettings(provisioning_timeout_s=600, cancel_grace_s=60)), prov


def test_a_remote_job_trains_reports_live_and_the_pod_removes_itself(demo_home, pods):
    port = free_port()
    svc, prov = service_for(pods, port)
    job = svc.create(small_demo(demo_home, 4), provider="runpod", gpu_type="RTX 4090", budget_usd=50.0,
                     params={"cloud_type": "COMMUNITY", "port": port})
    job = svc.launch(job.id)
    ref = job.provider_ref
    try:
        job, seen_running_with_metrics = poll_to_end(svc, job.id)
    finally:
        machine = pods.machines.get(ref)
        log = machine.output() if machine else ""
    assert job.status == L.COMPLETED, (job.reason, log[-3000:])
    assert seen_running_with_metrics, "rows arrived while the pod was still training"
    metrics = svc.store.get_metrics(job.id)
    assert metrics and metrics[-1]["loss"] is not None
    assert svc.store.get_predictions(job.id)
    # The adapter came back over the channel and is registered.
    assert (demo_home / "artifacts" / job.id / "final" / "adapter_model.safetensors").exists()
    model = svc.store.find_model_by_job(job.id)
    assert model and model.artifact_path == job.artifact_path
    # The pod removed itself (runpodctl with its pod-scoped key), and the process is gone.
    assert ref in pods.terminated and ref not in pods.pods
    wait_for(lambda: not machine.alive, 30, what="the pod's processes to stop")
    assert job.total_cost_usd is not None and job.total_cost_usd >= 0


def test_console_gone_mid_run_the_job_still_ends_at_its_budget_and_the_pod_is_released(demo_home, pods):
    port = free_port()
    svc, prov = service_for(pods, port)
    # $36/h for 1 GPU: a $0.9 budget buys 90 s, far less than 5000 steps take here.
    pods.gpus[0]["communityPrice"] = 36.0
    job = svc.create(small_demo(demo_home, 5000), provider="runpod", gpu_type="RTX 4090", budget_usd=0.9,
                     params={"cloud_type": "COMMUNITY", "port": port})
    job = svc.launch(job.id)
    ref = job.provider_ref
    deadline = job.provider_params["_deadline_epoch"]
    # The console watches until the machine has everything it needs (it pushes the files), then goes away.
    def files_delivered():
        svc.poll(job.id)
        m = pods.machines.get(ref)
        return m is not None and (m.work / "bundle" / "trainer").is_dir()

    wait_for(files_delivered, 240, 0.5, "the console to deliver the bundle, dataset and model")
    # ... and nothing polls any more. The pod must stop training and remove itself on its own.
    wait_for(lambda: ref not in pods.pods, 240, 0.5, "the pod to remove itself at its budget deadline")
    assert time.time() >= deadline - 60  # it went at its budget deadline, not because the run ended
    machine = pods.machines[ref]
    wait_for(lambda: not machine.alive, 30, what="the pod's processes to stop")
    # The machine recorded why it stopped, for a console that comes back while it still lingers.
    assert '"budget_stopped"' in (machine.work / "report" / "outbox.jsonl").read_text()
    # A console started later settles the job from what it can still know.
    svc2, _ = service_for(pods, port)
    job = svc2.poll(job.id)
    assert job.status == L.BUDGET_STOPPED, job.reason
    # Billing is estimated from launch to the deadline the pod kept: never past the budget.
    assert 0 < job.total_cost_usd <= 0.9 + 1e-6

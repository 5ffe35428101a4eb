"""A whole remote job on a fake Kaggle whose notebooks are local processes.

The console launches through the real kagglesdk: the bundle, dataset and demo model go up as a private Kaggle dataset,
the kernel is pushed once the dataset is ready, and the fake runs the kernel's Python source with the dataset mounted
under its ``/kaggle/input`` (tests/fakes/kaggle_api.py). The kernel decodes and runs the generated bootstrap, which
finds its files in the mounted dataset, and the real trainer trains the tiny demo model printing ``@@FTC`` lines.
Kaggle hands the log over when the session ends, so the console pulls every row then into a real SQLite store; the
kernel copies the adapter to its output (``/kaggle/working/final``), the console downloads it from the output's signed
URLs, and deletes the staged dataset.
"""

from __future__ import annotations

import pytest

from core import lifecycle as L
from core.providers.kaggle import KaggleProvider, kaggle_slug
from tests.fakes.kaggle_api import FakeKaggle
from tests.providers.conftest import launch_small_remote
from tests.providers.test_runpod_e2e import poll_to_end

pytestmark = [pytest.mark.training, pytest.mark.slow]


@pytest.fixture()
def kaggle(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)  # kagglesdk would prefer it over the key it is given
    monkeypatch.setenv("HOME", str(tmp_path))
    with FakeKaggle(machines_root=tmp_path / "kernels") as f:
        yield f
        f.kill_all()


def test_a_kaggle_notebook_trains_and_its_rows_arrive_from_the_session_log(demo_home, kaggle):
    prov = KaggleProvider({"username": kaggle.username, "key": kaggle.key}, endpoint=kaggle.url)
    svc, job = launch_small_remote(prov, demo_home, gpu_type="T4", budget_usd=1.0)
    assert job.status == L.PROVISIONING, job.reason
    ref = job.provider_ref
    assert ref == f"{kaggle.username}/{kaggle_slug(job.id)}"
    try:
        job, _ = poll_to_end(svc, job.id)
    finally:
        machine = kaggle.machines.get(ref)
        log = machine.output() if machine else ""
    assert job.status == L.COMPLETED, (job.reason, log[-3000:])
    kernel = kaggle.kernels[ref]
    assert kernel["status"] == "COMPLETE" and kernel["gpu"] and kernel["private"] and kernel["shape"] == "NvidiaTeslaT4"
    # Every row the trainer printed came back through the session log.
    metrics = svc.store.get_metrics(job.id)
    assert metrics and metrics[-1]["step"] == 4 and metrics[-1]["loss"] is not None
    assert svc.store.get_predictions(job.id)
    assert job.current_step == 4 and job.total_cost_usd == 0.0
    # The kernel left the adapter in its output; the console downloaded it from there, and it loads with PEFT.
    from peft import PeftConfig

    from core.paths import artifacts_dir

    assert "final/adapter_model.safetensors" in kernel["outputs"]
    assert job.artifact_path == str(artifacts_dir() / job.id / "final")
    assert svc.store.find_model_by_job(job.id).artifact_path == job.artifact_path
    assert PeftConfig.from_pretrained(job.artifact_path).peft_type == "LORA"
    # Released: the staged private dataset is deleted, and the finished notebook kept for its output.
    assert f"{kaggle.username}/{kaggle_slug(job.id)}" not in kaggle.datasets
    assert ref in kaggle.kernels

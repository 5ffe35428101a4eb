"""A whole SkyPilot job with the node played locally: what SkyPilot would do with the generated task.

The console launches through the driver (against the fake ``sky``); the test then does SkyPilot's part on this
machine: copies each ``file_mounts`` source to its ``~`` destination under a scratch HOME, runs the task's
``setup`` (pip offline, so the trainer's requirements must already be met) and ``run`` with the ``SKYPILOT_*``
variables of node 0, and hands the output to the fake as the job's log. The console reads the ``@@FTC`` rows from
``sky logs`` into a real SQLite store and settles the job when SkyPilot reports it SUCCEEDED.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core import lifecycle as L
from tests.providers.test_skypilot import fake, provider  # noqa: F401 - fixtures
from tests.providers.test_runpod_e2e import small_demo

pytestmark = [pytest.mark.training, pytest.mark.slow]


def play_node(task: dict, home: Path, buckets: Path | None = None) -> subprocess.CompletedProcess:
    """``buckets``: a folder per bucket, standing in for the cloud store a MOUNT-mode storage mount reaches."""
    for dest, src in task["file_mounts"].items():
        target = home / dest.removeprefix("~/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, dict):  # a bucket, mounted: what the node writes there lands in the bucket
            assert src["mode"] == "MOUNT" and buckets is not None
            bucket = buckets / src["source"].replace("://", "/")
            bucket.mkdir(parents=True, exist_ok=True)
            target.symlink_to(bucket, target_is_directory=True)
        else:
            shutil.copy(src, target)
    env = {**os.environ, "HOME": str(home), "FTC_PYTHON": sys.executable, "PIP_NO_INDEX": "1",
           "SKYPILOT_NODE_RANK": "0", "SKYPILOT_NODE_IPS": "127.0.0.1\n", "SKYPILOT_NUM_NODES": "1",
           "SKYPILOT_NUM_GPUS_PER_NODE": "1", "PYTHONPATH": ""}
    setup = subprocess.run(["bash", "-c", task["setup"]], cwd=home, env=env, capture_output=True, text=True,
                           timeout=600)
    assert setup.returncode == 0, setup.stdout[-2000:] + setup.stderr[-2000:]
    # Its own process group, so a hung trainer is killed with the script that started it.
    node = subprocess.Popen(["bash", "-c", task["run"]], cwd=home, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = node.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(node.pid, signal.SIGKILL)
        out, _ = node.communicate()
    return subprocess.CompletedProcess(node.args, node.returncode, out)


@pytest.mark.parametrize("bucket", [None, "s3://team-models/ftc"])
def test_a_skypilot_job_trains_on_the_played_node_and_reports_through_sky_logs(service, demo_home, fake, tmp_path,
                                                                               bucket):
    cfg = small_demo(demo_home, 4)
    job = service.create(cfg, provider="skypilot", gpu_type="A100", gpu_count=1, budget_usd=5.0,
                         params={"output_bucket": bucket} if bucket else None)
    job = service.launch(job.id)
    assert job.status == L.PROVISIONING, job.reason
    ref = job.provider_ref
    task = yaml.safe_load(Path(fake.read()["launched"][-1]["config"]["file_mounts"]["~/ftc/payload/bootstrap.sh"])
                          .with_name("task.yaml").read_text())
    fake.set_cluster(ref, status="UP", jobs=[{"job_id": 1, "status": "RUNNING"}])
    home = tmp_path / "node"
    home.mkdir()
    proc = play_node(task, home, buckets=tmp_path / "buckets")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "@@FTC " in proc.stdout
    fake.set_cluster(ref, log=proc.stdout, jobs=[{"job_id": 1, "status": "SUCCEEDED"}], total_cost=0.1)
    job = service.poll(job.id)
    assert job.status == L.COMPLETED, job.reason
    metrics = service.store.get_metrics(job.id)
    assert metrics and all(m["loss"] > 0 for m in metrics if m.get("loss") is not None)
    assert (home / "ftc" / "work" / "output" / "final").is_dir()  # "keep": the model stays on the node
    if bucket:
        # ... and a copy in the bucket outlives the cluster; the job and registry name it there.
        assert job.artifact_path == f"{bucket}/{job.id}"
        kept = tmp_path / "buckets" / "s3" / "team-models" / "ftc" / job.id
        assert (kept / "adapter_model.safetensors").is_file()
        assert service.store.find_model_by_job(job.id).artifact_path == job.artifact_path
    assert fake.read()["downed"] == [ref]

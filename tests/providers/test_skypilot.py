"""SkyPilot provider: the real driver script run as a subprocess against a fake ``sky`` package
(tests/fakes/sky_pkg, whose signatures test_skypilot_real.py checks against the installed SkyPilot)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from core import lifecycle as L
from core.errors import AuthError, LaunchError, NoCapacityError, ProviderError
from core.providers.base import provider_names
from core.providers.http_channel import job_for_ref, load_remote, resource_name
from core.providers.skypilot import SkyParams, SkyPilotProvider, accelerators_for
from tests.providers.conftest import launch_demo

FAKE_PKG = Path(__file__).resolve().parents[1] / "fakes" / "sky_pkg"


class FakeSky:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.write({"enabled_clouds": ["AWS", "RunPod"], "clusters": {}, "requests": {}})

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def write(self, state: dict) -> None:
        self.path.write_text(json.dumps(state))

    def update(self, fn) -> None:
        state = self.read()
        fn(state)
        self.write(state)

    def set_cluster(self, name: str, **fields) -> None:
        self.update(lambda s: s["clusters"].setdefault(name, {"launched_at": int(time.time()), "jobs": []})
                    .update(fields))


@pytest.fixture()
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_SKY_PYTHON", sys.executable)
    monkeypatch.setenv("PYTHONPATH", str(FAKE_PKG))
    monkeypatch.setenv("FTC_FAKE_SKY_STATE", str(tmp_path / "sky_state.json"))
    return FakeSky(tmp_path / "sky_state.json")


@pytest.fixture()
def provider(fake):
    p = SkyPilotProvider(timeout_s=60)
    p.launch_wait_s = 1.0
    return p


def launch(service, demo_home, **kw):
    return launch_demo(service, demo_home, "skypilot", **{"gpu_type": "A100", "budget_usd": 5.0, **kw})


def test_registered_with_params_and_multi_node():
    assert "skypilot" in provider_names()
    assert SkyPilotProvider.capabilities["multi_node"] is None and SkyPilotProvider.report_channel == "stdout"
    p = SkyParams(cloud="AWS", accelerators="H100:8", num_nodes=2, use_spot=True, disk_size=512)
    assert p.cloud == "aws" and accelerators_for(p, None, 1) == ("H100:8", 8)
    assert accelerators_for(SkyParams(), "A100 80GB", 4) == ("A100-80GB:4", 4)
    assert accelerators_for(SkyParams(), "A100:8", 2) == ("A100:2", 2)
    assert SkyParams(output_bucket="gs://my-models/runs/").output_bucket == "gs://my-models/runs"
    for bad in ({"accelerators": "A100:8; rm -rf /"}, {"cloud": "aws gcp"}, {"num_nodes": 0}, {"extra": 1},
                {"output_bucket": "https://example.com/x"}, {"output_bucket": "s3://b/$(id)"}):
        with pytest.raises(ValueError):
            SkyParams(**bad)
    with pytest.raises(LaunchError, match="Choose a GPU"):
        accelerators_for(SkyParams(), None, 1)
    # A GPU name that is no accelerator name: the job's reason says what to set, not pydantic's report.
    with pytest.raises(LaunchError, match="no accelerator name for the GPU 'A100 \\(80GB\\)'"):
        accelerators_for(SkyParams(), "A100 (80GB)", 2)


def test_credentials_need_an_enabled_cloud(provider, fake):
    assert provider.validate_credentials()["clouds"] == ["AWS", "RunPod"]
    fake.update(lambda s: s.update(enabled_clouds=[]))
    with pytest.raises(AuthError, match="no cloud enabled"):
        provider.validate_credentials()


def test_offers_from_skypilots_catalog_or_the_common_gpus(provider, fake):
    fallback = provider.offers()  # no catalog (offline)
    assert {"A100", "H100"} <= {o.gpu_type for o in fallback} and all(o.price_per_hour is None for o in fallback)
    row = dict(instance_type="p4d.24xlarge", accelerator_name="A100", accelerator_count=8, cpu_count=96,
               device_memory=40, memory=1152, spot_price=9.8, region="us-east-1")
    fake.update(lambda s: s.update(catalog=[
        {**row, "cloud": "AWS", "price": 32.77}, {**row, "cloud": "Lambda", "instance_type": "gpu_8x_a100",
                                                  "price": 10.32, "region": "us-west-1"},
        {**row, "cloud": "GCP", "accelerator_count": 1, "instance_type": "a2-highgpu-1g", "price": 3.67}]))
    offers = {(o.provider_gpu_id, o.max_count): o for o in provider.offers()}
    assert set(offers) == {("A100", 8), ("A100", 1)}
    eight = offers["A100", 8]
    assert (eight.cloud, eight.price_per_hour, eight.max_count, eight.vram_gb) == ("Lambda", 10.32 / 8, 8, 40.0)
    assert eight.region is None and "us-west-1" in eight.notes


def test_missing_sky_venv_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("FTC_SKY_PYTHON", str(tmp_path / "nope" / "python"))
    with pytest.raises(ProviderError, match="make sky"):
        SkyPilotProvider().validate_credentials()


def test_launch_writes_a_multi_node_task_and_runs_it(service, demo_home, fake, monkeypatch):
    monkeypatch.setattr(service, "_credentials", lambda name: {"token": "hf_secret_value"}
                        if name == "huggingface" else {})
    job = launch(service, demo_home, gpu_count=2, cost_per_hour=2.0,
                 params={"num_nodes": 2, "use_spot": True, "cloud": "aws", "disk_size": 300})
    assert job.status == L.PROVISIONING and job.provider_ref == resource_name(job.id)
    call = fake.read()["launched"][-1]
    assert call["cluster"] == job.provider_ref and call["down"] is True and call["idle"] == 2
    assert call["secrets"] == {"HF_TOKEN": "hf_secret_value"}  # through the driver's env, not the file
    task_path = Path(demo_home) / "jobs" / job.id / "sky" / "task.yaml"
    text = task_path.read_text()
    assert "hf_secret_value" not in text
    task = yaml.safe_load(text)
    assert task["resources"] == {"accelerators": "A100:2", "use_spot": True, "disk_size": 300, "cloud": "aws"}
    assert task["num_nodes"] == 2 and task["secrets"] == {"HF_TOKEN": None}
    assert set(task["file_mounts"]) == {f"~/ftc/payload/{n}" for n in
                                        ("bundle.tar.gz", "dataset.jsonl", "model.tar.gz", "bootstrap.sh")}
    assert all(Path(p).is_file() for p in task["file_mounts"].values())
    assert "requirements.txt" in task["setup"]
    assert 'FTC_NODE_RANK="${SKYPILOT_NODE_RANK:-0}"' in task["run"] and "SKYPILOT_NODE_IPS" in task["run"]
    script = Path(task["file_mounts"]["~/ftc/payload/bootstrap.sh"]).read_text()
    # $5 at the quoted $2/h per node on 2 nodes: the cluster stops itself after 1.25 h.
    remote = load_remote(job.id)
    assert remote["price_per_hour"] == 4.0
    assert remote["deadline_epoch"] == pytest.approx(time.time() + 1.25 * 3600, abs=120)
    assert "torch.distributed.run --nnodes 2 --nproc_per_node 2" in script and "FTC_CHANNEL=stdout" in script
    assert "ftc_place ../payload/dataset.jsonl data/dataset.jsonl" in script
    for body in (task["setup"], task["run"], script):
        assert subprocess.run(["bash", "-n"], input=body, text=True).returncode == 0
    assert load_remote(job.id)["sky_job_id"] == 1 and job_for_ref("skypilot", job.provider_ref) == job.id


def test_status_transitions_logs_rows_and_cost(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    ref = job.provider_ref
    assert "secrets" not in fake.read()["launched"][-1]["config"]  # SkyPilot refuses a secret without a value
    fake.set_cluster(ref, status="INIT", jobs=[])
    assert provider.status(ref).state == "provisioning"
    fake.set_cluster(ref, status="UP", jobs=[])
    assert provider.status(ref).state == "provisioning"
    fake.set_cluster(ref, status="UP", jobs=[{"job_id": 1, "status": "SETTING_UP"}])
    assert provider.status(ref).state == "running"
    rows = [{"kind": "metric", "seq": 1, "payload": {"step": 1, "loss": 2.5}}]
    log = "setup...\n" + "".join(f"@@FTC {json.dumps(r)}\n" for r in rows) + "plain line\n"
    fake.set_cluster(ref, jobs=[{"job_id": 1, "status": "RUNNING"}], log=log, total_cost=1.25, duration=1800)
    st = provider.status(ref)
    assert (st.state, st.raw) == ("running", {"cluster": "UP", "job": "RUNNING"})
    assert fake.read()["refreshes"] >= 3  # sky status --refresh
    entries = provider.pull_entries(ref, 0)
    assert [e["kind"] for e in entries] == ["metric"] and entries[0]["payload"]["loss"] == 2.5
    assert "plain line" in provider.logs(ref) and "@@FTC" not in provider.logs(ref)
    assert provider.cost(ref) == 1.25
    fake.set_cluster(ref, jobs=[{"job_id": 1, "status": "SUCCEEDED"}])
    st = provider.status(ref)
    assert (st.state, st.exit_code) == ("exited", 0)
    # --down: the cluster tears itself down; the last job state and the log copy survive it.
    fake.update(lambda s: s["clusters"].pop(ref))
    st = provider.status(ref)
    assert (st.state, st.exit_code) == ("exited", 0)
    assert "plain line" in provider.logs(ref)
    assert provider.cost(ref) is None


def test_failed_setup_and_stopped_cluster(service, demo_home, fake, provider):
    ref = launch(service, demo_home).provider_ref
    fake.set_cluster(ref, jobs=[{"job_id": 1, "status": "FAILED_SETUP"}])
    st = provider.status(ref)
    assert st.state == "failed" and "Installing the trainer's requirements failed" in st.message
    fake.set_cluster(ref, status="STOPPED")
    st = provider.status(ref)
    assert st.state == "failed" and "stopped" in st.message


def test_slow_provisioning_is_followed_through_the_request(service, demo_home, fake, provider):
    fake.update(lambda s: s.update(launch={"mode": "pending"}))
    job = launch(service, demo_home)
    assert job.status == L.PROVISIONING
    rid = load_remote(job.id)["request_id"]
    assert provider.status(job.provider_ref).state == "provisioning"
    fake.update(lambda s: s["requests"][rid].update(
        status="FAILED", error={"type": "ResourcesUnavailableError",
                                "message": "Failed to acquire resources in all zones in us-east-1."}))
    st = provider.status(job.provider_ref)
    assert st.state == "failed" and "no machine for this job" in st.message and "all zones" in st.message


def test_cancel_while_provisioning_aborts_the_launch_request(service, demo_home, fake, provider):
    fake.update(lambda s: s.update(launch={"mode": "pending"}))
    job = launch(service, demo_home)
    rid = load_remote(job.id)["request_id"]
    provider.cancel(job.provider_ref)  # the provisioning timeout, or the user
    state = fake.read()
    assert state["cancelled_requests"] == [rid] and state["requests"][rid]["status"] == "CANCELLED"
    assert state["downed"] == [job.provider_ref]


def test_no_capacity_and_no_credentials_at_launch(provider, service, demo_home, fake):
    fake.update(lambda s: s.update(launch={"error": {
        "type": "ResourcesUnavailableError", "message": "Catalog does not contain any instances satisfying the "
        "request:\nTask requires H200:8 on runpod."}}))
    path, _, cluster = provider.prepare(service._launch_request(_queued(service, demo_home), provider))
    with pytest.raises(NoCapacityError, match="no machine for this job: Task requires H200:8") as exc:
        provider.driver("launch", str(path), "--cluster", cluster, "--wait", "5")
    assert "another accelerator, cloud or region" in str(exc.value)
    fake.update(lambda s: s.update(launch={"error": {"type": "NoCloudAccessError",
                                                     "message": "No cloud access available."}}))
    with pytest.raises(AuthError, match="sky check"):
        provider.driver("launch", str(path), "--cluster", cluster, "--wait", "5")
    # Through the service: the job fails with the message, no traceback.
    fake.update(lambda s: s.update(launch={"error": {"type": "ResourcesUnavailableError", "message": "none"}}))
    job = launch(service, demo_home)
    assert job.status == L.FAILED and "no machine for this job" in job.reason


def test_cancel_live_and_vanished_cluster(service, demo_home, fake, provider):
    ref = launch(service, demo_home).provider_ref
    provider.cancel(ref)
    assert ref not in fake.read()["clusters"] and fake.read()["downed"] == [ref]
    provider.cancel(ref)  # already gone: not an error
    assert fake.read()["downed"] == [ref, ref]
    assert provider.status(ref).state == "terminated"


def test_list_owned_by_the_console_label(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    fake.set_cluster("someone-elses", status="UP")
    fake.set_cluster("ftc-00000000-job_x", status="UP")  # another console on the same account
    assert provider.list_owned_jobs() == {job.provider_ref: job.id}
    assert provider.list_owned() == [job.provider_ref]


def _queued(service, demo_home):
    from core.config import load_config_file

    cfg = load_config_file(demo_home / "demo" / "sft.yaml")
    return service.create(cfg, provider="skypilot", gpu_type="H200", gpu_count=8, params={"cloud": "runpod"})


def test_cli_deploy_on_skypilot_prints_the_deployment_response(demo_home, fake, capsys):
    from core.cli import main

    argv = ["deploy", str(demo_home / "demo" / "sft.yaml"), "--provider", "skypilot", "--param", "accelerators=H100:8",
            "--param", "num_nodes=2", "--param", "use_spot=true", "--json"]
    rc = main(argv)
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["status"] == "provisioning" and out["provider_ref"] == resource_name(out["job_id"])
    config = fake.read()["launched"][-1]["config"]
    assert config["resources"]["accelerators"] == "H100:8" and config["num_nodes"] == 2
    fake.update(lambda s: s.update(launch={"error": {"type": "ResourcesUnavailableError",
                                                     "message": "No launchable resource found for H100:8."}}))
    main(argv)
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "failed" and "SkyPilot found no machine for this job" in out["reason"]


def ftc(obj: dict) -> str:
    return "@@FTC " + json.dumps(obj)


def test_the_poller_stores_rows_from_sky_logs_and_completes(service, demo_home, fake):
    job = launch(service, demo_home)
    ref = job.provider_ref
    fake.set_cluster(ref, status="UP", jobs=[{"job_id": 1, "status": "RUNNING"}], total_cost=0.8, log="\n".join([
        "Running setup on 1 node.",
        ftc({"seq": 1, "kind": "status", "payload": {"status": "running", "fields": {}}}),
        ftc({"seq": 2, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]}}),
    ]) + "\n")
    job = service.poll(job.id)
    assert job.status == L.RUNNING and [m["loss"] for m in service.store.get_metrics(job.id)] == [2.5, 2.0]
    log = fake.read()["clusters"][ref]["log"] + "\n".join([
        ftc({"kind": "heartbeat", "payload": {"current_step": 2, "progress": 1.0}}),
        ftc({"seq": 3, "kind": "status", "payload": {"status": "completing", "fields": {"progress": 1.0}}}),
    ]) + "\n"
    fake.set_cluster(ref, jobs=[{"job_id": 1, "status": "SUCCEEDED"}], log=log)
    job = service.poll(job.id)
    assert job.status == L.COMPLETED, job.reason
    assert fake.read()["downed"] == [ref] and job.total_cost_usd == pytest.approx(0.8)  # released, SkyPilot's cost
    assert "Running setup" in service.provider("skypilot").logs(ref)


def test_ensure_sky_venv_is_idempotent_and_explains_a_failed_install(tmp_path):
    from core.providers.skypilot import ensure_sky_venv

    venv = tmp_path / "venv-sky"
    venv.mkdir()
    (venv / ".installed").write_text("skypilot==0.14.1\n")
    assert ensure_sky_venv(venv, python="/nonexistent/python") == venv / "bin" / "python"  # nothing to do
    fails = tmp_path / "python"
    fails.write_text("#!/bin/sh\necho 'No matching distribution found for skypilot' >&2\nexit 1\n")
    fails.chmod(0o755)
    with pytest.raises(ProviderError, match="Could not install SkyPilot") as exc:
        ensure_sky_venv(venv, requirement="skypilot==9.9", python=str(fails))
    assert "make sky" in str(exc.value) and "No matching distribution" in str(exc.value)

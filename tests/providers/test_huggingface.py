"""Hugging Face Jobs and Spaces through huggingface_hub against the loopback Hub (tests/fakes/hf_api.py)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess

import pytest

from core import lifecycle as L
from core.errors import AuthError, LaunchError, ProviderUnavailable, QuotaError, RateLimited
from core.providers.http_channel import console_id, resource_name
from core.providers.huggingface import HuggingFaceProvider
from tests.fakes.hf_api import FakeHub
from tests.fakes.loopback import Response
from tests.providers.conftest import ftc, launch_demo


@pytest.fixture()
def fake():
    with FakeHub() as f:
        yield f


@pytest.fixture()
def provider(fake):
    return HuggingFaceProvider({"token": fake.token}, endpoint=fake.url)


def launch(service, demo_home, gpu_type="A10G", **kw):
    return launch_demo(service, demo_home, "huggingface", gpu_type=gpu_type, **{"budget_usd": 2.0, **kw})


def test_credentials_checked_with_whoami(provider, fake):
    assert provider.validate_credentials() == {"account": "alice", "orgs": [], "token_role": "write"}
    with pytest.raises(AuthError, match="refused the API key"):
        HuggingFaceProvider({"token": "hf_nope"}, endpoint=fake.url).validate_credentials()
    with pytest.raises(AuthError, match="HF_TOKEN"):
        HuggingFaceProvider({}, endpoint=fake.url).validate_credentials()


def test_offers_are_gpu_flavors_with_hourly_prices(provider):
    offers = {o.provider_gpu_id: o for o in provider.offers()}
    assert "cpu-basic" not in offers
    a10 = offers["a10g-small"]
    assert (a10.gpu_type, a10.vram_gb, a10.max_count) == ("A10G", 24.0, 1)
    assert a10.price_per_hour == pytest.approx(0.016667 * 60, rel=1e-3)
    assert offers["a10g-largex2"].max_count == 2 and offers["a10g-largex2"].price_per_hour == pytest.approx(1.5)


def test_launch_stages_files_privately_and_runs_a_job_with_the_token_as_a_secret(service, demo_home, fake):
    job = launch(service, demo_home)
    assert job.status == L.PROVISIONING, job.reason
    assert job.cost_per_hour == pytest.approx(1.0, rel=1e-3) and job.gpu_type == "A10G"
    files_repo = fake.repos[("dataset", f"alice/{resource_name(job.id)}")]
    assert files_repo["private"] and set(files_repo["files"]) == {"bundle.tar.gz", "dataset.jsonl", "model.tar.gz"}
    spec = fake.jobs[job.provider_ref]
    assert spec["flavor"] == "a10g-small" and spec["secrets"] == {"HF_TOKEN": fake.token}
    assert fake.token not in json.dumps(spec["environment"]) and fake.token not in json.dumps(spec["command"])
    assert spec["labels"] == {"finetune-console": console_id(), "ftc-job": job.id, "name": resource_name(job.id)}
    # $2 at $1/h buys two hours: the job's hard timeout.
    assert spec["timeoutSeconds"] == pytest.approx(7200, abs=2)
    script = gzip.decompress(base64.b64decode(spec["environment"]["FTC_BOOTSTRAP"])).decode()
    urls = [base64.b64decode(u).decode() for u in re.findall(r"--url-b64 '([A-Za-z0-9+/=]+)'", script)]
    assert "FTC_CHANNEL=stdout" in script and f"{fake.url}/datasets/alice/{resource_name(job.id)}/resolve/main/" \
        "dataset.jsonl" in urls
    assert fake.token not in script
    (demo_home / "boot.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(demo_home / "boot.sh")]).returncode == 0
    # What the API shows of the job masks the secret.
    shown = HuggingFaceProvider({"token": fake.token}, endpoint=fake.url).api.inspect_job(
        job_id=job.provider_ref, namespace="alice")
    assert shown.secrets == {"HF_TOKEN": "*****"}


def test_status_transitions_rows_from_the_log_cost_and_completion(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    ref = job.provider_ref
    assert provider.status(ref).state == "provisioning"
    fake.set_stage(ref, "RUNNING")
    fake.append_log(ref, "Installing requirements...\n" + "\n".join([
        ftc({"seq": 1, "kind": "status", "payload": {"status": "running", "fields": {}}}),
        ftc({"seq": 2, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]}}),
        ftc({"kind": "heartbeat", "payload": {"current_step": 2, "progress": 0.5}}),
    ]))
    job = service.poll(job.id)
    assert job.status == L.RUNNING and job.current_step == 2
    assert [m["loss"] for m in service.store.get_metrics(job.id)] == [2.5, 2.0]
    assert "Installing requirements" in provider.logs(ref) and "@@FTC" not in provider.logs(ref)
    fake.jobs[ref]["_started"] -= 1800  # half an hour of A10G at $1/h
    assert provider.cost(ref) == pytest.approx(0.5, rel=0.01)
    fake.append_log(ref, "\n".join([
        ftc({"seq": 3, "kind": "status", "payload": {"status": "completing", "fields": {"progress": 1.0}}}),
        ftc({"kind": "job", "payload": {"artifact_path": "hf://alice/ftc-x"}, "src": "bootstrap"}),
    ]))
    fake.set_stage(ref, "COMPLETED")
    job = service.poll(job.id)
    assert job.status == L.COMPLETED and job.artifact_path == "hf://alice/ftc-x"
    assert job.total_cost_usd == pytest.approx(0.5, rel=0.01)
    assert service.store.find_model_by_job(job.id).artifact_path == "hf://alice/ftc-x"
    # Released: the staged files repo is gone.
    assert ("dataset", f"alice/{resource_name(job.id)}") not in fake.repos


def test_a_failed_job_fails_with_the_hubs_message(service, demo_home, fake):
    job = launch(service, demo_home)
    fake.set_stage(job.provider_ref, "ERROR", "Job failed with exit code: 1")
    job = service.poll(job.id)
    assert job.status == L.FAILED and "exit code: 1" in job.reason


def test_no_capacity_and_no_payment(service, demo_home, fake):
    fake.no_capacity.add("a10g-small")
    job = launch(service, demo_home)
    job = service.poll(job.id)
    assert job.status == L.FAILED and "No capacity" in job.reason and "another flavor" in job.reason
    fake.cannot_pay.add("a100-large")
    job = launch(service, demo_home, gpu_type="A100")
    assert job.status == L.FAILED and "payment method" in job.reason and "billing" in job.reason
    assert not any(j["flavor"] == "a100-large" for j in fake.jobs.values())
    prov = HuggingFaceProvider({"token": fake.token}, endpoint=fake.url)
    with pytest.raises(QuotaError, match="payment method"):
        prov._call("the job launch", prov.api.run_job, image="x", command=["true"], flavor="a100-large",
                   namespace="alice")


def test_cancel_live_and_vanished(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    ref = job.provider_ref
    fake.set_stage(ref, "RUNNING")
    provider.cancel(ref)
    assert fake.jobs[ref]["status"]["stage"] == "CANCELED"
    assert provider.status(ref).state == "terminated"
    provider.cancel(ref)  # already cancelled: nothing to do
    fake.jobs.pop(ref)
    assert provider.status(ref).state == "terminated"  # vanished (404 JobNotFound)
    provider.cancel(ref)


def test_401_429_and_5xx(fake, provider):
    fake.fail_next(Response(429, {"error": "Too many requests"}, headers={"Retry-After": "0"}),
                   Response(503, "Service Unavailable"))
    assert provider.offers()
    fake.fail_next(*[Response(500, {"error": "Internal Error"})] * 4)
    with pytest.raises(ProviderUnavailable):
        provider.offers()
    fake.fail_next(*[Response(429, {"error": "Too many requests"}, headers={"Retry-After": "0"})] * 4)
    with pytest.raises(RateLimited):
        provider.offers()
    fake.token = "rotated"
    with pytest.raises(AuthError):
        provider.offers()


def test_unknown_flavor_lists_the_valid_ones(provider):
    with pytest.raises(LaunchError, match="a10g-small"):
        provider._flavor("TPU", 1)


def test_reaper_finds_labelled_jobs_only(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    api = provider.api
    stray = api.run_job(image="x", command=["true"], flavor="t4-small", namespace="alice", name="s",
                        labels={"finetune-console": console_id(), "ftc-job": "job_old"}).id
    other = api.run_job(image="x", command=["true"], flavor="t4-small", namespace="alice").id
    assert service.reap_orphans(["huggingface"]) == [f"huggingface:{stray}"]
    assert fake.jobs[stray]["status"]["stage"] == "CANCELED"
    assert fake.jobs[other]["status"]["stage"] == "SCHEDULING"
    assert fake.jobs[job.provider_ref]["status"]["stage"] == "SCHEDULING"


def test_space_mode_builds_a_docker_space_and_pauses_it_when_training_ends(service, demo_home, fake, provider):
    job = launch(service, demo_home, params={"mode": "space"})
    assert job.status == L.PROVISIONING, job.reason
    space_id = f"alice/{resource_name(job.id)}"
    assert job.provider_ref == f"space:{space_id}"
    repo = fake.repos[("space", space_id)]
    assert repo["sdk"] == "docker" and repo["private"] and repo["hardware"] == "a10g-small"
    assert repo["secrets"] == [{"key": "HF_TOKEN", "value": fake.token}]
    assert set(repo["files"]) == {"Dockerfile", "bootstrap.sh"}
    script = repo["files"]["bootstrap.sh"].decode()
    assert "FTC_PAUSE_URL" in script and fake.token not in script
    assert f"{fake.url}/api/spaces/{space_id}/pause" in repo["files"]["Dockerfile"].decode()
    ref = job.provider_ref
    assert provider.status(ref).state == "provisioning"  # BUILDING
    fake.spaces[space_id]["stage"] = "RUNNING"
    fake.append_log(ref, ftc({"seq": 1, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 1.5}]}}))
    job = service.poll(job.id)
    assert [m["loss"] for m in service.store.get_metrics(job.id)] == [1.5]
    fake.append_log(ref, ftc({"seq": 2, "kind": "status", "payload": {"status": "completing", "fields": {}}})
                    + "\n[ftc] releasing this machine")
    job = service.poll(job.id)
    assert job.status == L.COMPLETED
    assert fake.spaces[space_id]["stage"] == "PAUSED"  # the console paused it: billing stopped
    assert job.total_cost_usd is not None and job.total_cost_usd >= 0
    provider.cancel(ref)  # paused already: fine
    fake.repos.pop(("space", space_id))
    fake.spaces.pop(space_id)
    assert provider.status(ref).state == "terminated"
    provider.cancel(ref)  # vanished: fine


def test_cli_deploy_on_hugging_face_prints_the_deployment_response(demo_home, fake, monkeypatch, capsys):
    import huggingface_hub.constants

    from core.cli import main
    from core.providers.base import provider_class

    assert provider_class("huggingface").capabilities["multi_node"]  # listed with its reasons on the Deploy page
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", fake.url)  # what HF_ENDPOINT sets at import
    monkeypatch.setenv("HF_TOKEN", fake.token)
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", "/nonexistent")
    rc = main(["deploy", str(demo_home / "demo" / "sft.yaml"), "--provider", "huggingface", "--gpu", "A10G",
               "--param", "mode=jobs", "--budget", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["status"] == "provisioning" and out["provider_ref"] in fake.jobs
    assert out["cost"]["cost_per_hour"] == pytest.approx(1.0, rel=1e-3)
    assert fake.jobs[out["provider_ref"]]["timeoutSeconds"] == pytest.approx(3 * 3600, abs=2)


def test_the_space_pauses_itself_with_its_token_and_its_dockerfile_runs_the_bootstrap(service, demo_home, fake):
    import sys

    job = launch(service, demo_home, params={"mode": "space", "space_linger_s": 0})
    space_id = job.provider_ref.removeprefix("space:")
    files = fake.repos[("space", space_id)]["files"]
    cmd = next(line for line in files["Dockerfile"].decode().splitlines() if line.startswith("CMD "))
    argv = json.loads(cmd[4:])
    assert argv[:2] == ["bash", "-c"] and "exec bash /opt/ftc/bootstrap.sh" in argv[2] and "7860" in argv[2]
    # The bootstrap's release step, run as the Space would run it (the token comes from the Space's secrets).
    release = next(line.strip() for line in files["bootstrap.sh"].decode().splitlines()
                   if line.strip().startswith("sleep 0;"))
    fake.spaces[space_id]["stage"] = "RUNNING"
    subprocess.run(["bash", "-c", release], check=True, env={
        "PATH": "/usr/bin:/bin", "FTC_PY": sys.executable, "HF_TOKEN": fake.token,
        "FTC_PAUSE_URL": f"{fake.url}/api/spaces/{space_id}/pause"})
    assert fake.spaces[space_id]["stage"] == "PAUSED"

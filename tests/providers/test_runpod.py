"""RunPod provider against the loopback GraphQL fake (tests/fakes/runpod_api.py), through the real runpod SDK."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from core import lifecycle as L
from core.errors import AuthError, ProviderUnavailable
from core.jobs import JobService
from core.providers.http_channel import job_token, resource_name
from core.providers.runpod import RunPodParams, RunPodProvider
from tests.fakes.loopback import Response
from tests.fakes.runpod_api import FakeRunPod


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture()
def clock():
    return Clock()


@pytest.fixture()
def fake(monkeypatch, clock):
    with FakeRunPod(clock=clock) as f:
        monkeypatch.setenv("RUNPOD_API_BASE_URL", f.url)  # the SDK's own knob (runpod/api/graphql.py)
        yield f


@pytest.fixture()
def provider(fake):
    return RunPodProvider({"api_key": fake.api_key}, proxy_url="http://127.0.0.1:1/{pod_id}/{port}")


def demo_cfg(demo_home):
    from core.config import load_config_file

    return load_config_file(demo_home / "demo" / "sft.yaml")


def launch(service, demo_home, **kw):
    job = service.create(demo_cfg(demo_home), provider="runpod", gpu_type=kw.pop("gpu_type", "RTX 4090"),
                         gpu_count=kw.pop("gpu_count", 1), budget_usd=kw.pop("budget_usd", 5.0),
                         params=kw.pop("params", {"cloud_type": "SECURE"}))
    return service.launch(job.id)


def test_credentials_are_checked_with_a_real_call(provider, fake):
    assert provider.validate_credentials()["account"] == "user_fake123"
    with pytest.raises(AuthError, match="refused the API key"):
        RunPodProvider({"api_key": "wrong"}).validate_credentials()
    with pytest.raises(AuthError, match="No RunPod API key"):
        RunPodProvider({}).validate_credentials()


def test_offers_quote_each_cloud_type(provider):
    offers = {(o.gpu_type, o.cloud): o for o in provider.offers()}
    assert offers[("RTX 4090", "COMMUNITY")].price_per_hour == 0.34
    assert offers[("RTX 4090", "SECURE")].price_per_hour == 0.69
    assert offers[("A100 PCIe", "SECURE")].vram_gb == 80
    assert ("H100 SXM", "COMMUNITY") not in offers  # not offered there, so not quoted
    assert all(o.source == "live" and o.provider_gpu_id for o in offers.values())


def test_launch_sends_the_bootstrap_in_the_env_and_quotes_the_launched_cloud(service, demo_home, fake):
    job = launch(service, demo_home, gpu_count=2)
    assert job.status == L.PROVISIONING and job.provider_ref.startswith("fakepod")
    inp = fake.deploy_inputs[-1]
    assert inp["cloudType"] == "SECURE" and inp["gpuCount"] == 2 and inp["gpuTypeId"] == "NVIDIA GeForce RTX 4090"
    assert inp["name"] == resource_name(job.id)
    assert inp["ports"] == "8765/http" and inp["volumeMountPath"] == "/workspace"
    env = {e["key"]: e["value"] for e in inp["env"]}
    script = gzip.decompress(base64.b64decode(env["FTC_BOOTSTRAP"])).decode()
    assert f"FTC_JOB_ID={job.id}" in script and "runpodctl remove pod" in script
    assert "--nproc_per_node 2" in script
    assert env["FTC_REPORT_TOKEN"] == job_token(job.id)
    assert fake.api_key not in str(inp)  # the account key never reaches the pod
    assert job.cost_per_hour == pytest.approx(0.69 * 2)  # the secure price, the cloud launched
    assert job.provider_params["_deadline_epoch"] > 0
    assert job.gpu_type == "RTX 4090"


def test_status_transitions_and_cost_from_cost_per_hour_and_uptime(service, demo_home, fake, provider, clock):
    job = launch(service, demo_home)
    ref = job.provider_ref
    assert provider.status(ref).state == "provisioning"  # rented, container not up
    fake.set_running(ref)
    clock.t += 1800
    st = provider.status(ref)
    assert st.state == "running" and st.uptime_s == 1800
    assert provider.cost(ref) == pytest.approx(0.69 * 0.5)
    fake.set_exited(ref)
    assert provider.status(ref).state == "exited"
    provider.cancel(ref)
    assert provider.status(ref).state == "terminated"
    assert ref in fake.terminated


def test_cancel_of_a_live_and_of_a_vanished_pod(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    fake.set_running(job.provider_ref)
    service.cancel(job.id)
    service.settings.cancel_grace_s = 0
    job = service.poll(job.id)
    assert job.status == L.CANCELLED
    assert job.provider_ref in fake.terminated
    provider.cancel(job.provider_ref)  # already gone: not an error
    provider.cancel("neverexisted")


def test_no_capacity_fails_the_launch_with_what_to_do(service, demo_home, fake):
    fake.capacity[("NVIDIA GeForce RTX 4090", "SECURE")] = 0
    job = launch(service, demo_home)
    assert job.status == L.FAILED
    assert "no longer any instances" in job.reason and "other cloud type" in job.reason


def test_unknown_gpu_lists_the_valid_ones(provider, service, demo_home):
    job = launch(service, demo_home, gpu_type="TPU v9")
    assert job.status == L.FAILED and "RTX 4090" in job.reason


def test_cloud_type_not_offered_is_refused_before_renting(provider, service, demo_home, fake):
    job = launch(service, demo_home, gpu_type="H100 SXM", params={"cloud_type": "COMMUNITY"})
    assert job.status == L.FAILED and "secure cloud" in job.reason
    assert fake.deploy_inputs == []


def test_429_and_5xx_are_retried(provider, fake):
    fake.fail_next(Response(429, "Too Many Requests"), Response(502, "Bad Gateway"))
    assert provider.validate_credentials()["account"] == "user_fake123"
    fake.fail_next(*[Response(500, "Internal Server Error")] * 4)
    with pytest.raises(ProviderUnavailable):
        provider.validate_credentials()


def test_the_poller_backs_off_a_failing_provider(service, demo_home, fake):
    job = launch(service, demo_home)
    fake.fail_next(*[Response(503, "Service Unavailable")] * 4)
    service.poll(job.id)
    n = len(fake.requests)
    service.poll(job.id)  # inside the backoff window: the provider is not asked again
    assert len(fake.requests) == n
    assert service._backoff[job.id][0] == 1


def test_params_refuse_what_would_break_the_graphql_string():
    with pytest.raises(ValueError):
        RunPodParams(env={"A": 'x"y'})
    with pytest.raises(ValueError):
        RunPodParams(env={"FTC_BOOTSTRAP": "x"})
    with pytest.raises(ValueError):
        RunPodParams(image='img"; drop')


def test_orphan_reaper_releases_only_this_consoles_unowned_pods(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    # A pod this console labelled for a job that already ended, and one another console owns.
    fake.capacity[("NVIDIA GeForce RTX 4090", "SECURE")] += 2
    orphan = provider._gql(_deploy(resource_name("job_gone")), retry=False)["data"]["podFindAndDeployOnDemand"]["id"]
    other = provider._gql(_deploy("ftc-otherone-job_x"), retry=False)["data"]["podFindAndDeployOnDemand"]["id"]
    released = service.reap_orphans(["runpod"])
    assert released == [f"runpod:{orphan}"]
    assert orphan in fake.terminated and other not in fake.terminated and job.provider_ref not in fake.terminated


def _deploy(name: str) -> str:
    from runpod.api.mutations.pods import generate_pod_deployment_mutation

    return generate_pod_deployment_mutation(name=name, image_name="img", gpu_type_id="NVIDIA GeForce RTX 4090",
                                            cloud_type="SECURE", gpu_count=1)


def test_missing_key_fails_before_anything_is_rented(demo_home, fake):
    from core.store import open_store

    svc = JobService(open_store(), provider_factory=lambda name: RunPodProvider({}))
    job = svc.create(demo_cfg(demo_home), provider="runpod", gpu_type="RTX 4090")
    job = svc.launch(job.id)
    assert job.status == L.FAILED and "RUNPOD_API_KEY" in job.reason
    assert fake.deploy_inputs == []


def test_a_failed_deploy_is_not_sent_twice(service, demo_home, fake):
    # A deploy answered with a 5xx may still have rented a pod: it is never retried (the reaper finds strays).
    fake.fail_next(Response(500, "Internal Server Error"), when=lambda r: b"podFindAndDeployOnDemand" in r.body)
    job = launch(service, demo_home)
    assert job.status == L.FAILED and "error page" in job.reason
    assert sum(b"podFindAndDeployOnDemand" in r.body for r in fake.requests) == 1


def test_cli_deploy_on_runpod_prints_the_deployment_response(demo_home, fake, monkeypatch, capsys):
    from core.cli import main

    monkeypatch.setenv("RUNPOD_API_KEY", fake.api_key)
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", "/nonexistent")
    rc = main(["deploy", str(demo_home / "demo" / "sft.yaml"), "--provider", "runpod", "--gpu", "A100 PCIe",
               "--param", "cloud_type=SECURE", "--param", "volume_gb=80", "--budget", "4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["status"] == "provisioning" and out["deployment_id"].startswith("fakepod")
    assert out["cost"]["cost_per_hour"] == pytest.approx(1.64)
    assert fake.deploy_inputs[-1]["volumeInGb"] == 80 and fake.deploy_inputs[-1]["cloudType"] == "SECURE"
    assert main(["deploy", str(demo_home / "demo" / "sft.yaml"), "--provider", "runpod", "--param", "oops"]) == 2


def test_a_pod_stuck_provisioning_is_failed_and_released(service, demo_home, fake):
    job = launch(service, demo_home)
    service.settings.provisioning_timeout_s = 0  # the container never comes up (runtime stays null)
    job = service.poll(job.id)
    assert job.status == L.FAILED and "did not start training" in job.reason
    assert job.provider_ref in fake.terminated

"""Lambda provider against the loopback Lambda Cloud API fake (tests/fakes/lambda_api.py)."""

from __future__ import annotations

import base64
import json
import re
import subprocess

import pytest

from core import lifecycle as L
from core.errors import AuthError, LaunchError, ProviderUnavailable, RateLimited
from core.providers.http_channel import job_token, load_remote, resource_name, save_remote
from core.providers.lambda_labs import LambdaClient, LambdaProvider
from tests.fakes.lambda_api import FakeLambda
from tests.fakes.loopback import Response
from tests.fakes.machine import free_port
from tests.providers.conftest import launch_demo


@pytest.fixture()
def fake():
    with FakeLambda() as f:
        yield f


@pytest.fixture()
def provider(fake):
    return LambdaProvider({"api_key": fake.api_key}, base_url=f"{fake.url}/api/v1")


def launch(service, demo_home, gpu_type="A10", **kw):
    return launch_demo(service, demo_home, "lambda", gpu_type=gpu_type, **{"budget_usd": 3.0, **kw})


def test_credentials_checked_with_instance_types(provider, fake):
    info = provider.validate_credentials()
    assert info["instance_types"] == 4 and info["ssh_keys"] == ["laptop"]
    with pytest.raises(AuthError, match="invalid, expired, or deleted"):
        LambdaProvider({"api_key": "nope"}, base_url=f"{fake.url}/api/v1").validate_credentials()


def test_offers_have_per_gpu_prices_vram_and_capacity(provider):
    offers = {o.provider_gpu_id: o for o in provider.offers()}
    a10 = offers["gpu_1x_a10"]
    assert (a10.gpu_type, a10.vram_gb, a10.price_per_hour, a10.available) == ("A10", 24.0, 0.75, True)
    assert "us-east-1" in a10.region
    big = offers["gpu_8x_a100_80gb_sxm4"]
    assert big.max_count == 8 and big.price_per_hour == pytest.approx(14.32 / 8) and big.available is False


def test_launch_sends_the_bootstrap_as_cloud_init_user_data(service, demo_home, fake, tmp_path):
    job = launch(service, demo_home)
    assert job.status == L.PROVISIONING and job.cost_per_hour == 0.75
    body = fake.launch_bodies[-1]
    assert body["instance_type_name"] == "gpu_1x_a10" and body["ssh_key_names"] == ["laptop"]
    assert body["region_name"] == "us-east-1" and body["name"] == resource_name(job.id)
    assert {"key": "ftc-job", "value": job.id} in body["tags"]
    ud = body["user_data"]
    assert ud.startswith("#!/bin/bash") and fake.api_key not in ud  # secrets only inside base64
    path = tmp_path / "ud.sh"
    path.write_text(ud)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    env_b64, script_b64 = re.findall(r"printf '%s' '([A-Za-z0-9+/=]+)'", ud)
    env = base64.b64decode(env_b64).decode()
    assert f"FTC_REPORT_TOKEN={job_token(job.id)}" in env and f"LAMBDA_API_KEY={fake.api_key}" in env
    # The channel's TLS key goes with the token; the console keeps only the certificate's fingerprint.
    cert, key = _shipped_tls(body)
    assert "BEGIN PRIVATE KEY" in key and load_remote(job.id)["tls_sha256"] == _fingerprint(cert)
    assert "PRIVATE KEY" not in json.dumps(load_remote(job.id))
    script = base64.b64decode(script_b64).decode()
    assert "release-lambda" in script and f"FTC_JOB_ID={job.id}" in script


def test_user_data_runs_the_bootstrap_with_its_env(tmp_path):
    """The cloud-init script itself, run by bash: the env file is sourced and the bootstrap started detached."""
    from core.providers.lambda_labs import build_user_data

    work = tmp_path / "ftc"
    ud = build_user_data('echo "token=$FTC_REPORT_TOKEN quote=$Q" > "$FTC_WORK/out"', {
        "FTC_REPORT_TOKEN": "t0k", "Q": "it's \"odd\" $(no)"})
    (tmp_path / "ud.sh").write_text(ud)
    subprocess.run(["bash", str(tmp_path / "ud.sh")], env={"FTC_WORK": str(work), "PATH": "/usr/bin:/bin"},
                   check=True)
    from tests.fakes.machine import wait_for

    wait_for(lambda: (work / "out").exists() and (work / "out").read_text(), 20)
    assert (work / "out").read_text() == "token=t0k quote=it's \"odd\" $(no)\n"
    assert oct((work / ".env").stat().st_mode)[-3:] == "600"


def test_no_ssh_key_is_a_clear_error(service, demo_home, fake):
    fake.ssh_keys.clear()
    job = launch(service, demo_home)
    assert job.status == L.FAILED and "No SSH key is registered" in job.reason
    assert "cloud.lambda.ai/ssh-keys" in job.reason and fake.launch_bodies == []


def test_no_region_with_capacity_is_a_clear_error(service, demo_home, fake, provider):
    job = launch(service, demo_home, gpu_type="A100 (80 GB SXM4)", gpu_count=8)
    assert job.status == L.FAILED and "No Lambda region has a gpu_8x_a100_80gb_sxm4 free" in job.reason
    job = launch(service, demo_home, params={"region": "us-south-1"})
    assert job.status == L.FAILED and "Regions with capacity: us-east-1, us-west-1" in job.reason
    # Capacity vanishing between the listing and the launch: the API's own error.
    fake.fail_next(Response(400, {"error": {"code": "instance-operations/launch/insufficient-capacity",
                                            "message": "Not enough capacity to fulfill launch request."}}),
                   when=lambda r: r.path.endswith("/launch"))
    job = launch(service, demo_home)
    assert job.status == L.FAILED and "Not enough capacity" in job.reason


def test_status_transitions_cost_and_cancel(service, demo_home, fake, provider, monkeypatch):
    import core.providers.http_channel as hc

    t = [1000.0]
    monkeypatch.setattr(hc.time, "time", lambda: t[0])
    job = launch(service, demo_home)
    ref = job.provider_ref
    save_remote(job.id, launched_at=1000.0)
    assert provider.status(ref).state == "provisioning"
    fake.set_status(ref, "active")
    assert provider.status(ref).state == "running"
    t[0] += 3600
    assert provider.cost(ref) == pytest.approx(0.75)
    fake.set_status(ref, "unhealthy")
    st = provider.status(ref)
    assert st.state == "running" and "unhealthy" in st.message
    provider.cancel(ref)
    assert provider.status(ref).state == "terminated"
    t[0] += 3600  # cost stops when the instance went
    assert provider.cost(ref) == pytest.approx(0.75)
    provider.cancel(ref)  # already terminated: fine
    fake.instances.pop(ref)
    assert provider.status(ref).state == "terminated"  # vanished (404)
    provider.cancel(ref)


def test_preempted_instance_fails_the_job(service, demo_home, fake):
    job = launch(service, demo_home)
    fake.set_status(job.provider_ref, "preempted")
    job = service.poll(job.id)
    assert job.status == L.FAILED and "preempted" in job.reason


def test_429_and_5xx(fake, provider):
    fake.fail_next(Response(429, {"error": {"code": "global/too-many-requests", "message": "Slow down"}},
                            headers={"Retry-After": "0"}),
                   Response(503, "Service Unavailable"))
    assert provider.offers()
    fake.fail_next(*[Response(500, {"error": {"code": "global/internal-error",
                                              "message": "An internal server error occurred."}})] * 4)
    with pytest.raises(ProviderUnavailable):
        provider.offers()
    client = LambdaClient(fake.api_key, f"{fake.url}/api/v1")
    fake.fail_next(*[Response(429, {"error": {"code": "x", "message": "Slow down"}}, headers={"Retry-After": "0"})] * 3)
    with pytest.raises(RateLimited):
        client.launch({"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["laptop"]})
    assert fake.instances == {}


def test_unknown_type_lists_the_valid_ones(provider):
    with pytest.raises(LaunchError, match="gpu_1x_a10"):
        provider._resolve_type(provider.client.instance_types(), "TPU", 1)


def test_reaper_and_label(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    client = provider.client
    stray = client.launch({"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                           "ssh_key_names": ["laptop"], "name": resource_name("job_old")})[0]
    other = client.launch({"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                           "ssh_key_names": ["laptop"], "name": "someone-else"})[0]
    assert service.reap_orphans(["lambda"]) == [f"lambda:{stray}"]
    assert fake.instances[stray]["status"] == "terminated"
    assert fake.instances[other]["status"] == "booting" and fake.instances[job.provider_ref]["status"] == "booting"


def _shipped_env(body: dict) -> dict[str, str]:
    """The env file a launch put in the user data, as the instance's shell reads it."""
    env_b64 = re.findall(r"printf '%s' '([A-Za-z0-9+/=]+)'", body["user_data"])[0]
    out = subprocess.run(["bash", "-c", 'set -a; . /dev/stdin; env -0'], input=base64.b64decode(env_b64),
                         capture_output=True, check=True, env={"PATH": "/usr/bin:/bin"}).stdout
    return dict(kv.split("=", 1) for kv in out.decode().split("\0") if "=" in kv)


def _shipped_tls(body: dict) -> tuple[str, str]:
    env = _shipped_env(body)
    return env["FTC_REPORT_TLS_CERT"], env["FTC_REPORT_TLS_KEY"]


def _fingerprint(cert_pem: str) -> str:
    import hashlib
    import ssl

    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert_pem)).hexdigest()


@pytest.fixture()
def channel(service, demo_home, fake, tmp_path):
    """A launched job whose instance is active and serves the real channel server on this machine, with the TLS
    certificate and key the launch shipped in the user data."""
    from trainer.sink_http import ChannelServer, ReportDir

    port = free_port()
    job = launch(service, demo_home, params={"port": port})
    rd = ReportDir(tmp_path / "report")
    server = ChannelServer(rd, job_token(job.id), job.id, host="127.0.0.1", port=port,
                           tls=_shipped_tls(fake.launch_bodies[-1])).start()
    fake.set_status(job.provider_ref, "active")
    rd.append([{"kind": "status", "payload": {"status": "running", "fields": {}}}])
    yield job, rd
    server.shutdown()
    server.server_close()


def test_rows_come_from_the_instance_channel_and_a_finished_instance_is_released(service, fake, channel):
    """The console pulls from https://<instance ip>:<port>, served here by the real channel server."""
    job, rd = channel
    rd.append([{"kind": "metrics", "payload": {"rows": [{"step": 3, "loss": 1.25}]}}])
    rd.heartbeat({"current_step": 3, "progress": 0.3})
    job = service.poll(job.id)
    assert job.status == L.RUNNING and job.current_step == 3
    assert service.provider("lambda").channel_url(job.provider_ref, job.id).startswith("https://127.0.0.1:")
    assert [m["loss"] for m in service.store.get_metrics(job.id)] == [1.25]
    # The trainer finishes; the bootstrap offers no artifact (HF upload) and marks itself finished.
    rd.append([{"kind": "status", "payload": {"status": "completing", "fields": {"progress": 1.0}}},
               {"kind": "job", "payload": {"artifact_path": "hf://me/ftc-x"}}])
    rd.set_phase("finished", finished=True, exit_code=0)
    service.poll(job.id)  # collects the last rows
    job = service.poll(job.id)  # the instance is still active but done: the console terminates it
    assert job.status == L.COMPLETED and job.artifact_path == "hf://me/ftc-x"
    assert fake.instances[job.provider_ref]["status"] == "terminated"
    assert service.store.find_model_by_job(job.id).artifact_path == "hf://me/ftc-x"


def test_cancel_reaches_the_trainer_through_the_channel(service, channel):
    job, rd = channel
    service.poll(job.id)
    service.cancel(job.id)
    service.poll(job.id)
    assert (rd.root / "cancel").exists()  # the trainer's http sink sees it and stops at the next step


def test_the_channel_is_tls_pinned_to_the_job_certificate(service, fake, channel, tmp_path):
    """A plain-http request gets no row; a server with any other certificate gets no request (so no token)."""
    import requests

    from core.providers.channel_tls import issue_channel_cert
    from core.providers.http_channel import ChannelClient
    from trainer.sink_http import ChannelServer, ReportDir

    job, rd = channel
    service.poll(job.id)  # the console learns the instance's address
    url = service.provider("lambda").channel_url(job.provider_ref, job.id)
    pin = load_remote(job.id)["tls_sha256"]
    assert ChannelClient(url, job_token(job.id), pin=pin).state()["job_id"] == job.id
    with pytest.raises(requests.RequestException):
        requests.get(url.replace("https://", "http://") + "/v1/state", timeout=5,
                     headers={"Authorization": f"Bearer {job_token(job.id)}"})

    other = issue_channel_cert(job.id)  # an impostor on the address, with a certificate of its own
    port = free_port()
    impostor_dir = ReportDir(tmp_path / "impostor")
    impostor = ChannelServer(impostor_dir, job_token(job.id), job.id, host="127.0.0.1", port=port,
                             tls=(other.cert_pem, other.key_pem)).start()
    try:
        with pytest.raises(ProviderUnavailable, match="did not present the certificate"):
            ChannelClient(f"https://127.0.0.1:{port}", job_token(job.id), pin=pin).cancel()
        assert not (impostor_dir.root / "cancel").exists()  # the request never reached it
        ChannelClient(f"https://127.0.0.1:{port}", job_token(job.id), pin=other.sha256).cancel()
        assert (impostor_dir.root / "cancel").exists()  # while its own pin gets through
    finally:
        impostor.shutdown()
        impostor.server_close()
    with pytest.raises(Exception, match="https"):
        ChannelClient(url.replace("https://", "http://"), job_token(job.id), pin=pin)

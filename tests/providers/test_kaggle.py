"""Kaggle notebooks through kagglesdk against the loopback Kaggle API (tests/fakes/kaggle_api.py)."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess

import pytest

from core import lifecycle as L
from core.errors import AuthError, ProviderError, ProviderUnavailable, RateLimited
from core.providers.kaggle import KaggleProvider, join_kernel_log, kaggle_slug
from tests.fakes.kaggle_api import FakeKaggle
from tests.fakes.loopback import Response
from tests.providers.conftest import ftc, launch_demo


@pytest.fixture(autouse=True)
def no_local_kaggle_token(monkeypatch, tmp_path):
    # kagglesdk prefers an access token from the environment or ~/.kaggle over the key it is given.
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture()
def fake():
    with FakeKaggle() as f:
        yield f


@pytest.fixture()
def provider(fake):
    return KaggleProvider({"username": fake.username, "key": fake.key}, endpoint=fake.url)


def launch(service, demo_home, gpu_type="T4", **kw):
    return launch_demo(service, demo_home, "kaggle", gpu_type=gpu_type, **kw)


def test_credentials_checked_with_a_list_call_and_the_quota_shown(provider, fake):
    info = provider.validate_credentials()
    assert info["account"] == "alice" and info["gpu_quota"].startswith("25.5 of 30 GPU hours left this week")
    with pytest.raises(AuthError, match="Unauthenticated"):
        KaggleProvider({"username": "alice", "key": "nope"}, endpoint=fake.url).validate_credentials()
    with pytest.raises(AuthError, match="KAGGLE_USERNAME"):
        KaggleProvider({}, endpoint=fake.url).validate_credentials()


def test_offer_is_free_with_the_weekly_quota(provider):
    (t4,) = provider.offers()
    assert (t4.gpu_type, t4.vram_gb, t4.max_count, t4.price_per_hour) == ("T4", 16.0, 2, 0.0)
    assert "25.5 of 30 GPU hours left" in t4.notes
    assert "weekly GPU quota" in KaggleProvider({}).offers()[0].notes  # no credentials: the catalog note


def test_launch_uploads_a_private_dataset_and_pushes_a_gpu_kernel_once_it_is_ready(service, demo_home, fake, tmp_path):
    fake.dataset_ready_after = 2  # still processing at launch
    job = launch(service, demo_home)
    assert job.status == L.PROVISIONING, job.reason
    slug = kaggle_slug(job.id)
    assert job.provider_ref == f"alice/{slug}" and "_" not in slug and job.cost_per_hour == 0.0
    ds = fake.datasets[f"alice/{slug}"]
    assert ds["private"] and set(ds["files"]) == {"bundle.bin", "dataset.jsonl", "model.bin"}
    from core.paths import job_dir

    assert ds["files"]["bundle.bin"] == (job_dir(job.id) / "bundle.tar.gz").read_bytes()  # the bytes it hashed
    assert fake.kernels == {}  # not pushed while the dataset is processing
    job = service.poll(job.id)
    kernel = fake.kernels[job.provider_ref]
    assert job.status == L.PROVISIONING and kernel["status"] == "QUEUED"
    assert kernel["gpu"] and kernel["internet"] and kernel["private"] and kernel["shape"] == "NvidiaTeslaT4"
    assert kernel["datasets"] == [f"alice/{slug}"] and kernel["kernel_type"] == "script"
    # The kernel is valid Python whose embedded bootstrap is a valid bash script on the stdout channel.
    src = kernel["text"]
    compile(src, "kernel.py", "exec")
    script = gzip.decompress(base64.b64decode(re.search(r'b64decode\("([^"]+)"\)', src).group(1))).decode()
    assert "FTC_CHANNEL=stdout" in script and "/tmp/ftc-input/bundle.bin" in script
    (tmp_path / "boot.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "boot.sh")]).returncode == 0


def test_status_transitions_rows_from_the_chunked_log_and_zero_cost(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    ref = job.provider_ref
    assert fake.kernels[ref]["status"] == "QUEUED"
    assert provider.status(ref).state == "provisioning"
    fake.set_status(ref, "RUNNING")
    job = service.poll(job.id)
    assert provider.status(ref).state == "running"
    fake.set_status(ref, "COMPLETE")
    fake.set_log(ref, "pip install...\n" + "\n".join([
        ftc({"seq": 1, "kind": "status", "payload": {"status": "running", "fields": {}}}),
        ftc({"seq": 2, "kind": "metrics", "payload": {"rows": [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.0}]}}),
        ftc({"kind": "heartbeat", "payload": {"current_step": 2, "progress": 1.0}}),
        ftc({"seq": 3, "kind": "status", "payload": {"status": "completing",
                                                     "fields": {"progress": 1.0, "artifact_path": "output/final"}}}),
    ]) + "\n[ftc] the model stays in /tmp/ftc/output/final for the provider's output\n")
    job = service.poll(job.id)
    assert job.status == L.COMPLETED, job.reason
    # The folder the trainer reports is on the notebook's disk. The model's download failed here (its signed URL
    # answers 404), so the registry points at the notebook's Output tab, where the kernel copied it.
    assert job.artifact_path == f"https://www.kaggle.com/code/{ref}/output"
    assert service.store.find_model_by_job(job.id).artifact_path == job.artifact_path
    assert [m["loss"] for m in service.store.get_metrics(job.id)] == [2.5, 2.0]
    assert job.total_cost_usd == 0.0 and provider.cost(ref) == 0.0
    assert "pip install" in provider.logs(ref) and "@@FTC" not in provider.logs(ref)
    # Released: the staged dataset is deleted, the finished notebook (with the model in its output) is kept.
    assert f"alice/{kaggle_slug(job.id)}" not in fake.datasets and ref in fake.kernels


def test_a_failed_or_quota_stopped_notebook_fails_with_a_reason(service, demo_home, fake):
    job = launch(service, demo_home)
    fake.set_status(job.provider_ref, "ERROR", "Your GPU quota has been exhausted")
    job = service.poll(job.id)
    assert job.status == L.FAILED and "GPU quota" in job.reason and "refreshes weekly" in job.reason


def test_no_capacity_or_quota_refusal_at_push(service, demo_home, fake):
    fake.refuse_push = "You have exceeded your weekly GPU quota"
    job = launch(service, demo_home)
    job = service.poll(job.id) if job.status == L.PROVISIONING else job
    assert job.status == L.FAILED and "exceeded your weekly GPU quota" in job.reason


def test_unknown_gpu_is_a_clear_error(service, demo_home):
    job = launch(service, demo_home, gpu_type="H100")
    assert job.status == L.FAILED and "Kaggle has no GPU 'H100'" in job.reason and "NvidiaTeslaT4" in job.reason


def test_cancel_live_and_vanished(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    ref = job.provider_ref
    fake.set_status(ref, "RUNNING")
    provider.cancel(ref)
    assert ref not in fake.kernels and f"alice/{kaggle_slug(job.id)}" not in fake.datasets
    assert provider.status(ref).state == "terminated"
    provider.cancel(ref)  # vanished notebook and dataset: fine


def test_cancel_before_the_push_never_pushes(service, demo_home, fake, provider):
    fake.dataset_ready_after = 99
    job = launch(service, demo_home)
    provider.cancel(job.provider_ref)
    fake.dataset_ready_after = 0
    assert provider.status(job.provider_ref).state == "terminated" and fake.kernels == {}


def test_429_and_5xx(fake, provider):
    fake.fail_next(Response(429, {"code": 429, "message": "Too many requests"}),
                   Response(503, "Service Unavailable"))
    assert provider.validate_credentials()["account"] == "alice"
    fake.fail_next(*[Response(500, {"code": 500, "message": "Internal error"})] * 4)
    with pytest.raises(ProviderUnavailable):
        provider.validate_credentials()
    fake.fail_next(*[Response(429, {"code": 429, "message": "Too many requests"})] * 4)
    with pytest.raises(RateLimited):
        provider.validate_credentials()


def test_reaper_finds_live_labelled_notebooks_only(service, demo_home, fake, provider):
    job = launch(service, demo_home)
    fake.set_status(job.provider_ref, "RUNNING")
    stray = f"alice/{kaggle_slug('job_0123')}"
    fake.kernels[stray] = {**fake.kernels[job.provider_ref], "status": "RUNNING"}
    fake.kernels["alice/my-own-notebook"] = {**fake.kernels[job.provider_ref], "status": "RUNNING"}
    assert provider.list_owned_jobs() == {job.provider_ref: job.id, stray: "job_0123"}
    assert service.reap_orphans(["kaggle"]) == [f"kaggle:{stray}"]
    assert stray not in fake.kernels and "alice/my-own-notebook" in fake.kernels


def test_kernel_log_chunks_are_joined():
    assert join_kernel_log(json.dumps([{"stream_name": "stdout", "data": "@@FT"}, {"data": "C {}\nx"}])) == \
        "@@FTC {}\nx"
    assert join_kernel_log("plain text") == "plain text"


def test_cli_deploy_on_kaggle_prints_the_deployment_response(demo_home, fake, monkeypatch, capsys):
    from functools import partialmethod

    from core.cli import main

    monkeypatch.setattr(KaggleProvider, "__init__", partialmethod(KaggleProvider.__init__, endpoint=fake.url))
    monkeypatch.setenv("KAGGLE_USERNAME", fake.username)
    monkeypatch.setenv("KAGGLE_KEY", fake.key)
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", "/nonexistent")
    rc = main(["deploy", str(demo_home / "demo" / "sft.yaml"), "--provider", "kaggle", "--gpu", "T4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["status"] == "provisioning" and out["provider_ref"].startswith("alice/ftc-")
    assert out["cost"]["cost_per_hour"] == 0.0 and out["provider_ref"] in fake.kernels
    monkeypatch.setenv("KAGGLE_KEY", "wrong")
    rc = main(["deploy", str(demo_home / "demo" / "sft.yaml"), "--provider", "kaggle", "--gpu", "T4", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "failed" and "Kaggle refused the credentials" in out["reason"]


def test_an_output_file_named_outside_the_model_folder_is_refused(service, demo_home, fake, provider, monkeypatch):
    """Output names come from the notebook itself: one that climbs out of final/ is not written anywhere, and the
    registry falls back to the notebook's Output tab."""
    from types import SimpleNamespace

    from core.paths import artifacts_dir

    job = launch(service, demo_home)
    ref = job.provider_ref
    evil = SimpleNamespace(file_name="final/../../../escaped.txt", url=f"{fake.url}/out/missing")
    monkeypatch.setattr(provider, "_session_output",
                        lambda ref, token=None: SimpleNamespace(files=[evil], next_page_token=None, log=""))
    with pytest.raises(ProviderError, match="outside the model folder"):
        provider._download_final(ref)
    assert provider.artifact_uri(ref, "output/final") == f"https://www.kaggle.com/code/{ref}/output"
    assert not list(artifacts_dir().parent.rglob("escaped.txt"))

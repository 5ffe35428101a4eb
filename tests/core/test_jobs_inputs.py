"""Bad launch input is refused with a ConsoleError that names the field, before a job row exists (a raw pydantic
error would reach the CLI as a traceback and the page as "something went wrong")."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.jobs import JobService
from core.providers.runpod import RunPodProvider
from tests.core.test_jobs_estimate import PricedProvider, config, dataset  # noqa: F401 - the fixture


def _service():
    from core.store import open_store

    return JobService(open_store(), provider_factory=lambda name: PricedProvider(price=0.34))


def test_unknown_provider_setting_is_a_config_error_naming_it(console_home, dataset):
    svc = _service()
    with pytest.raises(ConfigError) as caught:
        svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090", params={"bogus": 1})
    assert dict(caught.value.problems) == {"runpod.bogus": "unknown field; remove it or check its spelling"}
    assert svc.store.list_jobs() == []


def test_each_bad_setting_of_a_real_provider_is_named():
    with pytest.raises(ConfigError, match="The RunPod settings are invalid") as caught:
        RunPodProvider.parse_params({"volume_gb": 1, "cloud_type": "CHEAP"})
    problems = dict(caught.value.problems)
    assert "greater than or equal to 10" in problems["runpod.volume_gb"]
    assert "COMMUNITY" in problems["runpod.cloud_type"]


def test_a_secret_given_as_a_bad_setting_is_not_echoed():
    with pytest.raises(ConfigError) as caught:
        RunPodProvider.parse_params({"env": {"HF_TOKEN": 'hf_abc"def'}})
    assert "hf_abc" not in str(caught.value)
    assert "runpod.env" in str(caught.value)


@pytest.mark.parametrize("count", [0, -2])
def test_fewer_than_one_gpu_is_refused(console_home, dataset, count):
    svc = _service()
    with pytest.raises(ConfigError, match="at least one GPU"):
        svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090", gpu_count=count)
    assert svc.store.list_jobs() == []


class LeakyProvider(PricedProvider):
    """An SDK whose error quotes the request that carried the key (requests' InvalidHeader does)."""

    def __init__(self) -> None:
        super().__init__(price=0.34)
        self.credentials = {"api_key": "rpa_SECRETKEY123"}

    def launch(self, req):
        raise ValueError("Invalid return character in header value: 'Bearer rpa_SECRETKEY123'; "
                         f"env {req.env.get('HF_TOKEN')}")


def test_a_launch_error_quoting_a_key_is_stored_and_logged_masked(console_home, dataset, monkeypatch, caplog):
    from core.store import open_store

    monkeypatch.setenv("HF_TOKEN", "hf_TOKENVALUE99")
    from core.credentials import credentials_for

    svc = JobService(open_store(), provider_factory=lambda name: LeakyProvider(), credentials=credentials_for)
    job = svc.launch(svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090").id)
    assert job.status == "failed" and "Bearer ***" in job.reason and "env ***" in job.reason
    rows = [job.reason, job.error_message, *(e.error_message for e in svc.store.get_errors(job.id)), caplog.text]
    assert "invalid return character" in caplog.text.lower()  # the log keeps the traceback, masked
    assert not [r for r in rows if "SECRETKEY" in (r or "") or "TOKENVALUE" in (r or "")]

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

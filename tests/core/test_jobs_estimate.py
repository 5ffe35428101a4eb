"""The quote travels with the job: stored at create, checked against the launched machine's price, and compared
with the actual time and cost when the job ends."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core import lifecycle as L
from core.jobs import JobService, deployment_response
from core.providers.base import GPUOffer, LaunchRequest, Provider, ProviderRef, ProviderStatus
from core.store.records import utcnow
from tests.support.chat_rows import write_chat_jsonl

CONFIGS = Path(__file__).parent / "fixtures" / "model_configs"


class PricedProvider(Provider):
    """A provider that launches nothing and bills a fixed price: enough for the quote/launch/finish bookkeeping."""

    name = "runpod"
    display_name = "priced fake"
    report_channel = "stdout"

    def __init__(self, price: float, spent: float = 0.0) -> None:
        super().__init__({})
        self.price, self.spent, self.cancelled = price, spent, []

    def validate_credentials(self) -> dict[str, Any]:
        return {}

    def offers(self) -> list[GPUOffer]:
        return []

    def launch(self, req: LaunchRequest) -> ProviderRef:
        return ProviderRef(ref=f"pod-{req.job_id}", cost_per_hour=self.price, gpu_type=req.gpu_type)

    def status(self, ref: str) -> ProviderStatus:
        return ProviderStatus(state="running")

    def logs(self, ref: str, tail: int = 200) -> str:
        return ""

    def cost(self, ref: str) -> float | None:
        return self.spent

    def cancel(self, ref: str) -> None:
        self.cancelled.append(ref)

    def list_owned(self) -> list[str]:
        return []


@pytest.fixture()
def dataset(tmp_path) -> Path:
    return write_chat_jsonl(tmp_path / "chat.jsonl")


def config(dataset: Path) -> dict[str, Any]:
    return {"name": "priced", "model": {"name": str(CONFIGS / "llama-2-7b-hf")},
            "data": {"train_path": str(dataset), "eval_split": 0.0, "max_length": 512},
            "training": {"bf16": True, "batch_size": 4}, "predictions": {"enabled": False}}


def service(prov: PricedProvider):
    from core.store import open_store

    return JobService(open_store(), provider_factory=lambda name: prov)


def test_create_stores_the_quote_and_launch_warns_on_a_different_price(console_home, dataset):
    prov = PricedProvider(price=0.69)
    svc = service(prov)
    job = svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090")
    quoted = job.estimate["price_per_hour"]
    assert quoted == 0.34  # RunPod community catalog price of the RTX 4090
    assert job.cost_per_hour == quoted  # the trainer's budget guard prices with the quote until the launch
    assert job.estimate["gpu"] == "RTX 4090" and job.estimate["fit"]["verdict"] == "fits"
    assert deployment_response(job)["cost"]["estimated_cost"] == job.estimate["cost_usd"] > 0

    job = svc.launch(job.id)
    assert job.cost_per_hour == 0.69
    errors = svc.store.get_errors(job.id)
    assert [e.error_type for e in errors] == ["price_mismatch"]
    assert "$0.340/h" in errors[0].error_message and "$0.690/h" in errors[0].error_message
    check = job.estimate["price_check"]
    assert check["quoted"] == 0.34 and check["reported"] == 0.69 and check["difference_pct"] == pytest.approx(102.9)


def test_matching_price_raises_no_warning(console_home, dataset):
    svc = service(PricedProvider(price=0.34))
    job = svc.launch(svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090").id)
    assert svc.store.get_errors(job.id) == []
    assert "price_check" not in job.estimate


def test_a_live_price_given_at_create_is_the_quote(console_home, dataset):
    svc = service(PricedProvider(price=0.44))
    job = svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090", cost_per_hour=0.44)
    assert job.estimate["price_per_hour"] == 0.44 and job.estimate["price_source"] == "price given at launch"
    svc.launch(job.id)
    assert svc.store.get_errors(job.id) == []


def test_finished_job_stores_the_estimate_error_once(console_home, dataset):
    prov = PricedProvider(price=0.34)
    svc = service(prov)
    job = svc.launch(svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090").id)
    store = svc.store
    # The run: one hour of training at the quoted price, with measured throughput rows.
    assert store.transition_job(job.id, L.RUNNING)
    store.update_job(job.id, started_at=utcnow() - timedelta(hours=1))
    store.upsert_metrics(job.id, [{"step": 1, "tokens_per_sec": 900.0}, {"step": 2, "tokens_per_sec": 1100.0},
                                  {"step": 3, "tokens_per_sec": 1000.0}])
    prov.spent = 0.34
    assert store.transition_job(job.id, L.COMPLETING)
    svc.finish(job.id)
    job = store.get_job(job.id)
    assert job.status == L.COMPLETED and prov.cancelled == [job.provider_ref]

    out = job.estimate["outcome"]
    actual_h = (job.completed_at - job.started_at).total_seconds() / 3600
    assert out["actual_hours"] == pytest.approx(actual_h, abs=1e-4)
    assert out["tokens_per_sec"] == 1000.0
    t = job.estimate["time"]
    est_mid = t["train_hours"]["mid"] + t["eval_hours"] + t["predictions_hours"]
    assert out["estimated_hours"]["mid"] == pytest.approx(est_mid, abs=1e-4)
    assert out["time_error_pct"] == pytest.approx((est_mid - actual_h) / actual_h * 100, abs=0.1)
    assert out["time_within_range"] == (out["estimated_hours"]["low"] <= actual_h <= out["estimated_hours"]["high"])
    assert out["actual_cost_usd"] == 0.34
    assert out["cost_error_pct"] == pytest.approx((job.estimate["cost_range"]["mid"] - 0.34) / 0.34 * 100, abs=0.1)

    from core.estimate import record_outcome

    assert record_outcome(store, job.id) is None  # once only
    assert store.get_job(job.id).estimate["outcome"] == out


def test_next_estimate_reuses_the_measured_throughput(console_home, dataset):
    from core.config import parse_config
    from core.estimate import estimate_for_config

    svc = service(PricedProvider(price=0.34))
    job = svc.launch(svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090").id)
    store = svc.store
    store.transition_job(job.id, L.RUNNING)
    store.upsert_metrics(job.id, [{"step": 1, "tokens_per_sec": 800.0}, {"step": 2, "tokens_per_sec": 1200.0},
                                  {"step": 3, "tokens_per_sec": 1000.0}])
    store.transition_job(job.id, L.COMPLETING)
    svc.finish(job.id)

    cfg = parse_config(config(dataset))
    est = estimate_for_config(cfg, store=store, provider="runpod", gpu="RTX 4090", compare=False)
    assert est.time.basis == "measured" and job.id in est.time.source
    assert est.time.tokens_per_sec.mid == 1000.0
    assert est.time.train_hours.mid == pytest.approx(est.dataset.train_tokens / 1000 / 3600, abs=1e-4)

    # Another model on the same card: the measured utilisation carries over, scaled by FLOPs per token.
    other = parse_config({**config(dataset), "model": {"name": str(CONFIGS / "mistral-7b-v0.1")}})
    scaled = estimate_for_config(other, store=store, provider="runpod", gpu="RTX 4090", compare=False)
    assert scaled.time.basis == "measured-scaled"
    assert scaled.time.tokens_per_sec.mid * scaled.time.flops_per_token == pytest.approx(
        1000.0 * job.estimate["time"]["flops_per_token"], rel=0.01)
    # A card with no past run keeps the table.
    table = estimate_for_config(cfg, store=store, provider="runpod", gpu="L40S", compare=False)
    assert table.time.basis == "table"


def test_samples_per_sec_alone_is_converted_with_the_jobs_token_count(console_home, dataset):
    from core.estimate import past_runs

    svc = service(PricedProvider(price=0.34))
    job = svc.launch(svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090").id)
    svc.store.transition_job(job.id, L.RUNNING)
    svc.store.upsert_metrics(job.id, [{"step": 1, "samples_per_sec": 4.0}])
    svc.store.transition_job(job.id, L.FAILED, reason="test")
    runs = past_runs(svc.store)
    assert [r.job_id for r in runs] == [job.id]
    assert runs[0].tokens_per_sec == pytest.approx(4.0 * job.estimate["dataset"]["tokens_per_row"])


def test_status_command_shows_the_estimate_error(console_home, dataset, capsys):
    from core.cli import main

    prov = PricedProvider(price=0.34, spent=0.1)
    svc = service(prov)
    job = svc.launch(svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090").id)
    svc.store.transition_job(job.id, L.RUNNING)
    svc.store.transition_job(job.id, L.COMPLETING)
    svc.finish(job.id)
    capsys.readouterr()
    assert main(["jobs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["estimate"]["outcome"]["actual_cost_usd"] == 0.1


def test_trainer_progress_rows_keep_the_quote(console_home, dataset):
    from trainer.report import apply_entries

    svc = service(PricedProvider(price=0.34))
    job = svc.launch(svc.create(config(dataset), provider="runpod", gpu_type="RTX 4090").id)
    apply_entries(svc.store, job.id, [{"kind": "job", "payload": {"current_step": 3,
                                                                   "estimate": {"eta_seconds": 42.0}}}])
    est = svc.store.get_job(job.id).estimate
    assert est["eta_seconds"] == 42.0 and est["price_per_hour"] == 0.34 and est["time"] == job.estimate["time"]

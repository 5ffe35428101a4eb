"""The llm_models row a finished job leaves behind: lineage, scores, time, cost and where the weights are."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import NotFoundError, StoreError
from core.registry import artifact_location, final_scores, loss_curve, record_action

pytestmark = pytest.mark.training


def test_finished_job_registers_its_model_with_lineage(finished_home):
    from core.store import open_store

    store = open_store()
    job = store.get_job(finished_home.job_id)
    model = store.get_model(finished_home.model_id)
    dataset = store.get_dataset(job.dataset_id)
    assert model.source_job_id == job.id
    assert model.base_model == finished_home.base
    assert model.dataset_hash == dataset.content_hash and len(model.dataset_hash) == 64
    assert model.dataset_size == job.dataset_size == dataset.valid_rows
    assert model.metrics["final_loss"] == pytest.approx(job.final_loss)
    assert {k: model.metrics[k] for k in ("bleu", "rouge_l")} == \
        {k: final_scores(store, job.id)[k] for k in ("bleu", "rouge_l")}
    hours = (job.completed_at - job.started_at).total_seconds() / 3600
    assert model.metadata["training_time_hours"] == pytest.approx(hours, abs=1e-4)
    assert model.metadata["train_seconds"] > 0
    assert model.metadata["total_cost_usd"] == job.total_cost_usd
    art = model.metadata["artifact"]
    assert art["kind"] == "local" and Path(art["path"]) == Path(job.artifact_path)
    assert (Path(art["path"]) / "adapter_model.safetensors").is_file()
    assert model.adapters["lora"]["r"] == 16


def test_loss_curve_is_the_jobs_logged_losses(finished_home):
    from core.store import open_store

    store = open_store()
    model = store.get_model(finished_home.model_id)
    curve = loss_curve(store, model)
    logged = [r for r in store.get_metrics(finished_home.job_id) if r.get("loss") is not None]
    assert [r["step"] for r in curve if r.get("loss") is not None] == [r["step"] for r in logged]
    losses = [r["loss"] for r in curve if r.get("loss") is not None]
    assert losses[0] > losses[-1]  # the job learned: the curve the detail view draws goes down


def test_actions_accumulate_on_the_row(console_home):
    from core.store import open_store
    from core.store.records import ModelRecord

    store = open_store()
    store.add_model(ModelRecord(id="model_x", name="m-x", metadata={"final_loss": 1.0}))
    record_action(store, "model_x", "merge", {"path": "/a"})
    rec = record_action(store, "model_x", "push_adapter", {"repo_id": "u/r"})
    assert rec.metadata["final_loss"] == 1.0
    assert rec.metadata["actions"]["merge"]["path"] == "/a"
    assert rec.metadata["actions"]["push_adapter"]["repo_id"] == "u/r"
    with pytest.raises(StoreError):
        store.update_model("model_x", nonsense=1)
    with pytest.raises(NotFoundError):
        store.update_model("model_missing", name="x")


def test_artifact_location_kinds(tmp_path):
    assert artifact_location(None)["kind"] == "none"
    assert artifact_location("hf://alice/adapter") == {"kind": "huggingface", "repo": "alice/adapter",
                                                        "uri": "hf://alice/adapter"}
    assert artifact_location(str(tmp_path))["kind"] == "local"
    assert artifact_location("/workspace/output/final")["kind"] == "provider"

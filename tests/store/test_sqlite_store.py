import threading

import pytest

from core.errors import NotFoundError, StoreError
from core.store.records import DatasetRecord, JobRecord, ModelRecord, new_id
from core.store.sqlite import SQLiteStore


@pytest.fixture()
def store(tmp_path):
    return SQLiteStore(tmp_path / "c.db")


def job(store, **kw):
    return store.create_job(JobRecord(id=new_id("job"), provider="local", **kw))


def test_migrations_are_versioned_and_idempotent(tmp_path):
    s = SQLiteStore(tmp_path / "c.db")
    assert s.migrate() == []  # already applied by the constructor
    s2 = SQLiteStore(tmp_path / "c.db")
    assert "training_jobs" in s2.columns()


def test_transition_is_compare_and_set(store):
    j = job(store)
    assert store.transition_job(j.id, "provisioning")
    assert not store.transition_job(j.id, "provisioning")  # already there
    assert not store.transition_job(j.id, "completed")  # not from provisioning
    assert store.transition_job(j.id, "running")
    got = store.get_job(j.id)
    assert got.status == "running" and got.started_at is not None
    assert store.transition_job(j.id, "failed", reason="boom")
    got = store.get_job(j.id)
    assert got.completed_at is not None and got.reason == "boom"
    assert not store.transition_job(j.id, "cancelled")  # terminal stays terminal


def test_metric_upsert_merges_and_never_duplicates(store):
    j = job(store)
    store.upsert_metrics(j.id, [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}])
    store.upsert_metrics(j.id, [{"step": 1, "cpu_pct": 40.0}])
    store.upsert_metrics(j.id, [{"step": 2, "loss": 1.5}])  # replayed batch
    rows = store.get_metrics(j.id)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["loss"] == 2.0 and rows[0]["cpu_pct"] == 40.0
    assert [r["step"] for r in store.get_metrics(j.id, since_step=1)] == [2]
    assert store.count_metrics(j.id) == 2


def test_prediction_upsert_is_idempotent(store):
    j = job(store)
    row = {"step": 5, "sample_id": "a", "prompt": "p", "generated_text": "g", "expected_text": "e", "bleu": 1.0,
           "rouge_l": 0.5, "epoch": 1.0, "scores": {"cer": 0.1}}
    store.upsert_predictions(j.id, [row, {**row, "sample_id": "b"}])
    store.upsert_predictions(j.id, [row])
    rows = store.get_predictions(j.id)
    assert len(rows) == 2 and rows[0]["scores"] == {"cer": 0.1}
    assert len(store.get_predictions(j.id, epoch=1)) == 2
    assert store.get_predictions(j.id, epoch=2) == []


def test_complete_job_registers_exactly_once(store):
    j = job(store)
    for s in ("provisioning", "running", "completing"):
        assert store.transition_job(j.id, s)
    m = ModelRecord(id=new_id("model"), name="m", source_job_id=j.id)
    assert store.complete_job(j.id, m)
    assert not store.complete_job(j.id, ModelRecord(id=new_id("model"), name="m2", source_job_id=j.id))
    assert len(store.list_models()) == 1 and store.find_model_by_job(j.id).name == "m"


def test_configs_upsert_by_name(store):
    a = store.save_config("demo", {"training": {"method": "sft"}, "model": {"name": "x"}})
    b = store.save_config("demo", {"training": {"method": "dpo"}, "model": {"name": "x"}})
    assert a.id == b.id and store.get_config("demo").method == "dpo"
    assert len(store.list_configs()) == 1
    store.delete_config(a.id)
    with pytest.raises(NotFoundError):
        store.get_config(a.id)


def test_datasets_are_kept_once_per_hash(store):
    r = DatasetRecord(id="ds_1", name="a.jsonl", content_hash="h", path="/x", row_count=3)
    store.add_dataset(r)
    again = store.add_dataset(DatasetRecord(id="ds_2", name="b.jsonl", content_hash="h", path="/y"))
    assert again.id == "ds_1" and len(store.list_datasets()) == 1


def test_unknown_job_field_is_refused(store):
    j = job(store)
    with pytest.raises(StoreError):
        store.update_job(j.id, no_such_column=1)
    with pytest.raises(NotFoundError):
        store.update_job("job_missing", progress=0.5)


def test_concurrent_writers_from_threads(store):
    j = job(store)

    def write(offset):
        for i in range(50):
            store.upsert_metrics(j.id, [{"step": offset + i, "loss": float(i)}])

    threads = [threading.Thread(target=write, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count_metrics(j.id) == 200

"""Each method trains the real tiny model through TRL/PEFT, in this process, reporting to a real SQLite store.

Asserted: the trainable weights changed, the job ended ``completing`` with its step count, every metric row
matches what the Trainer logged (``state.log_history``), prediction rows exist for every prediction round, and
the saved artifact loads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.conftest import assert_rows_match_log, read_log_history, run_in_process

pytestmark = pytest.mark.training


@pytest.mark.parametrize("method", ["sft", "dpo", "kto", "orpo"])
def test_method_trains_and_reports_every_logged_row(method, make_config, store, tmp_path):
    cfg = make_config(method, training={"max_steps": 4})
    code, job, spec, watch = run_in_process(store, cfg, tmp_path / "out")
    assert code == 0, store.get_errors(job.id)
    assert job.status == "completing" and job.current_step == 4 and job.total_steps == 4 and job.progress == 1.0
    changed = watch.changed()
    assert watch.before and len(changed) == len(watch.before), "every trainable tensor should have moved"
    assert all("lora_" in n for n in watch.before), "LoRA trains adapters only"

    history = read_log_history(spec.output_dir)
    assert_rows_match_log(store, job.id, history)
    if method in ("sft", "dpo", "kto"):  # TRL counts tokens for these; ORPO does not log them
        assert all(r["tokens_per_sec"] > 0 for r in store.get_metrics(job.id) if r["loss"] is not None)
    metrics = store.get_metrics(job.id)
    assert any(r["cpu_pct"] is not None and r["ram_mb"] > 0 for r in metrics), "the system sampler reported"
    assert job.heartbeat_at is not None and job.estimate["eta_seconds"] == 0
    preds = store.get_predictions(job.id)
    # a baseline at step 0, every step_interval (2), and the final model at step 4 (already counted)
    assert sorted({p["step"] for p in preds}) == [0, 2, 4]
    assert len(preds) == 3 * 2 and all(p["generation_seconds"] > 0 for p in preds)
    assert job.estimate["prediction_calls"] >= 2 and job.estimate["prediction_seconds"] > 0
    assert job.final_loss == pytest.approx([e["loss"] for e in history if "loss" in e][-1])

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(cfg.model.name)
    model = PeftModel.from_pretrained(base, Path(spec.output_dir) / "final")
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0


def test_full_fine_tune_with_gradient_checkpointing(make_config, store, tmp_path):
    cfg = make_config("sft", training={"max_steps": 3, "gradient_checkpointing": True}, lora={"enabled": False},
                      predictions={"enabled": False})
    code, job, spec, watch = run_in_process(store, cfg, tmp_path / "out")
    assert code == 0, store.get_errors(job.id)
    assert job.status == "completing"
    names = set(watch.before)
    assert not any("lora_" in n for n in names) and any("embed_tokens" in n for n in names)
    assert set(watch.changed()) == names, "full fine-tuning updates every weight"
    assert_rows_match_log(store, job.id, read_log_history(spec.output_dir))

    from transformers import AutoModelForCausalLM

    final = Path(spec.output_dir) / "final"
    assert not (final / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(final)  # a whole model, loadable on its own


def test_packing_is_padding_free(make_config, store, tmp_path):
    cfg = make_config("sft", training={"max_steps": 2, "packing": True}, predictions={"enabled": False})
    code, job, spec, watch = run_in_process(store, cfg, tmp_path / "out")
    assert code == 0, store.get_errors(job.id)
    assert watch.changed()
    assert watch.collator.padding_free is True, "TRL's best-fit packing flattens each batch into one sequence"
    assert_rows_match_log(store, job.id, read_log_history(spec.output_dir))

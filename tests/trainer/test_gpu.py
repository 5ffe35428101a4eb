"""QLoRA on CUDA: 4-bit (nf4 and fp4, double quantization, bf16 compute) and 8-bit loads of the tiny model train and
report like any other run. Skipped without a CUDA GPU (conftest) or without bitsandbytes."""

from __future__ import annotations

import pytest

from tests.trainer.conftest import run_in_process

pytestmark = [pytest.mark.gpu, pytest.mark.training]


@pytest.mark.parametrize("quant", [
    {"mode": "4bit", "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"},
    {"mode": "4bit", "quant_type": "fp4", "double_quant": False, "compute_dtype": "float16"},
    {"mode": "8bit"},
])
def test_qlora_trains_on_cuda(quant, make_config, store, tmp_path):
    pytest.importorskip("bitsandbytes")
    cfg = make_config("sft", model={"device_map": "cuda", "torch_dtype": "bfloat16"}, quantization=quant,
                      training={"max_steps": 3, "bf16": True, "gradient_checkpointing": True},
                      predictions={"enabled": False})
    code, job, spec, watch = run_in_process(store, cfg, tmp_path / "out")
    assert code == 0, store.get_errors(job.id)
    assert job.status == "completing" and job.current_step == 3
    assert watch.before and set(watch.changed()) == set(watch.before)
    assert all("lora_" in n for n in watch.before)
    gpu_rows = [r for r in store.get_metrics(job.id) if r["gpu_memory_mb"] is not None]
    assert gpu_rows and all(0 < r["gpu_memory_mb"] <= r["gpu_memory_total_mb"] for r in gpu_rows)

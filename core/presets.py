"""Starting points for the config form (spec §2.1) plus the demo preset on the locally built tiny model."""

from __future__ import annotations

from typing import Any

from core.config import TrainingConfig, parse_config


def _small() -> dict[str, Any]:
    return {
        "name": "Qwen2.5-0.5B-fine-tune",
        "model": {"name": "Qwen/Qwen2.5-0.5B", "torch_dtype": "bfloat16"},
        "data": {"train_path": "dataset.jsonl", "eval_split": 0.1, "max_length": 1024},
        "training": {
            "method": "sft", "num_epochs": 3, "learning_rate": 5e-4, "batch_size": 32,
            "gradient_accumulation_steps": 1, "bf16": True,
        },
        "lora": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        "predictions": {"enabled": True, "sample_count": 5, "sample_frequency": "epoch"},
    }


def _large() -> dict[str, Any]:
    return {
        "name": "Llama-2-70B-fine-tune",
        "model": {"name": "meta-llama/Llama-2-70b-hf", "torch_dtype": "bfloat16"},
        "data": {"train_path": "dataset.jsonl", "eval_split": 0.1, "max_length": 2048},
        "training": {
            "method": "sft", "num_epochs": 2, "learning_rate": 2e-4, "batch_size": 4,
            "gradient_accumulation_steps": 4, "bf16": True, "gradient_checkpointing": True,
            "optim": "paged_adamw_32bit",
        },
        "lora": {"r": 64, "alpha": 128, "dropout": 0.1, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        "quantization": {"mode": "4bit", "quant_type": "nf4", "double_quant": True, "compute_dtype": "bfloat16"},
        "predictions": {"enabled": True, "sample_count": 10, "sample_frequency": "eval"},
    }


def demo_config_dict(model_path: str, train_path: str, method: str = "sft") -> dict[str, Any]:
    """The demo preset: tuned so the tiny model visibly learns in a minute or two on 2 CPU cores."""
    sft = method == "sft"
    return {
        "name": f"demo-{method}",
        "description": "Tiny Llama built locally by `python -m core demo`; trains on CPU in about a minute.",
        "model": {"name": model_path, "torch_dtype": "float32", "device_map": "cpu"},
        "data": {"train_path": train_path, "eval_split": 0.1, "max_length": 128},
        "training": {
            "method": method,
            "num_epochs": 8 if sft else 3,
            "learning_rate": 4e-3 if sft else 1e-3,
            "batch_size": 16 if sft else 8,
            "warmup_steps": 4,
            "logging_steps": 2,
            "save_steps": 40,
            "lr_scheduler_type": "cosine",
            "beta": 0.1,
            # The tiny base barely knows the chat markup; an NLL term on chosen answers keeps DPO from degenerating.
            "sft_weight": 1.0 if method == "dpo" else 0.0,
        },
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "predictions": {
            "enabled": True, "sample_count": 8, "sample_frequency": "steps", "step_interval": 16 if sft else 10,
            "max_new_tokens": 24, "temperature": 0.0,
        },
    }


PRESETS = {"small": _small, "large": _large}


def preset(name: str) -> TrainingConfig:
    from core.errors import ConfigError

    if name not in PRESETS:
        raise ConfigError(f"Unknown preset '{name}'. Choose one of: {', '.join(PRESETS)} (or 'demo').")
    return parse_config(PRESETS[name]())

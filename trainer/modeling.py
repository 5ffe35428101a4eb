"""Load the tokenizer and model the way a real run does (``from_pretrained(hub_id_or_path)``)."""

from __future__ import annotations

import os
from typing import Any

from core.config import TrainingConfig
from core.errors import TrainerError

# Used when a base model ships no chat template (stated on the config form): ChatML, which most recent
# instruction-tuned models also use, so adapters transfer cleanly to serving stacks.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def wants_cuda(cfg: TrainingConfig) -> bool:
    return cfg.model.device_map in ("auto", "cuda")


def check_quantization_possible(cfg: TrainingConfig) -> None:
    """Fail before loading anything when quantization cannot work here."""
    if cfg.quantization.mode == "none":
        return
    import torch

    if not torch.cuda.is_available():
        raise TrainerError(
            f"{cfg.quantization.mode} quantization (QLoRA) needs a CUDA GPU and none is visible on this machine.",
            hint="Set quantization.mode to 'none' to train in full precision here, or launch on a GPU provider.",
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise TrainerError("Quantization needs the bitsandbytes package.", hint="pip install bitsandbytes") from None


def load_tokenizer(cfg: TrainingConfig) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        cfg.model.name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code,
        token=os.environ.get("HF_TOKEN"),
    )
    if cfg.model.chat_template:
        tok.chat_template = cfg.model.chat_template
    elif not getattr(tok, "chat_template", None):
        tok.chat_template = FALLBACK_CHAT_TEMPLATE
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def torch_dtype(cfg: TrainingConfig) -> Any:
    import torch

    if cfg.model.torch_dtype == "auto":
        if cfg.training.bf16:
            return torch.bfloat16
        if cfg.training.fp16:
            return torch.float16
        return torch.float32 if not torch.cuda.is_available() else "auto"
    return getattr(torch, cfg.model.torch_dtype)


def quantization_config(cfg: TrainingConfig) -> Any:
    q = cfg.quantization
    if q.mode == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if q.mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type=q.quant_type, bnb_4bit_use_double_quant=q.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, q.compute_dtype),
    )


def load_model(cfg: TrainingConfig, *, distributed: bool = False) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    check_quantization_possible(cfg)
    kwargs: dict[str, Any] = {
        "revision": cfg.model.revision, "trust_remote_code": cfg.model.trust_remote_code,
        "token": os.environ.get("HF_TOKEN"), "dtype": torch_dtype(cfg),
    }
    qc = quantization_config(cfg)
    if qc is not None:
        kwargs["quantization_config"] = qc
    # Under DDP each process owns its device; device_map would spread one model over all GPUs instead.
    if not distributed and cfg.model.device_map != "cpu" and torch.cuda.is_available():
        kwargs["device_map"] = "auto" if cfg.model.device_map == "auto" else {"": 0}
    model = AutoModelForCausalLM.from_pretrained(cfg.model.name, **kwargs)
    if qc is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.training.gradient_checkpointing
        )
    return model


def peft_config(cfg: TrainingConfig) -> Any:
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    lc = cfg.lora
    return LoraConfig(
        r=lc.r, lora_alpha=lc.alpha, lora_dropout=lc.dropout, bias=lc.bias, task_type="CAUSAL_LM",
        target_modules=lc.target_modules,
    )

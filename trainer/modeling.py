"""Load the tokenizer and model the way a real run does (``from_pretrained(hub_id_or_path)``)."""

from __future__ import annotations

import os
from typing import Any

from core.config import FALLBACK_CHAT_TEMPLATE, TrainingConfig
from core.errors import TrainerError

__all__ = ["FALLBACK_CHAT_TEMPLATE", "load_model", "load_tokenizer", "peft_config", "use_liger"]


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


def load_tokenizer(cfg: TrainingConfig, *, needs_chat_template: bool = True) -> tuple[Any, str]:
    """The tokenizer and where its chat template came from: ``config``, ``model`` or ``fallback`` (ChatML)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(
        cfg.model.name, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code,
        token=os.environ.get("HF_TOKEN"),
    )
    if cfg.model.chat_template:
        tok.chat_template, source = cfg.model.chat_template, "config"
    elif getattr(tok, "chat_template", None):
        source = "model"
    else:
        tok.chat_template, source = FALLBACK_CHAT_TEMPLATE, "fallback"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    if needs_chat_template:
        check_chat_template(tok, source)
    return tok, source


def check_chat_template(tok: Any, source: str) -> None:
    """Render one exchange now, so a broken template fails before the model loads, with a readable reason."""
    probe = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    try:
        tok.apply_chat_template(probe, tokenize=False)
        tok.apply_chat_template(probe[:2], tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 - jinja raises many kinds; all mean the same to the user
        where = "model.chat_template" if source == "config" else "the model's own chat template"
        raise TrainerError(
            f"The chat template ({where}) cannot render a conversation: {type(exc).__name__}: {exc}",
            hint="Fix model.chat_template (a Jinja template over `messages`), or leave it empty to use the model's "
                 "own template or the ChatML fallback.",
        ) from exc


def liger_available() -> bool:
    try:
        from transformers.utils import is_liger_kernel_available

        return bool(is_liger_kernel_available())
    except ImportError:
        return False


def use_liger(cfg: TrainingConfig) -> bool:
    """Liger's kernels are Triton (CUDA) kernels: used when asked, installed, and training on a GPU."""
    if not cfg.training.liger_kernels or cfg.model.device_map == "cpu" or not liger_available():
        return False
    import torch

    return torch.cuda.is_available()


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
    on_gpu = cfg.model.device_map != "cpu" and torch.cuda.is_available()
    if distributed:
        # Under DDP each process owns one device (the Trainer moves a plain model there itself); a quantized
        # model must be loaded onto it, since it cannot be moved after loading.
        if on_gpu and qc is not None:
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    elif on_gpu:
        kwargs["device_map"] = "auto" if cfg.model.device_map == "auto" else {"": 0}
    model = AutoModelForCausalLM.from_pretrained(cfg.model.name, **kwargs)
    if qc is not None and cfg.training.method != "orpo":  # TRL's ORPO trainer prepares k-bit models itself
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.training.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
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

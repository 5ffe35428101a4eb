"""The training config: one pydantic model, validated the same way on the console and on the GPU machine.

This module must stay importable with pydantic (and optionally PyYAML) alone: the trainer bundle carries it to
remote machines. Cross-field rules live here so that the form, the CLI and the trainer agree on what is valid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import ConfigError, InputError

Method = Literal["sft", "dpo", "kto", "orpo"]
DatasetFormat = Literal["auto", "text", "chat", "instruction", "prompt_completion", "dpo", "kto", "sharegpt"]

# Which dataset formats each method can learn from (spec §9 [rebuild], issue 3).
METHOD_FORMATS: dict[str, tuple[str, ...]] = {
    "sft": ("text", "chat", "instruction", "prompt_completion", "sharegpt"),
    "dpo": ("dpo",),
    "orpo": ("dpo",),
    "kto": ("kto", "dpo"),
}

# What the screens say about each method. ``experimental`` marks a trainer taken from TRL's experimental package,
# whose options and behaviour may change between TRL releases: the form shows it with a warning badge.
METHOD_INFO: dict[str, dict[str, Any]] = {
    "sft": {
        "label": "SFT", "title": "Supervised fine-tuning", "experimental": False, "trl_trainer": "trl.SFTTrainer",
        "summary": "Learns to give the answers in text, chat, instruction or prompt/completion rows.",
    },
    "dpo": {
        "label": "DPO", "title": "Direct preference optimization", "experimental": False,
        "trl_trainer": "trl.DPOTrainer",
        "summary": "Learns to prefer the chosen answer over the rejected one; needs a frozen reference copy.",
    },
    "kto": {
        "label": "KTO", "title": "Kahneman-Tversky optimization", "experimental": False,
        "trl_trainer": "trl.KTOTrainer",
        "summary": "Learns from unpaired answers labelled desirable or not; preference pairs are split into one of each.",
    },
    "orpo": {
        "label": "ORPO", "title": "Odds-ratio preference optimization", "experimental": True,
        "trl_trainer": "trl.experimental.orpo.ORPOTrainer",
        "summary": "SFT and preference learning in one pass, without a reference model.",
        "note": "it comes from TRL's experimental package, whose options may change between releases.",
    },
}

# The chat template used when a model ships none (most base models), stated on the config form. ChatML, which most
# instruction-tuned models also use; the end-of-sequence token after each answer teaches the model to stop.
FALLBACK_CHAT_TEMPLATE_NAME = "ChatML"
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}"
    "{% if message['role'] == 'assistant' and eos_token %}{{ eos_token }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
FALLBACK_CHAT_TEMPLATE_NOTE = (
    "Models without a chat template of their own are trained with ChatML (<|im_start|>role ... <|im_end|>), "
    "with the end-of-sequence token after each answer; set model.chat_template to use another one."
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(_Section):
    name: str = Field(min_length=1, description="Hugging Face Hub id (org/name) or a local model folder")
    revision: str | None = Field(default=None, description="Branch, tag or commit on the Hub")
    torch_dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    device_map: Literal["auto", "cuda", "cpu"] = "auto"
    trust_remote_code: bool = False
    chat_template: str | None = Field(
        default=None,
        description="Jinja chat template used when the model has none (base models); None keeps the model's own",
    )


class DataSection(_Section):
    train_path: str = Field(min_length=1, description="JSONL file path or a stored dataset id (ds_...)")
    format: DatasetFormat = "auto"
    eval_split: float = Field(default=0.1, description="Fraction of rows held out for evaluation, 0 to 0.5")
    max_samples: int | None = Field(default=None, ge=1)
    max_length: int = Field(default=1024, ge=16, le=262144, description="Tokens per row; longer rows are truncated")
    seed: int = 42

    @field_validator("eval_split")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if 1 < v <= 50:
            raise ValueError(f"eval_split is a fraction, not a percentage: use {v / 100:g} for {v:g}%")
        if not 0 <= v <= 0.5:
            raise ValueError("eval_split must be between 0 (no evaluation) and 0.5")
        return v


class LoRASection(_Section):
    enabled: bool = Field(default=True, description="Train LoRA adapters; off means full fine-tuning")
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] | None = Field(
        default=None, description="Module names to adapt; None uses PEFT's default for the architecture"
    )
    bias: Literal["none", "all", "lora_only"] = "none"


class QuantizationSection(_Section):
    mode: Literal["none", "4bit", "8bit"] = "none"
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


class TrainingSection(_Section):
    method: Method = "sft"
    num_epochs: float = Field(default=3, gt=0, le=1000)
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps")
    learning_rate: float = Field(default=2e-4, gt=0, le=1)
    batch_size: int = Field(default=4, ge=1, le=4096, description="Per device")
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=4096)
    warmup_steps: int = Field(default=0, ge=0)
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    optim: Literal[
        "adamw_torch", "adamw_torch_fused", "paged_adamw_32bit", "paged_adamw_8bit", "adamw_8bit", "adafactor", "sgd"
    ] = "adamw_torch"
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    max_grad_norm: float = Field(default=1.0, gt=0)
    gradient_checkpointing: bool = False
    bf16: bool = False
    fp16: bool = False
    packing: bool = False
    padding_free: bool = Field(
        default=False, description="SFT only: one flattened sequence per batch instead of padded rows (packing "
        "turns it on by itself)",
    )
    liger_kernels: bool = Field(
        default=True, description="Use Liger's fused Triton kernels when liger-kernel is installed and a CUDA GPU "
        "trains; ignored otherwise",
    )
    beta: float = Field(default=0.1, gt=0, description="Preference strength for DPO, KTO and ORPO")
    sft_weight: float = Field(
        default=0.0, ge=0, le=10,
        description="DPO only: weight of an extra NLL loss on the chosen answers (RPO); keeps a base model fluent",
    )
    logging_steps: int = Field(default=10, ge=1)
    eval_steps: int | None = Field(default=None, ge=1, description="None evaluates once per epoch")
    save_steps: int = Field(default=200, ge=1)
    save_total_limit: int = Field(default=2, ge=1)
    seed: int = 42


class PredictionsSection(_Section):
    enabled: bool = True
    sample_count: int = Field(default=5, ge=1, le=200)
    sample_frequency: Literal["epoch", "steps", "eval"] = "epoch"
    step_interval: int | None = Field(default=None, ge=1)
    max_new_tokens: int = Field(default=128, ge=1, le=8192)
    temperature: float = Field(default=0.7, ge=0, le=5, description="0 decodes greedily")
    top_p: float = Field(default=0.9, gt=0, le=1)


class BudgetSection(_Section):
    max_usd: float | None = Field(default=None, gt=0)
    max_hours: float | None = Field(default=None, gt=0)


class TrainingConfig(_Section):
    name: str = Field(min_length=1, max_length=120)
    description: str = ""
    model: ModelSection
    data: DataSection
    training: TrainingSection = Field(default_factory=TrainingSection)
    lora: LoRASection = Field(default_factory=LoRASection)
    quantization: QuantizationSection = Field(default_factory=QuantizationSection)
    predictions: PredictionsSection = Field(default_factory=PredictionsSection)
    budget: BudgetSection = Field(default_factory=BudgetSection)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> "TrainingConfig":
        problems = cross_field_problems(self)
        if problems:
            # Raised as ValueError so pydantic folds it into one ValidationError; `parse_config` unpacks it.
            raise ValueError("\n".join(f"{field}: {msg}" for field, msg in problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def cross_field_problems(cfg: TrainingConfig) -> list[tuple[str, str]]:
    """Rules between fields (spec §2.1 [rebuild]); each problem names the field and the fix."""
    t, q, p = cfg.training, cfg.quantization, cfg.predictions
    problems: list[tuple[str, str]] = []
    if t.bf16 and t.fp16:
        problems.append(("training.fp16", "bf16 and fp16 cannot both be on; keep one (bf16 on Ampere or newer)"))
    if p.enabled and p.sample_frequency == "eval" and cfg.data.eval_split == 0:
        problems.append(
            ("predictions.sample_frequency", "'eval' needs an evaluation split; set data.eval_split above 0 or pick 'epoch'")
        )
    if p.enabled and p.sample_frequency == "steps" and not p.step_interval:
        problems.append(("predictions.step_interval", "sample_frequency 'steps' needs step_interval of 1 or more"))
    if q.mode != "none" and cfg.model.device_map == "cpu":
        problems.append(("model.device_map", "quantization runs on CUDA only; set device_map to 'auto' or 'cuda'"))
    if q.mode != "none" and not cfg.lora.enabled:
        problems.append(("lora.enabled", "a quantized model cannot be fully fine-tuned; turn LoRA on (QLoRA)"))
    if t.optim.startswith("paged_") and q.mode == "none":
        problems.append(("training.optim", f"{t.optim} is meant for quantized training; use adamw_torch"))
    if t.packing and t.method != "sft":
        problems.append(("training.packing", f"packing is for SFT only; turn it off for {t.method.upper()}"))
    if t.padding_free and t.method != "sft":
        problems.append(("training.padding_free", f"padding-free batches are for SFT only in TRL; turn it off for "
                                                  f"{t.method.upper()}"))
    if cfg.lora.enabled and cfg.lora.alpha < 1:
        problems.append(("lora.alpha", "alpha must be at least 1; 2 x r is the usual choice"))
    fmt = cfg.data.format
    if fmt not in ("auto",) and fmt not in METHOD_FORMATS[t.method]:
        allowed = ", ".join(METHOD_FORMATS[t.method])
        problems.append(("data.format", f"{t.method.upper()} cannot learn from '{fmt}' rows; it takes {allowed}"))
    return problems


def parse_config(data: dict[str, Any]) -> TrainingConfig:
    """Validate a config dict, turning pydantic's report into a ConfigError naming each field and fix."""
    if not isinstance(data, dict):
        raise InputError("A training config must be a mapping of sections (model, data, training, ...).")
    try:
        return TrainingConfig.model_validate(data)
    except ValidationError as exc:
        problems = _problems_from(exc)
        summary = "; ".join(f"{f}: {m}" for f, m in problems)
        raise ConfigError(f"The training config is invalid — {summary}", problems) from None


def _problems_from(exc: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required; set it"
        if not loc and ":" in msg:
            # Cross-field rules come back as one message: split them back into their fields.
            for part in msg.split("\n"):
                field, _, text = part.partition(": ")
                problems.append((field, text))
            continue
        problems.append((loc or "config", msg))
    return problems


def load_config_file(path: str | Path) -> TrainingConfig:
    """Read a YAML or JSON config file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Config file {p} does not exist.")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Config file {p} cannot be read as UTF-8 text ({type(exc).__name__}).",
                         hint="Give a YAML or JSON config file.") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml  # lazy: only needed for YAML files

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        raise InputError(f"Config file {p} cannot be parsed: {exc}") from None
    cfg = parse_config(data)
    base = p.parent
    # A relative dataset path in a config file is relative to the file, so demo configs work from anywhere.
    if not cfg.data.train_path.startswith("ds_") and not Path(cfg.data.train_path).is_absolute():
        candidate = (base / cfg.data.train_path).resolve()
        if candidate.exists():
            cfg.data.train_path = str(candidate)
    if not Path(cfg.model.name).is_absolute() and (base / cfg.model.name).is_dir():
        cfg.model.name = str((base / cfg.model.name).resolve())
    return cfg


def dump_yaml(cfg: TrainingConfig) -> str:
    import yaml

    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)

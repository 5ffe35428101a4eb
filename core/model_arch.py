"""A model's shape from its config: parameter counts, per-layer linear modules and LoRA sizes, without weights.

The config comes from ``transformers.AutoConfig`` (a local folder works offline; a Hub id downloads config.json
only, never weights). When the Hub cannot be reached and the config is not cached, a small table of well-known
models stands in, and the result says so. Counting is analytic from the config fields, so it needs neither torch
nor the model class; tests check it against ``from_config`` on the meta device and against published sizes.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# Families whose MLP is up -> act -> down (two matrices); everything else is treated as gated (gate, up, down).
NON_GATED = {"gpt2", "gpt_bigcode", "gpt_neox", "gptj", "phi", "falcon", "opt", "bloom", "starcoder2", "mpt", "codegen"}
# PEFT's default LoRA targets when target_modules is None (peft.utils.constants
# TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING); families it does not list need explicit targets.
PEFT_DEFAULT_TARGETS = {
    "phi": ("q_proj", "v_proj", "fc1", "fc2"), "gpt2": ("c_attn",), "gpt_bigcode": ("c_attn",),
    "gpt_neox": ("query_key_value",), "falcon": ("query_key_value",), "bloom": ("query_key_value",),
}
PEFT_Q_V_FAMILIES = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "opt"}
# Mixtral names its expert matrices w1 (gate), w3 (up), w2 (down).
_MODULE_ALIASES = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}


@dataclass(frozen=True)
class Linear:
    name: str
    fan_in: int
    fan_out: int
    count: int = 1  # per layer (experts multiply it)
    bias: bool = False
    expert: bool = False  # only experts_per_tok of `count` run per token

    @property
    def params(self) -> int:
        return self.count * (self.fan_in * self.fan_out + (self.fan_out if self.bias else 0))


@dataclass(frozen=True)
class ModelArch:
    model_type: str
    hidden: int
    layers: int
    vocab: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    tied: bool
    gated: bool = True
    experts: int = 0
    experts_per_tok: int = 0
    expert_intermediate: int = 0
    shared_intermediate: int = 0
    positions: int = 0  # learned position embeddings (GPT-2); 0 for rotary models
    attn_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    layernorm_bias: bool = False
    qk_norm: bool = False
    checkpoint_dtype: str | None = None
    prequantized_bits: float | None = None  # a checkpoint saved already quantized (bnb, GPTQ, AWQ)

    # -- modules ------------------------------------------------------------------------------------------
    def linears(self) -> list[Linear]:
        """The linear modules of one decoder layer, named as the model class names them."""
        h, hd = self.hidden, self.head_dim
        q_out, kv_out = self.heads * hd, self.kv_heads * hd
        t = self.model_type
        if t in ("gpt2", "gpt_bigcode"):
            return [Linear("c_attn", h, q_out + 2 * kv_out, bias=True), Linear("c_proj", q_out, h, bias=True),
                    Linear("c_fc", h, self.intermediate, bias=True), Linear("c_proj", self.intermediate, h, bias=True)]
        if t in ("gpt_neox", "falcon", "bloom"):
            b = t != "falcon" or self.attn_bias
            return [Linear("query_key_value", h, q_out + 2 * kv_out, bias=b), Linear("dense", q_out, h, bias=b),
                    Linear("dense_h_to_4h", h, self.intermediate, bias=b),
                    Linear("dense_4h_to_h", self.intermediate, h, bias=b)]
        if t == "phi3":
            attn = [Linear("qkv_proj", h, q_out + 2 * kv_out), Linear("o_proj", q_out, h)]
            return attn + [Linear("gate_up_proj", h, 2 * self.intermediate), Linear("down_proj", self.intermediate, h)]
        attn = [Linear("q_proj", h, q_out, bias=self.attn_bias), Linear("k_proj", h, kv_out, bias=self.attn_bias),
                Linear("v_proj", h, kv_out, bias=self.attn_bias)]
        o_name, up_name, down_name = ("dense", "fc1", "fc2") if t == "phi" else ("o_proj", "up_proj", "down_proj")
        attn.append(Linear(o_name, q_out, h, bias=self.o_bias))
        if self.experts:
            e, i = self.experts, self.expert_intermediate or self.intermediate
            mlp = [Linear("gate_proj", h, i, e, expert=True), Linear("up_proj", h, i, e, expert=True),
                   Linear("down_proj", i, h, e, expert=True), Linear("router", h, e)]
            if self.shared_intermediate:
                s = self.shared_intermediate
                mlp += [Linear("shared_gate_proj", h, s), Linear("shared_up_proj", h, s), Linear("shared_down_proj", s, h)]
            return attn + mlp
        i, b = self.intermediate, self.mlp_bias
        if self.gated:
            return attn + [Linear("gate_proj", h, i, bias=b), Linear(up_name, h, i, bias=b), Linear(down_name, i, h, bias=b)]
        return attn + [Linear(up_name, h, i, bias=b), Linear(down_name, i, h, bias=b)]

    # -- counts -------------------------------------------------------------------------------------------
    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden + self.positions * self.hidden

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tied else self.vocab * self.hidden

    def _norm_params(self) -> int:
        per_norm = self.hidden * (2 if self.layernorm_bias else 1)
        norms_per_layer = 1 if self.model_type == "phi" else 2
        qk = 2 * self.head_dim if self.qk_norm else 0
        return self.layers * (norms_per_layer * per_norm + qk) + per_norm

    @property
    def layer_linear_params(self) -> int:
        return self.layers * sum(m.params for m in self.linears())

    @property
    def params(self) -> int:
        lm_bias = self.vocab if self.model_type == "phi" and not self.tied else 0
        return self.embedding_params + self.layer_linear_params + self._norm_params() + self.lm_head_params + lm_bias

    @property
    def active_params(self) -> int:
        """Parameters that touch each token (MoE runs experts_per_tok of its experts)."""
        if not self.experts:
            return self.params
        idle = sum(m.params // m.count * (m.count - self.experts_per_tok) for m in self.linears() if m.expert)
        return self.params - self.layers * idle

    @property
    def compute_params(self) -> int:
        """Parameters that cost matmul FLOPs per token: the embedding lookup is free, the output head is not."""
        return self.active_params - self.positions * self.hidden - (0 if self.tied else self.vocab * self.hidden)

    # -- LoRA ---------------------------------------------------------------------------------------------
    def lora_targets(self, target_modules: list[str] | str | None) -> tuple[list[Linear], list[str]]:
        """The layer linears LoRA would wrap, and notes about names that matched nothing."""
        mods = self.linears()
        notes: list[str] = []
        if target_modules == "all-linear":
            return [m for m in mods if m.name != "router"], notes
        if target_modules is None:
            if self.model_type in PEFT_DEFAULT_TARGETS:
                names = PEFT_DEFAULT_TARGETS[self.model_type]
            else:
                names = ("q_proj", "v_proj")
                if self.model_type not in PEFT_Q_V_FAMILIES:
                    notes.append(f"PEFT has no default LoRA targets for '{self.model_type}'; set lora.target_modules"
                                 " (assumed q_proj, v_proj).")
        else:
            names = tuple(target_modules)
        wanted = {_MODULE_ALIASES.get(n, n) for n in names}
        chosen = [m for m in mods if m.name in wanted]
        missing = sorted(wanted - {m.name for m in mods})
        if missing:
            notes.append(f"LoRA target(s) {', '.join(missing)} match no module of this {self.model_type} model.")
        return chosen, notes

    def lora_params(self, target_modules: list[str] | str | None, r: int) -> int:
        chosen, _ = self.lora_targets(target_modules)
        return self.layers * sum(m.count * r * (m.fan_in + m.fan_out) for m in chosen)


# -- from a config dict ---------------------------------------------------------------------------------------
def _get(cfg: dict[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if cfg.get(n) is not None:
            return cfg[n]
    return default


def arch_from_config(cfg: dict[str, Any]) -> ModelArch:
    """Read the fields that size a decoder from a config dict (AutoConfig.to_dict(), config.json or the table)."""
    if "text_config" in cfg and isinstance(cfg["text_config"], dict) and "hidden_size" not in cfg:
        inner = dict(cfg["text_config"])
        inner.setdefault("tie_word_embeddings", cfg.get("tie_word_embeddings"))
        cfg = {**inner, "torch_dtype": cfg.get("torch_dtype") or cfg.get("dtype")}
    t = str(cfg.get("model_type") or "llama")
    hidden = int(_get(cfg, "hidden_size", "n_embd", "d_model", "dim"))
    layers = int(_get(cfg, "num_hidden_layers", "n_layer", "num_layers", "n_layers"))
    heads = int(_get(cfg, "num_attention_heads", "n_head", "num_heads", "n_heads"))
    kv = int(_get(cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv", default=0) or 0)
    if not kv:
        multi_query = cfg.get("multi_query") and not cfg.get("new_decoder_architecture")
        kv = 1 if multi_query else heads
    head_dim = int(_get(cfg, "head_dim", default=0) or hidden // heads)
    vocab = int(_get(cfg, "vocab_size", "n_vocab", "padded_vocab_size"))
    inter = int(_get(cfg, "intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim", default=0) or 4 * hidden)
    experts = int(_get(cfg, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", default=0) or 0)
    shared = int(_get(cfg, "shared_expert_intermediate_size", default=0) or 0)
    if not shared and cfg.get("n_shared_experts"):
        shared = int(cfg["n_shared_experts"]) * int(cfg.get("moe_intermediate_size") or inter)
    tied = cfg.get("tie_word_embeddings")
    if tied is None:
        tied = t in ("gpt2", "gemma", "gemma2", "gemma3_text", "gpt_bigcode", "bloom", "opt")
    all_bias = t in ("gpt2", "gpt_bigcode", "gpt_neox", "phi", "bloom", "starcoder2") or bool(cfg.get("use_bias"))
    attn_bias = all_bias or t == "qwen2" or bool(cfg.get("attention_bias")) or bool(cfg.get("bias"))
    q = cfg.get("quantization_config") or {}
    bits = None
    if q:
        bits = 4.0 if q.get("load_in_4bit") or q.get("bits") == 4 else 8.0 if q.get("load_in_8bit") or q.get("bits") == 8 \
            else float(q["bits"]) if q.get("bits") else None
    return ModelArch(
        model_type=t, hidden=hidden, layers=layers, vocab=vocab, intermediate=inter, heads=heads, kv_heads=kv,
        head_dim=head_dim, tied=bool(tied), gated=t not in NON_GATED, experts=experts,
        experts_per_tok=int(_get(cfg, "num_experts_per_tok", "moe_top_k", default=0) or (2 if experts else 0)),
        expert_intermediate=int(_get(cfg, "moe_intermediate_size", default=0) or 0), shared_intermediate=shared,
        positions=int(cfg.get("n_positions") or 0) if t in ("gpt2", "gpt_bigcode") else 0,
        attn_bias=attn_bias, o_bias=all_bias or bool(cfg.get("attention_bias")),
        mlp_bias=all_bias or bool(cfg.get("mlp_bias")),
        layernorm_bias=t in NON_GATED, qk_norm=t in ("qwen3", "qwen3_moe", "olmo2", "gemma3_text"),
        checkpoint_dtype=cfg.get("torch_dtype") or cfg.get("dtype"), prequantized_bits=bits,
    )


# -- well-known models, for when the Hub cannot be reached ----------------------------------------------------
def _llama(h: int, n: int, i: int, v: int, heads: int, kv: int, *, tied: bool = False, hd: int | None = None,
           t: str = "llama", dtype: str = "bfloat16", **extra: Any) -> dict[str, Any]:
    d = {"model_type": t, "hidden_size": h, "num_hidden_layers": n, "intermediate_size": i, "vocab_size": v,
         "num_attention_heads": heads, "num_key_value_heads": kv, "tie_word_embeddings": tied, "torch_dtype": dtype}
    if hd:
        d["head_dim"] = hd
    return {**d, **extra}


# Shapes copied from each model's config.json on the Hub (huggingface.co/<id>/blob/main/config.json).
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "meta-llama/llama-2-7b-hf": _llama(4096, 32, 11008, 32000, 32, 32, dtype="float16"),
    "meta-llama/llama-2-13b-hf": _llama(5120, 40, 13824, 32000, 40, 40, dtype="float16"),
    "meta-llama/llama-2-70b-hf": _llama(8192, 80, 28672, 32000, 64, 8, dtype="float16"),
    "meta-llama/meta-llama-3-8b": _llama(4096, 32, 14336, 128256, 32, 8),
    "meta-llama/llama-3.1-8b": _llama(4096, 32, 14336, 128256, 32, 8),
    "meta-llama/meta-llama-3-70b": _llama(8192, 80, 28672, 128256, 64, 8),
    "meta-llama/llama-3.1-70b": _llama(8192, 80, 28672, 128256, 64, 8),
    "meta-llama/llama-3.3-70b": _llama(8192, 80, 28672, 128256, 64, 8),
    "meta-llama/llama-3.2-1b": _llama(2048, 16, 8192, 128256, 32, 8, tied=True, hd=64),
    "meta-llama/llama-3.2-3b": _llama(3072, 28, 8192, 128256, 24, 8, tied=True, hd=128),
    "mistralai/mistral-7b-v0.1": _llama(4096, 32, 14336, 32000, 32, 8, t="mistral"),
    "mistralai/mistral-7b-v0.3": _llama(4096, 32, 14336, 32768, 32, 8, t="mistral"),
    "mistralai/mixtral-8x7b-v0.1": _llama(4096, 32, 14336, 32000, 32, 8, t="mixtral", num_local_experts=8,
                                          num_experts_per_tok=2),
    "qwen/qwen2.5-0.5b": _llama(896, 24, 4864, 151936, 14, 2, tied=True, t="qwen2"),
    "qwen/qwen2.5-1.5b": _llama(1536, 28, 8960, 151936, 12, 2, tied=True, t="qwen2"),
    "qwen/qwen2.5-3b": _llama(2048, 36, 11008, 151936, 16, 2, tied=True, t="qwen2"),
    "qwen/qwen2.5-7b": _llama(3584, 28, 18944, 152064, 28, 4, t="qwen2"),
    "qwen/qwen2.5-14b": _llama(5120, 48, 13824, 152064, 40, 8, t="qwen2"),
    "qwen/qwen2.5-32b": _llama(5120, 64, 27648, 152064, 40, 8, t="qwen2"),
    "qwen/qwen2.5-72b": _llama(8192, 80, 29568, 152064, 64, 8, t="qwen2"),
    "qwen/qwen3-0.6b": _llama(1024, 28, 3072, 151936, 16, 8, tied=True, hd=128, t="qwen3"),
    "qwen/qwen3-1.7b": _llama(2048, 28, 6144, 151936, 16, 8, tied=True, hd=128, t="qwen3"),
    "qwen/qwen3-4b": _llama(2560, 36, 9728, 151936, 32, 8, tied=True, hd=128, t="qwen3"),
    "qwen/qwen3-8b": _llama(4096, 36, 12288, 151936, 32, 8, hd=128, t="qwen3"),
    "google/gemma-2b": _llama(2048, 18, 16384, 256000, 8, 1, tied=True, hd=256, t="gemma"),
    "google/gemma-7b": _llama(3072, 28, 24576, 256000, 16, 16, tied=True, hd=256, t="gemma"),
    "google/gemma-2-2b": _llama(2304, 26, 9216, 256000, 8, 4, tied=True, hd=256, t="gemma2"),
    "google/gemma-2-9b": _llama(3584, 42, 14336, 256000, 16, 8, tied=True, hd=256, t="gemma2"),
    "microsoft/phi-2": _llama(2560, 32, 10240, 51200, 32, 32, t="phi", dtype="float16"),
    "microsoft/phi-3-mini-4k-instruct": _llama(3072, 32, 8192, 32064, 32, 32, t="phi3"),
    "tinyllama/tinyllama-1.1b-chat-v1.0": _llama(2048, 22, 5632, 32000, 32, 4, dtype="float32"),
    "huggingfacetb/smollm2-135m": _llama(576, 30, 1536, 49152, 9, 3, tied=True),
    "huggingfacetb/smollm2-360m": _llama(960, 32, 2560, 49152, 15, 5, tied=True),
    "huggingfacetb/smollm2-1.7b": _llama(2048, 24, 8192, 49152, 32, 32, tied=True),
    "openai-community/gpt2": {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257,
                              "n_positions": 1024, "torch_dtype": "float32"},
}
_SUFFIXES = ("-instruct", "-chat-hf", "-chat", "-it", "-base")


def known_config(name: str) -> dict[str, Any] | None:
    """The table entry for a Hub id, tolerating instruct/chat variants and a missing organisation."""
    key = name.strip().lower().rstrip("/")
    candidates = [key]
    for suf in _SUFFIXES:
        if suf in key:
            candidates.append(key.replace(suf, "", 1))
            candidates.append(key.replace(suf, "-hf", 1))
    for c in candidates:
        if c in KNOWN_MODELS:
            return KNOWN_MODELS[c]
    base = {k.split("/", 1)[1]: v for k, v in KNOWN_MODELS.items()}
    for c in candidates:
        if c.split("/")[-1] in base:
            return base[c.split("/")[-1]]
    return None


# -- loading ----------------------------------------------------------------------------------------------------
@dataclass
class ArchLookup:
    arch: ModelArch | None
    source: str  # "local config" | "Hub" | "Hub cache" | "offline table" | "unknown"
    note: str | None = None
    notes: list[str] = field(default_factory=list)


_HUB_PROBE: dict[str, tuple[float, bool]] = {}


def hub_reachable(timeout_s: float = 2.0) -> bool:
    """One TCP connect to the Hub, remembered for two minutes: huggingface_hub retries for ~20 s when offline."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    cached = _HUB_PROBE.get(endpoint)
    if cached and time.monotonic() - cached[0] < 120:
        return cached[1]
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            ok = True
    except OSError:
        ok = False
    _HUB_PROBE[endpoint] = (time.monotonic(), ok)
    return ok


def _is_local(name: str) -> bool:
    return (Path(name).expanduser() / "config.json").is_file()


def _hub_cache_dir() -> Path:
    # The same precedence as huggingface_hub.constants, read here so an estimate never imports the SDK.
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _cached_config_file(name: str, revision: str | None) -> str | None:
    """config.json from the local Hub cache (models--org--name/snapshots/<commit>/), found without importing
    huggingface_hub or transformers, so sizing a cached model costs a file read."""
    if name.count("/") != 1 or any(part in ("", ".", "..") for part in name.split("/")):
        return None
    repo = _hub_cache_dir() / ("models--" + name.replace("/", "--"))
    ref = revision or "main"
    commit = ref
    ref_file = repo / "refs" / ref
    if ref_file.is_file():
        commit = ref_file.read_text(encoding="utf-8").strip()
    found = repo / "snapshots" / commit / "config.json"
    return str(found) if found.is_file() else None


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _autoconfig_dict(name: str, **kw: Any) -> dict[str, Any]:
    from transformers import AutoConfig  # lazy: imports torch

    return AutoConfig.from_pretrained(name, **kw).to_dict()


def load_arch(name: str, *, revision: str | None = None, trust_remote_code: bool = False) -> ArchLookup:
    """The model's shape from its config, trying the local folder, the Hub cache, the Hub, then the table."""
    mtime = (Path(name).expanduser() / "config.json").stat().st_mtime if _is_local(name) else None
    return _load_arch_cached(name, revision, trust_remote_code, mtime)


@lru_cache(maxsize=64)
def _load_arch_cached(name: str, revision: str | None, trust_remote_code: bool, _mtime: float | None) -> ArchLookup:
    kw: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
    # A config on disk is read as written: arch_from_config fills the defaults AutoConfig would, and the
    # training screen stays free of transformers (and torch) until a model is really loaded.
    if _is_local(name):
        return ArchLookup(arch_from_config(_read_json(Path(name).expanduser() / "config.json")), "local config")
    cached = _cached_config_file(name, revision)
    if cached is not None:
        return ArchLookup(arch_from_config(_read_json(Path(cached))), "Hub cache")
    problem = "the Hub is unreachable"
    if hub_reachable():
        try:
            token = os.environ.get("HF_TOKEN") or None
            return ArchLookup(arch_from_config(_autoconfig_dict(name, token=token, **kw)), "Hub")
        except Exception as exc:  # noqa: BLE001 - gated, missing or malformed: say which, then fall back
            text = str(exc)
            if "gated" in text.lower() or "401" in text or "403" in text:
                problem = "the model is gated on the Hub (set an HF token with access)"
            elif "404" in text or "not a valid model identifier" in text or "does not appear" in text:
                problem = f"'{name}' was not found on the Hub"
            else:
                problem = f"its config could not be read ({type(exc).__name__})"
    table = known_config(name)
    if table is not None:
        return ArchLookup(arch_from_config(table), "offline table",
                          note=f"Sized from the console's table of well-known models because {problem}.")
    return ArchLookup(None, "unknown", note=f"Cannot size '{name}': {problem} and it is not in the offline table.")

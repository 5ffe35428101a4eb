"""Know before you pay: will the model fit, how long will it train, what will it cost (issue 9).

``estimate_for_config(cfg, store=..., provider=..., gpu=...)`` returns an :class:`Estimate` (pydantic, JSON-able)
used by ``python -m core estimate``, the training and deploy screens, and ``JobService.create`` (which stores it on
the job so the launch can compare the quoted price with the provider's, and the finished job its actual time and
cost with the estimate: :func:`record_outcome`).

Memory (per GPU, GiB; the catalog's "80 GB" cards hold 80 GiB) follows what this console's trainer does:
- Weights in the dtype ``trainer.modeling.torch_dtype`` picks. 4-bit NF4 costs 4.127 bits per quantized weight with
  double quantization and 4.5 without (QLoRA, Dettmers et al. 2023, §3: 0.5 bit of fp32 absmax per 64-weight block,
  0.127 once the constants are themselves quantized); 8-bit costs 8. Only the decoder's linear layers are quantized,
  and ``peft.prepare_model_for_kbit_training`` casts every other parameter (embeddings, head, norms) to fp32.
- Trainable parameters: LoRA adapters are fp32 (PEFT's ``autocast_adapter_dtype``), so each costs 4 (weight) + 4
  (gradient) + optimizer state. Full fine-tuning keeps weights, gradients and AdamW moments in the loaded dtype
  (``torch.optim.AdamW`` allocates its moments like the parameter): bf16 weights cost 2+2+4 = 8 bytes per parameter,
  fp32 weights under bf16 autocast cost 4+4+8 = 16, the 16 bytes/parameter of mixed-precision Adam in the ZeRO paper
  (Rajbhandari et al. 2019, §3.1: "16Ψ bytes", a 7.5B model needs 120 GB before activations). 8-bit optimizers keep
  2 bytes of state per parameter (bitsandbytes; HF "GPU memory usage" / model_memory_anatomy).
- Activations per token and layer, following Korthikanti et al. 2022 ("Reducing Activation Recomputation", §4) with
  the SwiGLU MLP and fused (SDPA) attention of current decoders: the fp32 RMSNorm inputs, the attention's q/k/v/out,
  the MLP's gate/up/act/product; LoRA dropout keeps a copy of each adapted module's input. Gradient checkpointing
  keeps one layer input per layer and recomputes one layer at a time. The loss adds ~12 bytes per vocabulary entry
  per token (bf16 logits, their fp32 copy, fp32 log-softmax, fp32 gradient).
- Framework overhead: CUDA context and cuBLAS workspaces (~0.75 GiB) plus 10% for the caching allocator's
  fragmentation. ``allocated_gb`` is what ``torch.cuda.max_memory_allocated`` would report; ``total_gb`` adds the
  overhead and is what must fit.

Time: model FLOPs per token are 6N for full fine-tuning and 4N for LoRA (no weight gradients for the frozen base),
plus attention 12·L·d·s (PaLM, Chowdhery et al. 2022, appendix B); gradient checkpointing adds one forward (2N), a
DPO/KTO reference model one forward more. Tokens/s = utilisation × the GPU's dense bf16 peak / FLOPs per token. The
utilisation table is below (``_utilisation``); measured throughput of past jobs replaces it as soon as one exists.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field

from core import gpus as G
from core.config import TrainingConfig
from core.dataset_tokens import TokenStats, token_stats
from core.model_arch import ArchLookup, ModelArch, load_arch

log = logging.getLogger("finetune_console.estimate")

GIB = 2**30
FIT_MARGIN = 0.90  # above 90% of the card the run may still OOM on a long batch: "tight"
CUDA_CONTEXT_GIB = 0.75
FRAGMENTATION = 0.10
LOGIT_BYTES_PER_VOCAB = 12
TABLE_SPREAD = (0.6, 1.4)  # tokens/s range around the table's value
MEASURED_SPREAD = (0.85, 1.15)  # around the median of past runs of the same config on the same GPU
SCALED_SPREAD = (0.7, 1.3)  # past runs on the same GPU, other models: utilisation carried over
DDP_EFFICIENCY = 0.9  # gradient all-reduce on one machine (NVLink/PCIe)
STEP_OVERHEAD_S = {True: 0.1, False: 1.0}  # per optimizer step on a GPU / on the CPU, outside the matmuls


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(_Out):
    low: float
    mid: float
    high: float

    @classmethod
    def around(cls, mid: float, spread: tuple[float, float], digits: int = 4) -> "Range":
        return cls(low=round(mid * spread[0], digits), mid=round(mid, digits), high=round(mid * spread[1], digits))

    def scaled(self, k: float, digits: int = 4) -> "Range":
        return Range(low=round(self.low * k, digits), mid=round(self.mid * k, digits), high=round(self.high * k, digits))

    def plus(self, other: "Range", digits: int = 4) -> "Range":
        return Range(low=round(self.low + other.low, digits), mid=round(self.mid + other.mid, digits),
                     high=round(self.high + other.high, digits))


class ModelInfo(_Out):
    name: str
    source: str
    params: int | None = None
    active_params: int | None = None
    trainable_params: int | None = None
    model_type: str | None = None
    layers: int | None = None
    hidden_size: int | None = None
    vocab_size: int | None = None
    note: str | None = None


class DatasetInfo(_Out):
    rows: int | None = None
    train_rows: int | None = None
    eval_rows: int | None = None
    tokens_per_row: float | None = None  # mean, as trained (capped at max_length)
    longest_row_tokens: float | None = None
    epochs: float
    steps: int | None = None
    train_tokens: float | None = None  # all epochs
    basis: str = "unknown"
    note: str | None = None


class MemoryInfo(_Out):
    weights_gb: float
    adapters_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    allocated_gb: float
    overhead_gb: float
    total_gb: float
    trainable_params: int
    seq_len: int
    micro_batch: int
    precision: str
    notes: list[str] = Field(default_factory=list)


class Fit(_Out):
    gpu: str
    vram_gb: float
    verdict: str  # fits | tight | no
    headroom_gb: float
    reason: str | None = None


class TimeInfo(_Out):
    gpu: str
    gpu_count: int
    tokens_per_sec: Range
    train_hours: Range
    eval_hours: float
    predictions_hours: float
    setup_hours: Range
    hours: Range  # everything billed: setup + train + eval + predictions
    flops_per_token: float  # hardware FLOPs (recompute included), reused to calibrate later estimates
    basis: str  # measured | measured-scaled | table
    source: str


class CostLine(_Out):
    provider: str
    gpu: str
    gpu_count: int = 1
    tier: str | None = None
    provider_gpu_id: str | None = None
    price_per_hour: float
    verdict: str
    hours: Range
    cost_usd: Range


class Estimate(_Out):
    config_name: str
    model: ModelInfo
    dataset: DatasetInfo
    memory: MemoryInfo | None = None
    provider: str | None = None
    gpu: str | None = None
    gpu_count: int = 1
    fit: Fit | None = None
    time: TimeInfo | None = None
    price_per_hour: float | None = None  # quoted, for all GPUs of the job
    price_source: str | None = None
    cost_usd: float | None = None  # mid estimate (the DeploymentResponse's estimated_cost)
    cost_range: Range | None = None
    budget_usd: float | None = None
    budget_verdict: str | None = None  # within | may_exceed | exceeds
    budget_hours: float | None = None  # hours the budget buys at the quoted price
    fits: list[Fit] = Field(default_factory=list)
    cheapest: list[CostLine] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    assumptions: list[str] = Field(default_factory=list)


# -- memory ---------------------------------------------------------------------------------------------------
def param_dtype(cfg: TrainingConfig, arch: ModelArch, cuda: bool) -> tuple[int, str]:
    """Bytes per weight and its dtype, as trainer.modeling.torch_dtype loads the model."""
    d = cfg.model.torch_dtype
    if d != "auto":
        return (4 if d == "float32" else 2), d
    if cfg.training.bf16:
        return 2, "bfloat16"
    if cfg.training.fp16:
        return 2, "float16"
    if not cuda:
        return 4, "float32"
    ck = str(arch.checkpoint_dtype or "float32").replace("torch.", "")
    return (2, ck) if ck in ("bfloat16", "float16") else (4, "float32")


def quant_bits(cfg: TrainingConfig, arch: ModelArch) -> float | None:
    q = cfg.quantization
    if q.mode == "4bit":
        return 4.127 if q.double_quant else 4.5
    if q.mode == "8bit":
        return 8.0
    if arch.prequantized_bits:
        return arch.prequantized_bits + (0.127 if arch.prequantized_bits <= 4 else 0.0)
    return None


def optimizer_bytes(optim: str, state_bytes: int) -> float:
    """Optimizer state per trainable parameter."""
    if optim in ("adamw_8bit", "paged_adamw_8bit"):
        return 2.0
    if optim == "paged_adamw_32bit":
        return 8.0  # bitsandbytes keeps 32-bit states in fp32 whatever the parameter dtype
    if optim == "adafactor":
        return 0.05 * state_bytes  # factored second moment: rows + columns per matrix, no first moment in HF's setup
    if optim == "sgd":
        return 0.0  # the Trainer's SGD has no momentum buffer
    return 2.0 * state_bytes


def _activation_bytes_per_token(arch: ModelArch, act_bytes: int, gc: bool, lora_mods: Iterable, dropout: float) -> float:
    h, q_out = arch.hidden, arch.heads * arch.head_dim
    if arch.experts:
        inter = (arch.expert_intermediate or arch.intermediate) * arch.experts_per_tok + arch.shared_intermediate
    else:
        inter = arch.intermediate
    attn = act_bytes * (h + 4 * q_out) + 4 * h  # norm output, q, k, v (repeated to all heads), attention output
    mlp = act_bytes * (h + (4 if arch.gated else 2) * inter) + 4 * h  # the 4h terms: fp32 norm inputs
    extra = 0.0
    if dropout > 0:
        for m in lora_mods:
            n = arch.experts_per_tok if m.expert else m.count
            extra += (act_bytes + 1) * m.fan_in * n  # dropped copy of the input and its mask
    layer = attn + mlp + extra
    body = arch.layers * act_bytes * h + 2 * layer if gc else arch.layers * layer
    return body + LOGIT_BYTES_PER_VOCAB * arch.vocab


def memory_estimate(arch: ModelArch, cfg: TrainingConfig, *, seq_len: int, cuda: bool = True) -> MemoryInfo:
    t, lora = cfg.training, cfg.lora
    notes: list[str] = []
    pbytes, pdtype = param_dtype(cfg, arch, cuda)
    bits = quant_bits(cfg, arch) if cuda or arch.prequantized_bits else None
    if bits:
        linear = arch.layer_linear_params
        weights = linear * bits / 8 + (arch.params - linear) * 4
        precision = f"{cfg.quantization.mode if cfg.quantization.mode != 'none' else f'{bits:g}-bit'} base" \
                    f" ({cfg.quantization.quant_type}), fp32 embeddings/head/norms"
        act_bytes = 4 if cfg.quantization.compute_dtype == "float32" and not (t.bf16 or t.fp16) else 2
    else:
        weights = arch.params * pbytes
        autocast = t.bf16 or t.fp16
        act_bytes = 2 if pbytes == 2 or autocast else 4
        precision = pdtype + (" weights, bf16 autocast" if pbytes == 4 and t.bf16 else
                              " weights, fp16 autocast" if pbytes == 4 and t.fp16 else "")
    lora_mods: list = []
    if lora.enabled:
        lora_mods, lora_notes = arch.lora_targets(lora.target_modules)
        notes += lora_notes
        trainable = arch.lora_params(lora.target_modules, lora.r)
        adapters, grads, state = trainable * 4.0, trainable * 4.0, 4
    else:
        trainable = arch.params
        adapters, grads, state = 0.0, float(trainable * pbytes), pbytes
    optimizer = trainable * optimizer_bytes(t.optim, state)
    if not lora.enabled and pbytes == 2 and not bits and optimizer_bytes(t.optim, state) == 2 * state:
        notes.append("Full fine-tuning with 16-bit weights keeps AdamW's moments in 16 bits too and has no fp32 "
                     "master copy: half the memory of mixed precision, less precise updates. Load the model in "
                     "float32 with bf16 on for mixed precision (16 bytes per parameter).")
    if t.method in ("dpo", "kto") and not lora.enabled:
        weights += arch.params * pbytes
        notes.append("Full fine-tuning with DPO/KTO keeps a frozen reference copy of the model.")
    rows_per_step = 2 if t.method in ("dpo", "orpo", "kto") else 1  # chosen + rejected (or the KL pair)
    tokens = t.batch_size * seq_len * rows_per_step
    act = tokens * _activation_bytes_per_token(arch, act_bytes, t.gradient_checkpointing, lora_mods, lora.dropout)
    allocated = (weights + adapters + grads + optimizer + act) / GIB
    overhead = (CUDA_CONTEXT_GIB if cuda else 0.5) + FRAGMENTATION * allocated
    if not t.gradient_checkpointing and act / GIB > 0.3 * allocated:
        notes.append("Activations are a large share: gradient checkpointing would cut them to about "
                     f"{tokens * _activation_bytes_per_token(arch, act_bytes, True, lora_mods, lora.dropout) / GIB:.1f} GB.")

    def gb(x: float) -> float:
        return round(x / GIB, 3)

    return MemoryInfo(
        weights_gb=gb(weights), adapters_gb=gb(adapters), gradients_gb=gb(grads), optimizer_gb=gb(optimizer),
        activations_gb=gb(act), allocated_gb=round(allocated, 3), overhead_gb=round(overhead, 3),
        total_gb=round(allocated + overhead, 3), trainable_params=int(trainable), seq_len=seq_len,
        micro_batch=t.batch_size, precision=precision, notes=notes,
    )


def fit_verdict(mem: MemoryInfo, dev: G.Device, cfg: TrainingConfig) -> Fit:
    reason = None
    headroom = round(dev.memory_gb - mem.total_gb, 2)
    if cfg.quantization.mode != "none" and not dev.cuda:
        return Fit(gpu=dev.name, vram_gb=dev.memory_gb, verdict="no", headroom_gb=headroom,
                   reason=f"{cfg.quantization.mode} quantization needs an NVIDIA GPU (bitsandbytes).")
    if cfg.training.bf16 and not dev.bf16 and dev.cuda:
        return Fit(gpu=dev.name, vram_gb=dev.memory_gb, verdict="no", headroom_gb=headroom,
                   reason=f"The {dev.name} has no bf16: turn bf16 off and fp16 on for this card.")
    if mem.total_gb <= FIT_MARGIN * dev.memory_gb:
        verdict = "fits"
    elif mem.total_gb <= dev.memory_gb:
        verdict, reason = "tight", "Within 10% of the card's memory: a long batch may run out of memory."
    elif cfg.training.optim.startswith("paged_") and mem.total_gb - mem.optimizer_gb <= dev.memory_gb:
        # bitsandbytes paged optimizers live in CUDA unified memory and move to CPU RAM under pressure: this is
        # how the QLoRA paper fits 65B on one 48 GB card ("paged optimizers provide enough memory", Fig. 6).
        verdict = "tight"
        reason = "Fits only while the paged optimizer moves part of its state to CPU RAM (slower steps)."
    else:
        verdict = "no"
        reason = f"Needs about {mem.total_gb:.1f} GB of the {dev.memory_gb:g} GB."
        if not cfg.lora.enabled:
            reason += " Full fine-tuning at this size needs sharding (FSDP/DeepSpeed), which this trainer does not do;" \
                      " use LoRA or QLoRA."
        elif cfg.quantization.mode == "none":
            reason += " Try QLoRA (4-bit), gradient checkpointing or a smaller batch."
        elif not cfg.training.gradient_checkpointing:
            reason += " Turn on gradient checkpointing or lower the batch size / max_length."
    return Fit(gpu=dev.name, vram_gb=dev.memory_gb, verdict=verdict, headroom_gb=headroom, reason=reason)


# -- time -----------------------------------------------------------------------------------------------------
def flops_per_token(arch: ModelArch, cfg: TrainingConfig, seq_len: float) -> tuple[float, float]:
    """(model FLOPs, hardware FLOPs) per trained token; hardware adds recompute and reference forwards."""
    n = arch.compute_params
    attn_fwd = 4 * arch.layers * arch.heads * arch.head_dim * seq_len  # QK^T and AV, 2 FLOPs per MAC
    fwd = 2 * n + attn_fwd
    model = (3 if not cfg.lora.enabled else 2) * 2 * n + 3 * attn_fwd  # 6N (full) or 4N (LoRA) + 12·L·d·s
    hw = model
    if cfg.training.gradient_checkpointing:
        hw += fwd
    if cfg.training.method in ("dpo", "kto"):
        hw += fwd  # the reference model's forward (adapters disabled, or the frozen copy)
    return model, hw


def _utilisation(arch: ModelArch, cfg: TrainingConfig, dev: G.Device, tokens_per_microbatch: float) -> float:
    """Share of the device's dense peak a TRL/PEFT run sustains (hardware FLOPs, recompute included).

    Anchors: MosaicML's LLM Foundry, a tuned FSDP stack, sustains 40-57% HFU for 1B-70B models on H100 at 2k-8k
    tokens per sequence (mosaicml/llm-foundry scripts/train/benchmarking/README.md). A plain Hugging Face
    Trainer + PEFT run reaches roughly half to two-thirds of that: Unsloth documents ~2x over HF + FlashAttention-2
    on the same cards (unsloth.ai benchmarks). Hence 0.35 for a >=4B model on a data-centre card, less for small
    models (short matmuls, launch overhead, a vocabulary-sized head), 4-bit (every matmul dequantizes its weights),
    8-bit (LLM.int8 matmuls are slower still), consumer cards (boost clocks not sustained) and small micro-batches.
    """
    u = 0.35
    b = arch.active_params / 1e9
    u *= 0.25 if b < 0.2 else 0.45 if b < 0.6 else 0.65 if b < 1.5 else 0.85 if b < 4 else 1.0
    mode = cfg.quantization.mode
    u *= 0.6 if mode == "4bit" else 0.4 if mode == "8bit" else 1.0
    if dev.consumer:
        u *= 0.85
    if not dev.bf16 and dev.cuda:
        u *= 0.5  # T4 (70 W) and P100 (no tensor cores) sustain well under their fp16 peaks
    if tokens_per_microbatch < 512:
        u *= 0.5
    elif tokens_per_microbatch < 2048:
        u *= 0.75
    if not dev.cuda:
        u = 0.3  # of cpu_device()'s sustained figure; replaced by measurement after the first local run
    return u


def _peak_flops(dev: G.Device, cfg: TrainingConfig, arch: ModelArch) -> float:
    peak = dev.tflops * 1e12
    pbytes, _ = param_dtype(cfg, arch, dev.cuda)
    fp32_math = dev.cuda and pbytes == 4 and not (cfg.training.bf16 or cfg.training.fp16) \
        and cfg.quantization.mode == "none"
    return peak / 8 if fp32_math else peak  # plain fp32 matmuls run on CUDA cores, roughly 1/8-1/16 of tensor peak


@dataclass
class PastRun:
    job_id: str
    device: str
    gpu_count: int
    model_name: str | None
    method: str | None
    quant: str
    lora: bool
    tokens_per_sec: float
    flops_per_token: float | None


SETUP_MINUTES = {  # provider start + image pull / boot, then installing the trainer's packages
    "local": (0.2, 1.0), "runpod": (4.0, 12.0), "lambda": (5.0, 15.0), "huggingface": (3.0, 10.0),
    "kaggle": (2.0, 7.0), "skypilot": (6.0, 20.0),
}
DOWNLOAD_MB_S = (200.0, 50.0)  # Hub download speed on a cloud machine: fast and slow case


def _setup_hours(provider: str | None, arch: ModelArch) -> Range:
    prov = G.provider_key(provider) or ""
    lo, hi = SETUP_MINUTES.get(prov, (4.0, 15.0))
    ckpt_bytes = 4 if str(arch.checkpoint_dtype or "").endswith("float32") else 2
    ckpt_mb = arch.params * ckpt_bytes / 1e6
    fast, slow = (2000.0, 500.0) if prov == "local" else DOWNLOAD_MB_S  # local: read from disk, else download
    low = (lo + ckpt_mb / fast / 60) / 60
    high = (hi + ckpt_mb / slow / 60) / 60
    return Range(low=round(low, 4), mid=round((low + high) / 2, 4), high=round(high, 4))


# -- past runs ------------------------------------------------------------------------------------------------
def _device_key(name: str | None) -> str | None:
    if not name:
        return None
    gpu = G.find_gpu(name)
    return gpu.name if gpu else name


def past_runs(store: Any, limit: int = 100) -> list[PastRun]:
    """Finished jobs with a measured throughput: from their recorded outcome, else from their metric rows."""
    from core import lifecycle as L

    runs: list[PastRun] = []
    try:
        jobs = store.list_jobs(statuses=sorted(L.TERMINAL), limit=limit)
    except Exception:  # noqa: BLE001 - a store without jobs (or down) just means no measurements
        return runs
    for job in jobs:
        est = job.estimate or {}
        if "outcome" in est:  # measured once when the job ended
            tps = est["outcome"].get("tokens_per_sec")
        else:
            tps = _median_throughput(store, job.id, est)
        if not tps or not job.gpu_type:
            continue
        cfg = job.config or {}
        runs.append(PastRun(
            job_id=job.id, device=_device_key(job.gpu_type) or "", gpu_count=job.gpu_count or 1,
            model_name=job.model_name, method=job.method, quant=(cfg.get("quantization") or {}).get("mode", "none"),
            lora=(cfg.get("lora") or {}).get("enabled", True), tokens_per_sec=float(tps),
            flops_per_token=(est.get("time") or {}).get("flops_per_token"),
        ))
    return runs


def _median_throughput(store: Any, job_id: str, est: dict[str, Any]) -> float | None:
    try:
        rows = store.get_metrics(job_id, columns=["tokens_per_sec", "samples_per_sec"])
    except Exception:  # noqa: BLE001
        return None
    tps = [r["tokens_per_sec"] for r in rows if r.get("tokens_per_sec")]
    if tps:
        return float(statistics.median(tps))
    sps = [r["samples_per_sec"] for r in rows if r.get("samples_per_sec")]
    per_row = (est.get("dataset") or {}).get("tokens_per_row")
    if sps and per_row:
        return float(statistics.median(sps)) * float(per_row)
    return None


def _throughput(arch: ModelArch, cfg: TrainingConfig, dev: G.Device, gpu_count: int, seq_avg: float,
                hw_flops: float, runs: list[PastRun]) -> tuple[Range, str, str]:
    lora, quant = cfg.lora.enabled, cfg.quantization.mode
    same_gpu = [r for r in runs if r.device == dev.name]
    exact = [r for r in same_gpu if r.model_name == cfg.model.name and r.method == cfg.training.method
             and r.quant == quant and r.lora == lora and r.gpu_count == gpu_count]
    if exact:
        mid = statistics.median(r.tokens_per_sec for r in exact)
        ids = ", ".join(r.job_id for r in exact[:5])
        return Range.around(mid, MEASURED_SPREAD, 2), "measured", \
            f"Median throughput of {len(exact)} finished run(s) of this model and method on the {dev.name}: {ids}."
    scale = gpu_count * (DDP_EFFICIENCY if gpu_count > 1 else 1.0)
    calibrated = [r for r in same_gpu if r.flops_per_token]
    if calibrated:
        # Utilisation of the card's datasheet peak, as those runs achieved it, carried over to this config.
        utils = [r.tokens_per_sec * r.flops_per_token / (dev.tflops * 1e12 * r.gpu_count) for r in calibrated]
        util = statistics.median(utils)
        mid = util * dev.tflops * 1e12 * scale / hw_flops
        return Range.around(mid, SCALED_SPREAD, 2), "measured-scaled", (
            f"Utilisation measured on the {dev.name} by {len(calibrated)} earlier run(s) of other configs "
            f"({util:.0%} of peak), applied to this model's FLOPs per token.")
    util = _utilisation(arch, cfg, dev, cfg.training.batch_size * seq_avg)
    mid = util * _peak_flops(dev, cfg, arch) * scale / hw_flops
    return Range.around(mid, TABLE_SPREAD, 2), "table", (
        f"No finished run on the {dev.name} yet: {util:.0%} of its {dev.tflops:g} TFLOP/s peak assumed "
        "(see core/estimate.py _utilisation for the sources).")


def time_estimate(arch: ModelArch, cfg: TrainingConfig, data: DatasetInfo, dev: G.Device, *, gpu_count: int,
                  provider: str | None, runs: list[PastRun], mem_weights_gb: float) -> TimeInfo | None:
    if not data.train_tokens or not data.tokens_per_row:
        return None
    seq_avg = data.tokens_per_row
    _, hw = flops_per_token(arch, cfg, seq_avg)
    tps, basis, source = _throughput(arch, cfg, dev, gpu_count, seq_avg, hw, runs)
    train_h = Range(low=data.train_tokens / tps.high / 3600, mid=data.train_tokens / tps.mid / 3600,
                    high=data.train_tokens / tps.low / 3600)
    if basis == "table" and data.steps:
        # Each optimizer step also pays the Python loop, the optimizer update and logging; measured throughput
        # already includes this, the FLOPs table does not.
        fixed = data.steps * STEP_OVERHEAD_S[dev.cuda] / 3600
        train_h = train_h.plus(Range(low=fixed / 2, mid=fixed, high=fixed * 2), digits=6)
    # Evaluation: a forward pass (about a third of a full training step's FLOPs) over the held-out rows.
    t, p = cfg.training, cfg.predictions
    evals = 0
    if data.eval_rows:
        evals = math.ceil(data.epochs) if t.eval_steps is None else max(1, (data.steps or 0) // t.eval_steps)
    fwd_share = (2 * arch.compute_params) / hw
    eval_h = evals * (data.eval_rows or 0) * seq_avg / (tps.mid / fwd_share) / 3600 if evals else 0.0
    # Predictions: greedy decoding is memory-bound, one token per read of the weights (batch 1).
    rounds = 0
    if p.enabled:
        if p.sample_frequency == "epoch":
            rounds = math.ceil(data.epochs)
        elif p.sample_frequency == "eval":
            rounds = evals
        elif p.step_interval:
            rounds = (data.steps or 0) // p.step_interval
    decode_tps = max(0.5, 0.5 * dev.bandwidth_gbs / max(mem_weights_gb, 0.01))
    if cfg.quantization.mode != "none":
        decode_tps *= 0.3  # bitsandbytes dequantizes every weight for every generated token
    pred_h = rounds * p.sample_count * p.max_new_tokens / decode_tps / 3600
    setup = _setup_hours(provider, arch)
    extra = eval_h + pred_h
    total = train_h.plus(Range(low=extra, mid=extra, high=extra)).plus(setup)
    return TimeInfo(
        gpu=dev.name, gpu_count=gpu_count, tokens_per_sec=tps,
        train_hours=Range(low=round(train_h.low, 4), mid=round(train_h.mid, 4), high=round(train_h.high, 4)),
        eval_hours=round(eval_h, 4), predictions_hours=round(pred_h, 4), setup_hours=setup,
        hours=Range(low=round(total.low, 4), mid=round(total.mid, 4), high=round(total.high, 4)),
        flops_per_token=round(hw, 1), basis=basis, source=source,
    )


# -- dataset --------------------------------------------------------------------------------------------------
def dataset_info(cfg: TrainingConfig, store: Any | None, gpu_count: int = 1) -> DatasetInfo:
    path, rows, stats = None, None, None
    ref = cfg.data.train_path
    if ref.startswith("ds_"):
        if store is not None:
            try:
                rec = store.get_dataset(ref)
                path, rows, stats = rec.path, (rec.valid_rows or rec.row_count), rec.stats
            except Exception:  # noqa: BLE001 - reported as an unknown dataset below
                pass
    else:
        path = ref
    ts: TokenStats | None = token_stats(path, rows, stats)
    t = cfg.training
    info = DatasetInfo(epochs=t.num_epochs)
    if ts is None:
        info.note = f"Dataset '{ref}' could not be read, so time and cost cannot be estimated."
        return info
    rows = min(ts.rows, cfg.data.max_samples) if cfg.data.max_samples else ts.rows
    eval_rows = int(rows * cfg.data.eval_split)
    train_rows = rows - eval_rows
    per_row = min(ts.mean_tokens, cfg.data.max_length)
    seqs_per_step = t.batch_size * t.gradient_accumulation_steps * gpu_count
    if t.packing and t.method == "sft":
        rows_per_step = seqs_per_step * cfg.data.max_length / max(per_row, 1.0)
    else:
        rows_per_step = seqs_per_step
    steps_per_epoch = max(1, math.ceil(train_rows / rows_per_step))
    if t.max_steps:
        steps = t.max_steps
        train_tokens = steps * rows_per_step * per_row
        epochs = steps / steps_per_epoch
    else:
        steps = math.ceil(steps_per_epoch * t.num_epochs)
        train_tokens = train_rows * per_row * t.num_epochs
        epochs = t.num_epochs
    note = ts.note
    if not t.packing:
        note = ((note + " ") if note else "") + "Padding to the longest row of each batch is not counted."
    return DatasetInfo(
        rows=rows, train_rows=train_rows, eval_rows=eval_rows, tokens_per_row=round(per_row, 1),
        longest_row_tokens=round(min(ts.max_tokens, cfg.data.max_length), 1) if ts.max_tokens else None,
        epochs=round(epochs, 3), steps=steps, train_tokens=round(train_tokens), basis=ts.basis, note=note,
    )


def _memory_seq_len(cfg: TrainingConfig, data: DatasetInfo) -> int:
    """The longest sequence a micro-batch holds: max_length when packing or when row lengths are unknown."""
    if cfg.training.packing or not data.longest_row_tokens:
        return cfg.data.max_length
    longest = data.longest_row_tokens
    if cfg.training.method in ("dpo", "orpo"):
        longest /= 2  # a preference row's tokens cover two sequences (prompt+chosen, prompt+rejected)
    return int(min(cfg.data.max_length, math.ceil(longest)))


# -- devices and prices ---------------------------------------------------------------------------------------
def _local_device(cfg: TrainingConfig) -> G.Device:
    if cfg.model.device_map != "cpu":
        try:
            from core.providers.base import get_provider

            offers = get_provider("local").offers()
        except Exception:  # noqa: BLE001 - no GPU probe: fall back to the CPU
            offers = []
        for o in offers:
            if o.gpu_type != "CPU":
                gpu = G.find_gpu(o.gpu_type)
                if gpu:
                    return G.Device(gpu.name, o.vram_gb, gpu.tflops, gpu.bandwidth_gbs, gpu.arch, gpu.bf16,
                                    gpu.consumer, True, gpu)
                return G.Device(o.gpu_type, o.vram_gb, 100.0, 500.0, "unknown", True, True, True)
    return G.cpu_device()


def _price(provider: str | None, gpu: G.GPU | None, gpu_count: int) -> tuple[float | None, str | None, G.Price | None]:
    prov = G.provider_key(provider)
    if prov == "local":
        return 0.0, "your own machine", None
    if gpu is None or prov is None:
        return None, None, None
    offer = gpu.price(prov, "community") or gpu.price(prov)
    if offer is None:
        return None, None, None
    if offer.gpu_count == gpu_count or gpu_count == 1:
        usd = offer.usd_per_hour if offer.gpu_count == gpu_count else offer.usd_per_gpu_hour
    else:
        usd = offer.usd_per_gpu_hour * gpu_count
    tier = f" {offer.tier}" if offer.tier else ""
    return round(usd, 4), f"{prov}{tier} catalog price ({offer.as_of}); the live price replaces it at launch", offer


def _budget(est: Estimate, budget: float | None) -> None:
    if not budget or est.cost_range is None:
        return
    est.budget_usd = budget
    if est.price_per_hour:
        est.budget_hours = round(budget / est.price_per_hour, 3)
    if est.cost_range.high <= budget:
        est.budget_verdict = "within"
    elif est.cost_range.mid <= budget:
        est.budget_verdict = "may_exceed"
        est.warnings.append(f"The slow case (${est.cost_range.high:.2f}) passes the ${budget:.2f} budget: the job "
                            "would be stopped at the budget with its checkpoint saved.")
    else:
        est.budget_verdict = "exceeds"
        share = budget / est.cost_range.mid
        est.warnings.append(f"At ${est.cost_range.mid:.2f} expected, the ${budget:.2f} budget covers about "
                            f"{share:.0%} of the run; it would stop there with a checkpoint.")


# -- entry point ----------------------------------------------------------------------------------------------
def estimate_for_config(cfg: TrainingConfig, *, store: Any | None = None, provider: str | None = None,
                        gpu: str | None = None, gpu_count: int = 1, price_per_hour: float | None = None,
                        budget_usd: float | None = None, compare: bool = True) -> Estimate:
    """Fit, time and cost of ``cfg`` on ``provider``/``gpu`` (the cheapest fitting GPU when ``gpu`` is None),
    with a verdict for every catalog GPU and the cheapest fitting offer per provider (``compare``)."""
    provider = G.provider_key(provider)
    look: ArchLookup = load_arch(cfg.model.name, revision=cfg.model.revision,
                                 trust_remote_code=cfg.model.trust_remote_code)
    arch = look.arch
    data = dataset_info(cfg, store, gpu_count)
    est = Estimate(config_name=cfg.name, model=ModelInfo(name=cfg.model.name, source=look.source, note=look.note),
                   dataset=data, provider=provider, gpu_count=gpu_count)
    if look.note:
        est.warnings.append(look.note)
    if data.note and data.train_tokens is None:
        est.warnings.append(data.note)
    if arch is None:
        return est
    est.model = ModelInfo(
        name=cfg.model.name, source=look.source, note=look.note, params=arch.params, active_params=arch.active_params,
        model_type=arch.model_type, layers=arch.layers, hidden_size=arch.hidden, vocab_size=arch.vocab,
        trainable_params=arch.lora_params(cfg.lora.target_modules, cfg.lora.r) if cfg.lora.enabled else arch.params,
    )
    seq = _memory_seq_len(cfg, data)
    mem_gpu = memory_estimate(arch, cfg, seq_len=seq, cuda=True)
    est.memory = mem_gpu
    est.assumptions += [
        f"Memory at micro-batch {cfg.training.batch_size} x {seq} tokens"
        + (" (the longest row)" if seq < cfg.data.max_length else " (max_length)") + ".",
        "Memory figures are GiB, like the cards' nominal sizes; total = allocated + CUDA context + 10% fragmentation.",
    ]
    if data.note:
        est.assumptions.append(data.note)
    runs = past_runs(store) if store is not None else []

    # The device the job would run on: this machine unless a provider or GPU is named.
    dev: G.Device | None = None
    if provider is None and not gpu:
        provider = est.provider = "local"
    if provider == "local" and not gpu:
        dev = _local_device(cfg)
    elif gpu:
        found = G.find_gpu(gpu)
        if found is None and gpu.upper() == "CPU":
            dev = G.cpu_device()
        elif found is None:
            est.warnings.append(f"GPU '{gpu}' is not in the catalog: no fit verdict or time for it.")
        else:
            dev = G.device_for(found)
    if compare or (dev is None and provider not in (None, "local")):
        est.fits = [fit_verdict(mem_gpu, G.device_for(g), cfg) for g in G.list_gpus()]
        est.cheapest = cheapest_offers(arch, cfg, data, mem_gpu, runs, gpu_count)
    if dev is None and provider not in (None, "local"):
        best = next((c for c in est.cheapest if c.provider == provider), None)
        if best is not None:
            dev = G.device_for(G.get_gpu(best.gpu))
        elif provider in G.priced_providers():
            est.warnings.append(f"No catalog GPU of {provider} fits this config on one GPU.")
        else:
            est.warnings.append(f"The catalog has no GPU list for {provider}: pick a GPU to see its fit and time.")
    if dev is None:
        return est
    est.gpu = dev.name
    mem = mem_gpu if dev.cuda else memory_estimate(arch, cfg, seq_len=seq, cuda=False)
    est.memory = mem
    est.fit = fit_verdict(mem, dev, cfg)
    if est.fit.verdict == "no":
        est.warnings.append(f"Does not fit the {dev.name}: {est.fit.reason}")
    est.time = time_estimate(arch, cfg, data, dev, gpu_count=gpu_count, provider=provider or "local",
                             runs=runs, mem_weights_gb=mem.weights_gb)
    if price_per_hour is not None:
        est.price_per_hour, est.price_source = price_per_hour, "price given at launch"
    else:
        est.price_per_hour, est.price_source, _ = _price(provider, dev.gpu, gpu_count)
    if est.price_per_hour is None:
        est.warnings.append(f"No catalog price for the {dev.name} on {provider}: the cost is known once the provider "
                            "quotes it at launch.")
    if est.time and est.price_per_hour is not None:
        est.cost_range = est.time.hours.scaled(est.price_per_hour)
        est.cost_usd = est.cost_range.mid
    _budget(est, budget_usd if budget_usd is not None else cfg.budget.max_usd)
    if cfg.budget.max_hours and est.time and est.time.hours.mid > cfg.budget.max_hours:
        est.warnings.append(f"Expected {est.time.hours.mid:.2f} h is past the {cfg.budget.max_hours:g} h limit: "
                            "the run would stop there with a checkpoint.")
    return est


def cheapest_offers(arch: ModelArch, cfg: TrainingConfig, data: DatasetInfo, mem: MemoryInfo,
                    runs: list[PastRun], gpu_count: int = 1) -> list[CostLine]:
    """Per provider, the single-GPU catalog offer that fits and costs least for the whole run."""
    out: list[CostLine] = []
    for prov in G.priced_providers():
        best: CostLine | None = None
        for gpu, price in G.offers(prov):
            if price.gpu_count != 1 and price.usd_per_hour > 0:
                continue  # multi-GPU flavors are for multi-GPU jobs; a free one (Kaggle's T4 x2) still serves one
            dev = G.device_for(gpu)
            fit = fit_verdict(mem, dev, cfg)
            if fit.verdict == "no":
                continue
            t = time_estimate(arch, cfg, data, dev, gpu_count=1, provider=prov, runs=runs, mem_weights_gb=mem.weights_gb)
            if t is None:
                hours = Range(low=0, mid=0, high=0)
            else:
                hours = t.hours
            line = CostLine(provider=prov, gpu=gpu.name, tier=price.tier, provider_gpu_id=price.provider_gpu_id,
                            price_per_hour=price.usd_per_gpu_hour, verdict=fit.verdict, hours=hours,
                            cost_usd=hours.scaled(price.usd_per_gpu_hour))
            key = (line.verdict != "fits", line.cost_usd.mid, line.price_per_hour)
            if best is None or key < (best.verdict != "fits", best.cost_usd.mid, best.price_per_hour):
                best = line
        if best is not None:
            out.append(best)
    return sorted(out, key=lambda c: c.cost_usd.mid)


# -- after launch and after the run ---------------------------------------------------------------------------
PRICE_TOLERANCE = 0.02  # relative; smaller differences are rounding in the provider's display


def price_difference(quoted: float | None, reported: float | None) -> float | None:
    """Relative difference of the provider's price from the quote, or None when they agree (or one is unknown)."""
    if quoted is None or reported is None:
        return None
    if abs(reported - quoted) <= max(0.005, PRICE_TOLERANCE * max(quoted, reported)):
        return None
    return (reported - quoted) / quoted if quoted else math.inf


def record_outcome(store: Any, job_id: str) -> dict[str, Any] | None:
    """Store the estimate's error (estimated vs actual time and cost) on a finished job, once."""
    from core import lifecycle as L

    job = store.get_job(job_id)
    est = dict(job.estimate or {})
    if job.status not in L.TERMINAL or "outcome" in est or not job.started_at:
        return None
    end = job.completed_at or job.updated_at
    actual_h = max((end - job.started_at).total_seconds() / 3600, 0.0)
    progress = 1.0 if job.status == L.COMPLETED else max(job.progress or 0.0, 0.0)
    tps = _median_throughput(store, job_id, est)
    outcome: dict[str, Any] = {"status": job.status, "progress": round(progress, 4), "actual_hours": round(actual_h, 5),
                               "actual_cost_usd": job.total_cost_usd, "tokens_per_sec": tps}
    time = est.get("time") or {}
    run_h = time.get("train_hours")
    if run_h and progress > 0:
        # The job's started_at is its first heartbeat: compare with training + evaluation + predictions, no setup.
        extra = (time.get("eval_hours") or 0) + (time.get("predictions_hours") or 0)
        est_h = {k: (run_h[k] + extra) * progress for k in ("low", "mid", "high")}
        outcome["estimated_hours"] = {k: round(v, 5) for k, v in est_h.items()}
        if actual_h > 0:
            outcome["time_error_pct"] = round((est_h["mid"] - actual_h) / actual_h * 100, 1)
        outcome["time_within_range"] = est_h["low"] <= actual_h <= est_h["high"]
    cost = est.get("cost_range")
    if cost and job.total_cost_usd is not None and progress > 0:
        est_c = {k: cost[k] * progress for k in ("low", "mid", "high")}
        outcome["estimated_cost_usd"] = {k: round(v, 6) for k, v in est_c.items()}
        if job.total_cost_usd > 0:
            outcome["cost_error_pct"] = round((est_c["mid"] - job.total_cost_usd) / job.total_cost_usd * 100, 1)
        outcome["cost_within_range"] = est_c["low"] - 1e-9 <= job.total_cost_usd <= est_c["high"] + 1e-9
    if job.status != L.COMPLETED:
        outcome["note"] = f"The job ended {job.status} at {progress:.0%}; the estimate was scaled to that share."
    est["outcome"] = outcome
    store.update_job(job_id, estimate=est)
    return outcome

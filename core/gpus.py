"""The GPU catalog: what each card holds, how fast it computes, and what it typically costs per provider.

The estimator uses it for fit verdicts and throughput, the providers for display names and catalog prices. Live
prices read from a provider's API always win over the prices here; these are display defaults and the basis of a
quote made before any credentials exist.

Sources (read when the numbers were entered; prices drift, which is why each price carries ``as_of``):
- Compute and bandwidth are NVIDIA/AMD datasheet peaks for dense tensor math (vendors print the 2:4-sparsity figure
  first; dense is half of it). Consumer GeForce cards accumulate bf16 in fp32 at half their fp16-accumulate rate,
  so the fp32-accumulate figure is the one here (Ampere GA102 and Ada AD102 architecture whitepapers, appendix A).
  Cards without bf16 (Pascal, Volta, Turing) list their fp16 tensor (or plain fp16) peak instead.
- RunPod: runpod.io/pricing (community and secure cloud, on-demand, per GPU), as transcribed in 2025-2026.
- Lambda: lambda.ai/service/gpu-cloud on-demand list, per GPU (May 2026 figures where known, else 2025).
- Hugging Face: huggingface.co/docs/hub/spaces-gpus and /docs/hub/jobs-pricing (flavors are priced per machine).
- Kaggle: free GPU notebooks (T4 x2 or P100, 30 GPU hours a week, 12 h per session; kaggle.com/docs/notebooks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from core.errors import NotFoundError

# Provider names as the registry spells them, and the spellings people use for them.
PROVIDER_ALIASES = {
    "lambda_labs": "lambda", "lambdalabs": "lambda", "lambda-labs": "lambda",
    "hf": "huggingface", "hf_jobs": "huggingface", "hf-jobs": "huggingface", "hf_spaces": "huggingface",
    "hugging_face": "huggingface",
}


def provider_key(name: str | None) -> str | None:
    if name is None:
        return None
    n = name.strip().lower()
    return PROVIDER_ALIASES.get(n, n)


@dataclass(frozen=True)
class Price:
    provider: str
    usd_per_hour: float  # for the whole offer: an HF flavor with 4 GPUs costs this for all 4
    gpu_count: int = 1
    tier: str | None = None  # RunPod: community | secure
    provider_gpu_id: str | None = None  # RunPod gpuTypeId, Lambda instance type, HF flavor
    as_of: str = ""

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.usd_per_hour / self.gpu_count


@dataclass(frozen=True)
class GPU:
    name: str  # display name, e.g. "A100 80GB SXM"
    vram_gb: float
    tflops: float  # dense bf16 tensor peak (fp16 where the card has no bf16)
    bandwidth_gbs: float
    arch: str
    compute_capability: str | None = None  # None for non-NVIDIA devices
    bf16: bool = True
    consumer: bool = False  # GeForce/workstation cards: lower sustained clocks than the datasheet peak
    aliases: tuple[str, ...] = ()
    prices: tuple[Price, ...] = ()
    notes: str | None = None

    def price(self, provider: str, tier: str | None = None) -> Price | None:
        """The single-GPU (or smallest) offer of ``provider``; ``tier`` picks community/secure on RunPod."""
        prov = provider_key(provider)
        found = [p for p in self.prices if p.provider == prov and (tier is None or p.tier == tier)]
        if not found:
            return None
        return min(found, key=lambda p: (p.gpu_count, p.usd_per_hour))

    @property
    def supports_4bit(self) -> bool:
        # bitsandbytes 4-bit kernels are CUDA-only; ROCm builds exist but the console's trainer does not use them.
        return self.compute_capability is not None


def _rp(gpu_id: str, community: float | None, secure: float | None, as_of: str = "2026") -> tuple[Price, ...]:
    out = []
    if community is not None:
        out.append(Price("runpod", community, tier="community", provider_gpu_id=gpu_id, as_of=as_of))
    if secure is not None:
        out.append(Price("runpod", secure, tier="secure", provider_gpu_id=gpu_id, as_of=as_of))
    return tuple(out)


def _lambda(instance: str, per_gpu: float, count: int = 1, as_of: str = "2026-05") -> Price:
    return Price("lambda", round(per_gpu * count, 2), gpu_count=count, provider_gpu_id=instance, as_of=as_of)


def _hf(flavor: str, usd: float, count: int = 1) -> Price:
    return Price("huggingface", usd, gpu_count=count, provider_gpu_id=flavor, as_of="2025")


def _kaggle(accelerator: str, count: int = 1) -> Price:
    return Price("kaggle", 0.0, gpu_count=count, provider_gpu_id=accelerator, as_of="2025")


CATALOG: tuple[GPU, ...] = (
    # -- free and older cards (no bf16: fp16 figures) ---------------------------------------------------------
    GPU("T4", 16, 65, 320, "Turing", "7.5", bf16=False,
        aliases=("Tesla T4", "NVIDIA T4", "t4-small", "t4-medium", "GPU T4 x2"),
        prices=(_hf("t4-small", 0.40), _hf("t4-medium", 0.60), _kaggle("NvidiaTeslaT4", 2)),
        notes="No bf16: train in fp16. 70 W card, sustained tensor throughput well below its peak."),
    GPU("P100", 16, 18.7, 732, "Pascal", "6.0", bf16=False, aliases=("Tesla P100", "Tesla P100-PCIE-16GB"),
        prices=(_kaggle("NvidiaTeslaP100"),), notes="No tensor cores and no bf16: slow for transformers."),
    GPU("V100 16GB", 16, 125, 900, "Volta", "7.0", bf16=False, aliases=("V100", "Tesla V100-SXM2-16GB")),
    GPU("V100 32GB", 32, 125, 900, "Volta", "7.0", bf16=False, aliases=("Tesla V100-SXM2-32GB", "V100-SXM2-32GB")),
    GPU("Quadro RTX 6000", 24, 130.5, 672, "Turing", "7.5", bf16=False, consumer=True,
        aliases=("RTX 6000", "gpu_1x_rtx6000"), prices=(_lambda("gpu_1x_rtx6000", 0.58),)),
    # -- workstation and consumer Ampere / Ada ----------------------------------------------------------------
    GPU("RTX 3090", 24, 71, 936, "Ampere", "8.6", consumer=True, aliases=("GeForce RTX 3090",),
        prices=_rp("NVIDIA GeForce RTX 3090", 0.22, 0.43)),
    GPU("RTX 4090", 24, 165.2, 1008, "Ada", "8.9", consumer=True, aliases=("GeForce RTX 4090",),
        prices=_rp("NVIDIA GeForce RTX 4090", 0.34, 0.69)),
    GPU("RTX A4000", 16, 76.7, 448, "Ampere", "8.6", consumer=True, prices=_rp("NVIDIA RTX A4000", 0.17, 0.32),
        notes="16 GB (the workflow spec's '24 GB' for this card is wrong)."),
    GPU("RTX A4500", 20, 94.6, 640, "Ampere", "8.6", consumer=True, prices=_rp("NVIDIA RTX A4500", 0.19, 0.34)),
    GPU("RTX A5000", 24, 111.1, 768, "Ampere", "8.6", consumer=True, prices=_rp("NVIDIA RTX A5000", 0.16, 0.27)),
    GPU("RTX A6000", 48, 154.8, 768, "Ampere", "8.6", consumer=True, aliases=("gpu_1x_a6000",),
        prices=(*_rp("NVIDIA RTX A6000", 0.33, 0.49), _lambda("gpu_1x_a6000", 0.80, as_of="2025"))),
    GPU("RTX 6000 Ada", 48, 364.2, 960, "Ada", "8.9", consumer=True, aliases=("RTX 6000 Ada Generation",),
        prices=_rp("NVIDIA RTX 6000 Ada Generation", 0.74, 0.77)),
    # -- data-centre Ampere / Ada -----------------------------------------------------------------------------
    GPU("A10", 24, 125, 600, "Ampere", "8.6", aliases=("gpu_1x_a10",), prices=(_lambda("gpu_1x_a10", 0.86),)),
    GPU("A10G", 24, 70, 600, "Ampere", "8.6", aliases=("a10g-small", "a10g-large"),
        prices=(_hf("a10g-small", 1.00), _hf("a10g-large", 1.50), _hf("a10g-largex2", 3.00, 2),
                _hf("a10g-largex4", 5.00, 4)),
        notes="AWS's A10 variant; NVIDIA publishes no datasheet, 70 TFLOP/s is the commonly quoted bf16 peak."),
    GPU("L4", 24, 121, 300, "Ada", "8.9", aliases=("l4x1",),
        prices=(*_rp("NVIDIA L4", 0.44, 0.44), _hf("l4x1", 0.80), _hf("l4x4", 3.80, 4))),
    GPU("A40", 48, 149.7, 696, "Ampere", "8.6", prices=_rp("NVIDIA A40", 0.35, 0.40)),
    GPU("L40", 48, 181, 864, "Ada", "8.9", prices=_rp("NVIDIA L40", 0.69, 0.99)),
    GPU("L40S", 48, 362, 864, "Ada", "8.9", aliases=("l40sx1",),
        prices=(*_rp("NVIDIA L40S", 0.79, 0.86), _hf("l40sx1", 1.80), _hf("l40sx4", 8.30, 4),
                _hf("l40sx8", 23.50, 8))),
    GPU("A100 40GB", 40, 312, 1555, "Ampere", "8.0", aliases=("A100-SXM4-40GB", "A100 SXM4 40GB", "gpu_1x_a100_sxm4",
                                                              "gpu_1x_a100"),
        prices=(_lambda("gpu_1x_a100_sxm4", 1.48),)),
    GPU("A100 80GB PCIe", 80, 312, 1935, "Ampere", "8.0", aliases=("A100 80GB", "A100-PCIE-80GB", "A100 PCIe"),
        prices=_rp("NVIDIA A100 80GB PCIe", 1.19, 1.64)),
    GPU("A100 80GB SXM", 80, 312, 2039, "Ampere", "8.0",
        aliases=("A100-SXM4-80GB", "A100 SXM", "a100-large", "gpu_8x_a100_80gb_sxm4"),
        prices=(*_rp("NVIDIA A100-SXM4-80GB", 1.39, 1.89), _hf("a100-large", 2.50),
                _lambda("gpu_8x_a100_80gb_sxm4", 1.79, 8, as_of="2025"))),
    # -- Hopper, Blackwell, AMD -------------------------------------------------------------------------------
    GPU("H100 PCIe", 80, 756, 2000, "Hopper", "9.0", aliases=("H100 80GB PCIe", "gpu_1x_h100_pcie"),
        prices=(*_rp("NVIDIA H100 PCIe", 1.99, 2.39), _lambda("gpu_1x_h100_pcie", 2.86))),
    GPU("H100 SXM", 80, 989, 3350, "Hopper", "9.0",
        aliases=("H100", "H100 80GB HBM3", "H100 SXM5", "H100 80GB", "gpu_1x_h100_sxm5", "h100"),
        prices=(*_rp("NVIDIA H100 80GB HBM3", 2.69, 2.99), _lambda("gpu_1x_h100_sxm5", 3.78), _hf("h100", 4.50),
                _hf("h100x8", 36.00, 8))),
    GPU("H100 NVL", 94, 835, 3900, "Hopper", "9.0", prices=_rp("NVIDIA H100 NVL", 2.59, 2.79)),
    GPU("GH200", 96, 989, 4000, "Hopper", "9.0", aliases=("GH200 480GB", "gpu_1x_gh200"),
        prices=(_lambda("gpu_1x_gh200", 1.49, as_of="2025"),), notes="Arm (Grace) host: some wheels are missing."),
    GPU("H200", 141, 989, 4800, "Hopper", "9.0", aliases=("H200 SXM", "NVIDIA H200"),
        prices=_rp("NVIDIA H200", 3.59, 3.99)),
    GPU("B200", 180, 2250, 8000, "Blackwell", "10.0", aliases=("gpu_8x_b200_sxm6",),
        prices=(*_rp("NVIDIA B200", 5.98, 5.99), _lambda("gpu_8x_b200_sxm6", 4.99, 8, as_of="2025"))),
    GPU("MI300X", 192, 1307.4, 5300, "CDNA3", None, aliases=("AMD Instinct MI300X", "AMD Instinct MI300X OAM"),
        prices=_rp("AMD Instinct MI300X OAM", None, 2.49), notes="ROCm: no bitsandbytes 4-bit in this trainer."),
)


def _norm(name: str) -> str:
    n = name.lower()
    for word in ("nvidia", "geforce", "tesla", "amd instinct"):
        n = n.replace(word, "")
    return re.sub(r"[^a-z0-9]", "", n)


_INDEX: dict[str, GPU] = {}
for _g in CATALOG:
    for _key in (_g.name, *_g.aliases, *(p.provider_gpu_id for p in _g.prices if p.provider_gpu_id)):
        _INDEX.setdefault(_norm(_key), _g)


def find_gpu(name: str | None) -> GPU | None:
    """Look a GPU up by display name, alias, provider id or the name torch/nvidia-smi reports."""
    if not name:
        return None
    key = _norm(name)
    if key in _INDEX:
        return _INDEX[key]
    # Drivers and clouds append memory or form factor to the names above ("... 80GB HBM3", "... PCIe"): fall back
    # to the longest catalog key the reported name starts with.
    best = max((k for k in _INDEX if key.startswith(k) and len(k) >= 3), key=len, default=None)
    return _INDEX[best] if best else None


def get_gpu(name: str) -> GPU:
    gpu = find_gpu(name)
    if gpu is None:
        raise NotFoundError(f"Unknown GPU '{name}'. Known GPUs: {', '.join(g.name for g in CATALOG)}.")
    return gpu


def list_gpus(provider: str | None = None) -> list[GPU]:
    """Every catalog GPU, or those ``provider`` lists a price for, smallest memory first."""
    prov = provider_key(provider)
    gpus = [g for g in CATALOG if prov is None or any(p.provider == prov for p in g.prices)]
    return sorted(gpus, key=lambda g: (g.vram_gb, g.tflops))


def offers(provider: str) -> list[tuple[GPU, Price]]:
    """Every catalog (GPU, price) pair of ``provider``, cheapest first."""
    prov = provider_key(provider)
    out = [(g, p) for g in CATALOG for p in g.prices if p.provider == prov]
    return sorted(out, key=lambda gp: gp[1].usd_per_hour)


def priced_providers() -> list[str]:
    return sorted({p.provider for g in CATALOG for p in g.prices})


@dataclass(frozen=True)
class Device:
    """What the estimator needs of the machine a job would run on: a catalog GPU or this computer's CPU."""

    name: str
    memory_gb: float
    tflops: float
    bandwidth_gbs: float
    arch: str
    bf16: bool = True
    consumer: bool = False
    cuda: bool = True
    gpu: GPU | None = field(default=None, compare=False)


def device_for(gpu: GPU) -> Device:
    return Device(gpu.name, gpu.vram_gb, gpu.tflops, gpu.bandwidth_gbs, gpu.arch, gpu.bf16, gpu.consumer,
                  gpu.compute_capability is not None, gpu)


def cpu_device() -> Device:
    """This machine's CPU as a training device: RAM is the memory, and the peak is a rough fp32 figure.

    ~50 GFLOP/s per core is what an AVX2/AVX-512 core sustains in a large fp32 matmul (half of its 2 FMA x 8-16
    lanes x ~3 GHz peak); measured throughput of past local jobs replaces it as soon as one has run.
    """
    import os

    import psutil

    cores = os.cpu_count() or 1
    ram = psutil.virtual_memory().total / 2**30
    return Device("CPU", round(ram, 1), cores * 0.05, 20.0 * cores, "CPU", bf16=False, cuda=False)

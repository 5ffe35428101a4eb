import pytest

from core import gpus as G
from core.errors import NotFoundError


@pytest.mark.parametrize("reported,expected", [
    ("NVIDIA A100-SXM4-80GB", "A100 80GB SXM"),  # torch.cuda.get_device_name on an SXM A100
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),  # ... on an SXM H100
    ("Tesla T4", "T4"),
    ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA RTX A6000", "RTX A6000"),
    ("a10g-large", "A10G"),  # Hugging Face flavor
    ("gpu_1x_a10", "A10"),  # Lambda instance type
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe"),  # RunPod gpuTypeId
    ("AMD Instinct MI300X OAM", "MI300X"),
    ("h100", "H100 SXM"),
])
def test_lookup_by_name_alias_and_provider_id(reported, expected):
    assert G.get_gpu(reported).name == expected


def test_unknown_gpu_names_the_known_ones():
    assert G.find_gpu("Voodoo 5 6000") is None
    with pytest.raises(NotFoundError, match="Known GPUs: .*A100 40GB"):
        G.get_gpu("Voodoo 5 6000")


def test_catalog_entries_are_complete_and_prices_dated():
    names = [g.name for g in G.CATALOG]
    assert len(names) == len(set(names))
    for g in G.CATALOG:
        assert g.vram_gb > 0 and g.tflops > 0 and g.bandwidth_gbs > 0, g.name
        for p in g.prices:
            assert p.as_of and p.usd_per_hour >= 0 and p.gpu_count >= 1, (g.name, p)
    # The workflow spec's table gives the RTX A4000 24 GB; the card has 16 GB.
    assert G.get_gpu("RTX A4000").vram_gb == 16


def test_offers_per_provider_and_aliases():
    runpod = G.offers("runpod")
    assert runpod and [p.usd_per_hour for _, p in runpod] == sorted(p.usd_per_hour for _, p in runpod)
    assert {p.tier for _, p in runpod} == {"community", "secure"}
    assert G.offers("lambda_labs") == G.offers("lambda")
    kaggle = G.offers("kaggle")
    assert {g.name for g, _ in kaggle} == {"T4", "P100"} and all(p.usd_per_hour == 0 for _, p in kaggle)
    hf_l4 = G.get_gpu("L4").price("hf")
    assert hf_l4.provider_gpu_id == "l4x1" and hf_l4.gpu_count == 1
    four = [p for p in G.get_gpu("L4").prices if p.provider_gpu_id == "l4x4"][0]
    assert four.usd_per_gpu_hour == pytest.approx(four.usd_per_hour / 4)
    assert G.get_gpu("H100 SXM").price("runpod", "secure").usd_per_hour > G.get_gpu("H100 SXM").price(
        "runpod", "community").usd_per_hour
    assert all(any(p.provider == "runpod" for p in g.prices) for g in G.list_gpus("runpod"))


def test_cpu_device_uses_this_machines_memory():
    import psutil

    dev = G.cpu_device()
    assert not dev.cuda and dev.memory_gb == pytest.approx(psutil.virtual_memory().total / 2**30, rel=0.01)

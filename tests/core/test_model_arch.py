"""Parameter counts from real Hub configs (tests/core/fixtures/model_configs, README there cites each source)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import model_arch
from core.model_arch import KNOWN_MODELS, arch_from_config, load_arch

CONFIGS = Path(__file__).parent / "fixtures" / "model_configs"

# (folder, published total parameters, published active parameters or None); sources in the fixtures' README.
PUBLISHED = [
    ("llama-2-7b-hf", 6.74e9, None),
    ("mistral-7b-v0.1", 7.24e9, None),
    ("qwen2.5-0.5b", 0.49e9, None),
    ("gpt2", 124e6, None),
    ("mixtral-8x7b-v0.1", 46.7e9, 12.9e9),
    ("phi-2", 2.7e9, None),
    ("llama-65b", 65.2e9, None),
]


@pytest.fixture(autouse=True)
def _fresh_lookup_cache():
    model_arch._load_arch_cached.cache_clear()
    model_arch._HUB_PROBE.clear()
    yield
    model_arch._load_arch_cached.cache_clear()
    model_arch._HUB_PROBE.clear()


@pytest.mark.parametrize("folder,total,active", PUBLISHED)
def test_counts_from_real_configs_match_published_sizes(folder, total, active):
    look = load_arch(str(CONFIGS / folder))
    assert look.source == "local config"
    assert look.arch.params == pytest.approx(total, rel=0.03)
    if active:
        assert look.arch.active_params == pytest.approx(active, rel=0.03)


def test_qwen_non_embedding_count_matches_its_model_card():
    arch = load_arch(str(CONFIGS / "qwen2.5-0.5b")).arch
    # The card's "Number of Parameters (Non-Embedding): 0.36B"; the head is tied, so only one V x h matrix goes.
    assert arch.params - arch.embedding_params == pytest.approx(0.36e9, rel=0.03)


@pytest.mark.parametrize("folder", ["llama-2-7b-hf", "qwen2.5-0.5b", "gpt2", "mixtral-8x7b-v0.1", "phi-2"])
def test_analytic_count_equals_the_model_class_on_the_meta_device(folder):
    """The formula must agree with the real module tree (transformers' class, no memory allocated)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(CONFIGS / folder))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    exact = sum(p.numel() for p in model.parameters())  # tied weights are counted once, like the formula
    assert load_arch(str(CONFIGS / folder)).arch.params == pytest.approx(exact, rel=0.001)


def test_lora_parameter_count_matches_peft():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(CONFIGS / "qwen2.5-0.5b"))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    peft_model = get_peft_model(model, LoraConfig(r=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert load_arch(str(CONFIGS / "qwen2.5-0.5b")).arch.lora_params("all-linear", 16) == trainable


def test_default_lora_targets_follow_peft():
    arch = load_arch(str(CONFIGS / "llama-2-7b-hf")).arch
    chosen, notes = arch.lora_targets(None)
    assert [m.name for m in chosen] == ["q_proj", "v_proj"] and notes == []
    # r x (in + out) per module, two modules, 32 layers.
    assert arch.lora_params(None, 8) == 32 * 2 * 8 * (4096 + 4096)
    _, notes = arch.lora_targets(["q_proj", "wq"])
    assert any("wq" in n for n in notes)


def test_every_offline_table_entry_sizes_a_model():
    for name, cfg in KNOWN_MODELS.items():
        arch = arch_from_config(cfg)
        assert arch.params > 1e8, name
        assert arch.compute_params <= arch.params


def test_offline_table_stands_in_when_the_hub_is_unreachable(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(model_arch, "_cached_config_file", lambda name, revision: None)
    look = load_arch("Qwen/Qwen2.5-0.5B-Instruct")
    assert look.source == "offline table"
    assert "unreachable" in look.note
    assert look.arch.params == arch_from_config(KNOWN_MODELS["qwen/qwen2.5-0.5b"]).params

    unknown = load_arch("someone/not-a-known-model")
    assert unknown.arch is None and unknown.source == "unknown"
    assert "not in the offline table" in unknown.note


def test_a_config_transformers_does_not_know_is_read_as_written(tmp_path):

    folder = tmp_path / "new-arch"
    folder.mkdir()
    cfg = dict(KNOWN_MODELS["meta-llama/llama-2-7b-hf"], model_type="brand_new_arch_xyz")
    import json

    (folder / "config.json").write_text(json.dumps(cfg))
    look = load_arch(str(folder))
    assert look.source == "local config"
    assert look.arch.params == pytest.approx(6.74e9, rel=0.01)


def test_a_model_in_the_hub_cache_is_sized_from_its_snapshot_without_the_sdk(tmp_path, monkeypatch):
    import json
    import sys

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--acme--llama-like"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text(json.dumps(KNOWN_MODELS["meta-llama/llama-2-7b-hf"]))
    monkeypatch.delitem(sys.modules, "huggingface_hub", raising=False)
    look = load_arch("acme/llama-like")
    assert look.source == "Hub cache" and look.arch.params == pytest.approx(6.74e9, rel=0.01)
    assert "huggingface_hub" not in sys.modules

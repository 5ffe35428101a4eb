"""Merging the adapter into its base, and pushing adapter or merged model to the Hub (loopback fake)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.errors import AuthError, ConsoleError, ProviderError, QuotaError
from core.store.records import ModelRecord
from tests.support.fake_hub import TOKEN, FakeHub

pytestmark = pytest.mark.training


def _logits(model, tokenizer, text: str):
    import torch

    enc = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits


def test_merged_model_logits_equal_peft_logits(finished_home, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.export import load_peft_model, merge_adapter
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    result = merge_adapter(model, tmp_path / "merged")
    out = Path(result.path)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert (out / "tokenizer.json").is_file() and not (out / "adapter_config.json").exists()
    peft_model, tok = load_peft_model(model)
    merged = AutoModelForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(finished_home.base)
    merged_tok = AutoTokenizer.from_pretrained(out)
    text = merged_tok.apply_chat_template([{"role": "user", "content": "What is the capital of Peru?"}],
                                          tokenize=False, add_generation_prompt=True)
    want = _logits(peft_model, tok, text)
    got = _logits(merged, merged_tok, text)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() < 1e-4
    # The adapter really changes the model, so equality above is not base == base.
    assert (_logits(base, tok, text) - want).abs().max().item() > 1e-2


def test_merge_refuses_to_overwrite_without_being_asked(finished_home, tmp_path):
    from core.export import merge_adapter
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(ConsoleError, match="already holds a merged model"):
        merge_adapter(model, out)


def test_adapter_dir_explains_missing_artifacts(tmp_path):
    from core.export import adapter_dir

    with pytest.raises(ConsoleError, match="Hugging Face Hub"):
        adapter_dir(ModelRecord(id="m", name="m", artifact_path="hf://alice/x"))
    with pytest.raises(ConsoleError, match="must be retrieved"):
        adapter_dir(ModelRecord(id="m", name="m", artifact_path=str(tmp_path / "gone")))
    with pytest.raises(ConsoleError, match="no artifact"):
        adapter_dir(ModelRecord(id="m", name="m"))


def test_push_adapter_creates_a_private_repo_and_uploads_the_files(finished_home):
    from core import serving
    from core.store import open_store

    store = open_store()
    model = store.get_model(finished_home.model_id)
    folder = Path(model.artifact_path)
    with FakeHub() as hub:
        out = serving.push(store, model.id, "tiny-adapter", token=TOKEN, endpoint=hub.url)
        repo = hub.repos["alice/tiny-adapter"]
        assert repo["private"] is True
        sent = repo["files"]["adapter_model.safetensors"]
        assert hashlib.sha256(sent).digest() == hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).digest()
        assert {"adapter_config.json", "tokenizer.json", "README.md"} <= set(repo["files"])
        assert "training_args.bin" not in repo["files"]  # pickles are not published
        paths = [r.path for r in hub.requests]
        assert paths[0] == "/api/repos/create" and paths[-1] == "/api/models/alice/tiny-adapter/commit/main"
        # Pushing again reuses the repo (the Hub answers 409, which exist_ok accepts) and adds a commit.
        serving.push(store, model.id, "tiny-adapter", token=TOKEN, endpoint=hub.url)
        assert len(repo["commits"]) == 2
    assert out["repo_id"] == "alice/tiny-adapter" and out["commit"] == repo["commits"][0]["oid"]
    recorded = store.get_model(model.id).metadata["actions"]["push_adapter"]
    assert recorded["repo_id"] == "alice/tiny-adapter" and recorded["private"] is True


@pytest.mark.parametrize("status,error", [(401, AuthError), (403, AuthError), (429, QuotaError), (503, ProviderError)])
def test_push_maps_hub_errors(finished_home, status, error):
    from core.export import push_to_hub
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    with FakeHub() as hub:
        hub.fail_next("POST", "/api/repos/create", status, times=5)
        with pytest.raises(error) as info:
            push_to_hub(model.artifact_path, "alice/x", token=TOKEN, endpoint=hub.url)
    assert info.value.retryable == (status in (429, 503))


def test_push_needs_a_valid_token(finished_home, tmp_path, monkeypatch):
    from core import serving
    from core.export import push_to_hub
    from core.store import open_store

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("CONSOLE_SECRETS_FILE", str(tmp_path / "none.toml"))
    store = open_store()
    with pytest.raises(AuthError, match="token"):
        push_to_hub(store.get_model(finished_home.model_id).artifact_path, "alice/x", token=None)
    with FakeHub() as hub:
        with pytest.raises(AuthError, match="refused"):
            serving.push(store, finished_home.model_id, "x", token="hf_wrong", endpoint=hub.url)


def test_push_merged_needs_a_merge_then_sends_the_merged_weights(finished_home, tmp_path, monkeypatch):
    import core.export
    from core import serving
    from core.store import open_store

    monkeypatch.setattr(core.export, "merged_dir_for", lambda m: tmp_path / "merged")
    store = open_store()
    with FakeHub() as hub:
        with pytest.raises(ConsoleError, match="Merge the adapter before"):
            serving.push(store, finished_home.model_id, "tiny-merged", what="merged", token=TOKEN, endpoint=hub.url)
        serving.merge(store, finished_home.model_id)
        out = serving.push(store, finished_home.model_id, "tiny-merged", what="merged", token=TOKEN,
                           endpoint=hub.url)
        files = hub.repos["alice/tiny-merged"]["files"]
    assert files["model.safetensors"] == (tmp_path / "merged" / "model.safetensors").read_bytes()
    assert "adapter_config.json" not in files and out["what"] == "merged"
    assert b"Fine-tuned with FineTune Console" in files["README.md"] and "merge_info.json" not in files
    assert store.get_model(finished_home.model_id).metadata["actions"]["push_merged"]["repo_id"] == "alice/tiny-merged"


def test_model_card_carries_lineage_and_a_valid_base_model():
    from core.export import model_card

    rec = ModelRecord(id="m1", name="llama-ft", base_model="meta-llama/Llama-3.2-1B", dataset_size=120,
                      dataset_hash="ab" * 32, metrics={"final_loss": 0.91, "bleu": 12.5},
                      adapters={"lora": {"r": 16}}, metadata={"training_method": "dpo"})
    card = model_card(rec, merged=True)
    front = card.split("---")[1]
    assert "library_name: transformers" in front and "base_model: meta-llama/Llama-3.2-1B" in front
    assert "- dpo" in front and "| Final training loss | 0.91 |" in card and "| BLEU | 12.5 |" in card
    local = rec.model_copy(update={"base_model": "/data/models/tiny-llama"})
    assert "base_model:" not in model_card(local, merged=False).split("---")[1]


def test_the_hub_refuses_peft_card_with_a_local_base_so_the_console_sends_its_own(finished_home):
    from core import serving
    from core.export import push_to_hub
    from core.store import open_store

    store = open_store()
    model = store.get_model(finished_home.model_id)
    assert f"base_model: {finished_home.base}" in (Path(model.artifact_path) / "README.md").read_text()
    with FakeHub() as hub:
        with pytest.raises(ConsoleError, match="(?s)refused the model card.*base_model"):
            push_to_hub(model.artifact_path, "alice/raw", token=TOKEN, endpoint=hub.url)
        assert not hub.repos["alice/raw"]["commits"]  # refused before anything was committed
        serving.push(store, model.id, "alice/carded", token=TOKEN, endpoint=hub.url)
        card = hub.repos["alice/carded"]["files"]["README.md"].decode()
    assert card.startswith("---\nlibrary_name: peft\n") and "base_model:" not in card
    assert f"| Final training loss | {model.metrics['final_loss']} |" in card

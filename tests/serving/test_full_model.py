"""A fully fine-tuned model (no LoRA adapter): nothing to merge; served, pushed, imported and chatted with as it is."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core import ollama, serving, vllm
from core.errors import ConsoleError
from tests.support.fake_hub import TOKEN, FakeHub
from tests.support.fake_ollama import FakeOllama

pytestmark = pytest.mark.training


def test_full_model_is_served_pushed_and_imported_as_it_is(full_model):
    from core.export import merged_ready
    from core.store import open_store

    store = open_store()
    folder = Path(full_model.artifact_path)
    assert merged_ready(full_model) == folder
    summary = serving.serving_summary(full_model)
    assert summary["full"] == str(folder) and "unavailable" not in summary
    with pytest.raises(ConsoleError, match="nothing to merge"):
        serving.merge(store, full_model.id)

    argv = vllm.serve_command(full_model).argv
    assert argv[:3] == ["vllm", "serve", str(folder)] and "--enable-lora" not in argv
    with pytest.raises(ConsoleError, match="cannot hot-load"):
        vllm.hot_load(full_model, "http://127.0.0.1:9")

    the_plan = ollama.plan(full_model)
    assert (the_plan.route, the_plan.source) == ("merged", str(folder)) and "fully" in the_plan.reason
    assert f"\nFROM {folder}\n" in the_plan.modelfile(full_model)
    with FakeOllama() as server:
        out = serving.register_ollama(store, full_model.id, name="full", host=server.url)
        sent = server.models["full"]["files"]
    assert out["route"] == "merged" and sent["model.safetensors"] == \
        "sha256:" + hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()

    with FakeHub() as hub:
        pushed = serving.push(store, full_model.id, "full-ft", token=TOKEN, endpoint=hub.url)
        files = hub.repos["alice/full-ft"]["files"]
    assert pushed["what"] == "model" and files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert set(store.get_model(full_model.id).metadata["actions"]) == {"ollama", "push_model"}


def test_playground_puts_the_full_model_beside_its_base(full_model, finished_home):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.playground import GenerationSettings, LocalChat, build_messages

    messages = build_messages("What is the capital of Japan?", "You are a concise assistant.")
    chat = LocalChat(full_model, device="cpu")
    both = chat.compare(messages, GenerationSettings(max_new_tokens=16))
    tok = AutoTokenizer.from_pretrained(full_model.artifact_path)

    def greedy(path: str) -> str:
        lm = AutoModelForCausalLM.from_pretrained(path)
        enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = lm.generate(**enc, max_new_tokens=16, do_sample=False, eos_token_id=tok.eos_token_id,
                              pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    assert both["fine_tuned"] == greedy(full_model.artifact_path)
    assert both["base"] == greedy(finished_home.base)
    assert both["base"] != both["fine_tuned"]

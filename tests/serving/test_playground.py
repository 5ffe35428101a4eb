"""The local playground on the trained tiny model, for real: streamed tokens, base beside fine-tuned."""

from __future__ import annotations

import pytest

from core.playground import GenerationSettings, build_messages, local_chat, training_system_prompt

pytestmark = pytest.mark.training


def _greedy(model, tok, messages, n):
    import torch

    enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=n, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def test_side_by_side_answers_are_the_base_and_the_tuned_models_own(finished_home):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.store import open_store

    store = open_store()
    model = store.get_model(finished_home.model_id)
    system = training_system_prompt(store, model)
    assert system == "You are a concise assistant."
    messages = build_messages("What is the capital of Japan?", system)
    chat = local_chat(model)
    assert local_chat(model) is chat  # loaded once per process
    pieces = list(chat.stream(messages, settings=GenerationSettings(max_new_tokens=24)))
    both = chat.compare(messages, GenerationSettings(max_new_tokens=24))
    assert len(pieces) > 1 and "".join(pieces).strip() == both["fine_tuned"]

    tok = AutoTokenizer.from_pretrained(model.artifact_path)
    base = AutoModelForCausalLM.from_pretrained(finished_home.base)
    assert both["base"] == _greedy(base, tok, messages, 24)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(finished_home.base), model.artifact_path)
    assert both["fine_tuned"] == _greedy(tuned, tok, messages, 24)
    assert both["base"] != both["fine_tuned"]


def test_sampling_settings_reach_generate(finished_home):
    from core.store import open_store

    chat = local_chat(open_store().get_model(finished_home.model_id))
    kw = chat._generate_kwargs(GenerationSettings(max_new_tokens=5, temperature=0.8, top_p=0.5))
    assert kw["do_sample"] is True and kw["temperature"] == 0.8 and kw["top_p"] == 0.5
    assert chat._generate_kwargs(GenerationSettings())["do_sample"] is False

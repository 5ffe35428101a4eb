"""The same merge and playground on a CUDA GPU (skipped without one; run on the device machine)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.training]


def test_merge_and_chat_on_cuda(finished_home, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from core.export import load_peft_model, merge_adapter
    from core.playground import GenerationSettings, LocalChat, build_messages
    from core.store import open_store

    model = open_store().get_model(finished_home.model_id)
    peft_model, tok = load_peft_model(model, device="auto")
    assert next(peft_model.parameters()).is_cuda
    merged = AutoModelForCausalLM.from_pretrained(merge_adapter(model, tmp_path / "m").path).to("cuda")
    enc = tok("The capital of Peru is", return_tensors="pt").to("cuda")
    with torch.inference_mode():
        diff = (merged(**enc).logits - peft_model(**enc).logits).abs().max().item()
    assert diff < 1e-3
    chat = LocalChat(model, dtype="bfloat16")
    assert next(chat.model.parameters()).dtype == torch.bfloat16
    pieces = list(chat.stream(build_messages("What is the capital of Japan?"), settings=GenerationSettings(16)))
    assert pieces and "".join(pieces).strip()

"""Benchmark: what merging buys when serving, and what streaming buys in the playground.

    python bench/serving.py                 # the demo tiny Llama, 64 new tokens, 7 rounds
    python bench/serving.py --model /path/to/base --tokens 128 --repeat 5

An adapter with random (non-zero) LoRA weights, r 16 on every linear layer like the demo preset, is made for the
base and merged with ``core.export.merge_adapter``. Then, interleaved round by round so all three see the same
machine load, each generates the same number of tokens greedily from the same chat prompt:

- *base*: the base model alone (the baseline);
- *peft*: base + unmerged adapter, as the playground and vLLM's LoRA path run it (two extra small matmuls per layer);
- *merged*: the merged safetensors model, as Ollama or a plain server runs it.

Printed: median milliseconds per token and the ratio to the baseline. Expected: merged ~= 1.0x, peft > 1.0x.
Second table: the playground's time to the first streamed piece against the time to the whole answer (what a
person waits before seeing something, streamed vs not).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def default_model() -> str:
    for cand in (os.environ.get("FTC_TEST_DEMO_DIR"), str(Path.home() / ".finetune-console" / "demo")):
        if cand and (Path(cand) / "tiny-llama" / "model.safetensors").exists():
            return str(Path(cand) / "tiny-llama")
    sys.exit("No demo model found: run `python -m core demo` or pass --model.")


def make_adapter(base: str, out: Path, r: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", task_type="CAUSAL_LM",
                     init_lora_weights=False)
    get_peft_model(model, cfg).save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)


def ms_per_token(model, inputs, tokens: int) -> float:
    import torch

    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
    assert out.shape[1] - inputs["input_ids"].shape[1] == tokens
    return (time.perf_counter() - t0) * 1000 / tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="base model folder (default: the demo tiny Llama)")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--rank", type=int, default=16)
    args = ap.parse_args()

    from transformers import AutoModelForCausalLM

    from core.export import load_peft_model, merge_adapter
    from core.playground import GenerationSettings, LocalChat, build_messages
    from core.store.records import ModelRecord

    base_path = args.model or default_model()
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "final"
        make_adapter(base_path, adapter, args.rank)
        record = ModelRecord(id="bench", name="bench", base_model=base_path, artifact_path=str(adapter),
                             adapters={"lora": {"path": str(adapter), "r": args.rank}})
        merged_dir = merge_adapter(record, Path(tmp) / "merged").path
        peft, tok = load_peft_model(record)
        models = {"base": AutoModelForCausalLM.from_pretrained(base_path).eval(), "peft": peft,
                  "merged": AutoModelForCausalLM.from_pretrained(merged_dir).eval()}
        messages = build_messages("What is the capital of Japan?", "You are a concise assistant.")
        inputs = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        for m in models.values():  # warm-up
            ms_per_token(m, inputs, 4)
        times: dict[str, list[float]] = {k: [] for k in models}
        for _ in range(args.repeat):
            for name, m in models.items():
                times[name].append(ms_per_token(m, inputs, args.tokens))
        base_ms = statistics.median(times["base"])
        print(f"generation, {args.tokens} new tokens, median of {args.repeat} (baseline: base model)")
        print(f"{'variant':<8} {'ms/token':>9} {'ratio':>7}")
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:<8} {med:>9.2f} {med / base_ms:>6.2f}x")

        chat = LocalChat(record)
        settings = GenerationSettings(max_new_tokens=args.tokens)
        first, total = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            stream = chat.stream(messages, settings=settings)
            next(stream)
            first.append(time.perf_counter() - t0)
            for _piece in stream:
                pass
            total.append(time.perf_counter() - t0)
        f, t = statistics.median(first) * 1000, statistics.median(total) * 1000
        print(f"\nplayground (LocalChat.stream, fine-tuned side), median of {args.repeat} (baseline: whole answer)")
        print(f"{'first piece':<12} {f:>9.1f} ms {f / t:>6.2f}x")
        print(f"{'whole answer':<12} {t:>9.1f} ms {1:>6.2f}x")


if __name__ == "__main__":
    main()

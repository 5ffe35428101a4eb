"""`python -m core demo`: a tiny Llama, its tokenizer and demo datasets, built here with no download.

The task is a toy assistant that answers questions about capitals, sums, colours and word order. A short
"pre-training" on plain statements gives the base model the facts; the demo SFT set then teaches it the chat
format, and the DPO/KTO sets teach it to prefer correct answers. On 2 CPU cores the SFT demo learns in about a
minute: loss falls from ~6 to under 1 and BLEU on held-out prompts rises from ~0 to well above 50.

Heavy libraries (torch, transformers, tokenizers) are imported inside the functions that need them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

CAPITALS = {
    "France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Portugal": "Lisbon",
    "Austria": "Vienna", "Poland": "Warsaw", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Ireland": "Dublin", "Belgium": "Brussels",
    "Hungary": "Budapest", "Egypt": "Cairo", "Kenya": "Nairobi", "Japan": "Tokyo", "China": "Beijing",
    "India": "Delhi", "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana", "Canada": "Ottawa",
    "Mexico": "Mexico City", "Russia": "Moscow", "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad",
    "Thailand": "Bangkok", "Vietnam": "Hanoi", "Nepal": "Kathmandu", "Ghana": "Accra", "Senegal": "Dakar",
    "Morocco": "Rabat", "Argentina": "Buenos Aires", "Colombia": "Bogota", "Australia": "Canberra",
}
COLOURS = {
    "sky": "blue", "grass": "green", "snow": "white", "coal": "black", "banana": "yellow", "tomato": "red",
    "orange": "orange", "plum": "purple", "lemon": "yellow", "cloud": "white", "leaf": "green", "sea": "blue",
    "night": "black", "cherry": "red", "carrot": "orange", "violet": "purple", "lime": "green", "milk": "white",
}
WORDS = ["cat", "dog", "sun", "moon", "tree", "bird", "fish", "star", "rain", "wind", "book", "ship", "lamp",
         "door", "rock", "milk", "bell", "hill", "lake", "road"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<s>", "<|im_start|>", "<|im_end|>", "<unk>"]


def _qa_pairs(rng: random.Random) -> list[tuple[str, str, str]]:
    """(question, correct answer, plausible wrong answer) for every task family."""
    out: list[tuple[str, str, str]] = []
    countries = list(CAPITALS)
    for country, capital in CAPITALS.items():
        wrong = CAPITALS[rng.choice([c for c in countries if c != country])]
        for q in (f"What is the capital of {country}?", f"Name the capital city of {country}."):
            out.append((q, f"The capital of {country} is {capital}.", f"The capital of {country} is {wrong}."))
    things = list(COLOURS)
    for thing, colour in COLOURS.items():
        wrong = rng.choice(sorted({c for c in COLOURS.values() if c != colour}))  # sorted: a set's order varies per process
        out.append((f"What colour is the {thing}?", f"The {thing} is {colour}.", f"The {thing} is {wrong}."))
    for a in range(0, 10):
        for b in range(0, 10):
            if rng.random() < 0.55:
                wrong = a + b + rng.choice([-2, -1, 1, 2])
                out.append((f"Add {a} and {b}.", f"{a} plus {b} is {a + b}.", f"{a} plus {b} is {wrong}."))
    for _ in range(60):
        w = rng.sample(WORDS, 3)
        out.append((f"Reverse the words: {' '.join(w)}", " ".join(reversed(w)), " ".join(w)))
    rng.shuffle(out)
    return out


def pretraining_corpus(rng: random.Random) -> list[str]:
    """Plain statements of the facts (what a base model would have read), and the chat markup seen rarely."""
    lines = []
    for country, capital in CAPITALS.items():
        lines += [f"The capital of {country} is {capital}.", f"{capital} is the capital city of {country}."]
    for thing, colour in COLOURS.items():
        lines += [f"The {thing} is {colour}.", f"A {thing} looks {colour}."]
    for a in range(10):
        for b in range(10):
            lines.append(f"{a} plus {b} is {a + b}.")
    for _ in range(80):
        w = rng.sample(WORDS, 3)
        lines.append(f"{' '.join(w)} reversed is {' '.join(reversed(w))}")
    # Question/answer pairs in a plain layout: the base model learns to answer, the fine-tune learns the chat format.
    for q, good, _ in _qa_pairs(random.Random(rng.random())):
        lines.append(f"Question: {q} Answer: {good}")
    rng.shuffle(lines)
    return lines


def build_datasets(out_dir: Path, seed: int = 7) -> dict[str, Path]:
    """Write the demo JSONL files: chat SFT, DPO (conversational prompt), KTO, and a plain-text set."""
    rng = random.Random(seed)
    pairs = _qa_pairs(rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "sft": out_dir / "sft_chat.jsonl",
        "dpo": out_dir / "dpo_pairs.jsonl",
        "kto": out_dir / "kto_labels.jsonl",
        "text": out_dir / "pretrain_text.jsonl",
    }
    system = "You are a concise assistant."
    with files["sft"].open("w", encoding="utf-8") as f:
        for q, good, _ in pairs:
            msgs = [{"role": "system", "content": system}, {"role": "user", "content": q},
                    {"role": "assistant", "content": good}]
            f.write(json.dumps({"messages": msgs}) + "\n")
    with files["dpo"].open("w", encoding="utf-8") as f:
        for q, good, bad in pairs:
            if good != bad:
                f.write(json.dumps({"prompt": [{"role": "user", "content": q}],
                                    "chosen": [{"role": "assistant", "content": good}],
                                    "rejected": [{"role": "assistant", "content": bad}]}) + "\n")
    with files["kto"].open("w", encoding="utf-8") as f:
        for i, (q, good, bad) in enumerate(pairs):
            desirable = i % 2 == 0 or good == bad
            answer = good if desirable else bad
            f.write(json.dumps({"prompt": [{"role": "user", "content": q}],
                                "completion": [{"role": "assistant", "content": answer}],
                                "label": desirable}) + "\n")
    with files["text"].open("w", encoding="utf-8") as f:
        for line in pretraining_corpus(rng):
            f.write(json.dumps({"text": line}) + "\n")
    return files


def build_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer trained on the demo text, with a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|im_end|>", pad_token="<pad>", unk_token="<unk>",
        model_max_length=256,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def _corpus_texts(files: dict[str, Path]) -> list[str]:
    texts: list[str] = []
    for path in files.values():
        for line in path.read_text(encoding="utf-8").splitlines():
            texts.append(line)  # raw JSON lines: covers every word, role name and punctuation used
    texts += [CHAT_TEMPLATE] * 5
    return texts


def build_tiny_model(out_dir: Path, files: dict[str, Path], *, seed: int = 0, pretrain_steps: int = 1000) -> Path:
    """A 2-layer Llama, briefly pre-trained on the plain statements so LoRA has something to steer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(_corpus_texts(files), out_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=384, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    texts = [json.loads(ln)["text"] for ln in files["text"].read_text(encoding="utf-8").splitlines()]
    # A few chat-formatted exchanges: the base model has seen the markup, as real base models have, but rarely
    # enough that following it well is still the fine-tune's job.
    rng = random.Random(seed)
    for q, good, _ in rng.sample(_qa_pairs(random.Random(seed + 1)), 24):
        texts.append(tokenizer.apply_chat_template(
            [{"role": "user", "content": q}, {"role": "assistant", "content": good}], tokenize=False))
    _pretrain(model, tokenizer, texts, steps=pretrain_steps, seed=seed)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def _pretrain(model: Any, tokenizer: Any, texts: list[str], *, steps: int, seed: int, batch: int = 32) -> None:
    import torch

    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step in range(steps):
        chunk = [tokenizer.bos_token + t + tokenizer.eos_token for t in rng.sample(texts, min(batch, len(texts)))]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=64,
                        add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        for g in opt.param_groups:  # linear decay keeps the tiny model from oscillating at the end
            g["lr"] = 3e-3 * (1 - (step + 1) / steps) + 1e-4
    model.eval()


def write_demo_configs(demo_dir: Path, model_dir: Path, files: dict[str, Path]) -> dict[str, Path]:
    import yaml

    from core.config import parse_config
    from core.presets import demo_config_dict

    out = {}
    for method, key in (("sft", "sft"), ("dpo", "dpo"), ("kto", "kto"), ("orpo", "dpo")):
        cfg = parse_config(demo_config_dict(str(model_dir), str(files[key]), method))
        path = demo_dir / f"{method}.yaml"
        path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
        out[method] = path
    return out


def build_demo(demo_dir: Path, *, force: bool = False) -> dict[str, Any]:
    """Build everything (idempotent: an existing model is kept unless ``force``)."""
    demo_dir.mkdir(parents=True, exist_ok=True)
    files = build_datasets(demo_dir / "data")
    model_dir = demo_dir / "tiny-llama"
    if force or not (model_dir / "model.safetensors").exists():
        model_dir.mkdir(parents=True, exist_ok=True)
        build_tiny_model(model_dir, files)
    configs = write_demo_configs(demo_dir, model_dir, files)
    return {
        "model_path": str(model_dir),
        "datasets": {k: str(v) for k, v in files.items()},
        "configs": {k: str(v) for k, v in configs.items()},
    }


def demo_ready(demo_dir: Path) -> bool:
    return (demo_dir / "tiny-llama" / "model.safetensors").exists() and (demo_dir / "sft.yaml").exists()

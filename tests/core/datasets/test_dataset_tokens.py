"""Token statistics with the demo model's real tokenizer and chat template."""

from __future__ import annotations

import json
import shutil

import pytest

from core.datasets.validate import validate_file
from tests.support.datasets import chat, found, text, write


@pytest.fixture(scope="module")
def tok_dir(demo_assets):
    return demo_assets / "tiny-llama"


@pytest.fixture(scope="module")
def tokenizer(tok_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tok_dir))


def chat_rows(n):
    return [chat({"role": "user", "content": "word " * (i + 1)}, {"role": "assistant", "content": "ok"})
            for i in range(n)]


def lengths(tokenizer, lines):
    out = []
    for line in lines:
        rendered = tokenizer.apply_chat_template(json.loads(line)["messages"], tokenize=False)
        out.append(len(tokenizer(rendered, add_special_tokens=False)["input_ids"]))
    return out


def test_chat_token_lengths_use_the_chat_template(tmp_path, tok_dir, tokenizer):
    lines = chat_rows(40)
    want = sorted(lengths(tokenizer, lines))
    cut = want[len(want) // 2]
    rep = validate_file(write(tmp_path, lines), model=str(tok_dir), max_length=cut, eval_split=0.25)
    t = rep.stats["tokens"]
    assert (t["min"], t["max"], t["p50"]) == (want[0], want[-1], want[19])
    assert t["chat_template"] and not t["sampled"] and t["rows_measured"] == 40
    over = sum(1 for x in want if x > cut)
    assert t["truncated_rows"] == over and t["truncated_share"] == round(over / 40, 4)
    assert t["total_tokens"] == sum(min(x, cut) for x in want)
    assert t["train_tokens"] == round(t["total_tokens"] * 30 / 40)
    assert found(rep.warnings) == {(None, "", "truncated_rows")} and rep.exit_code == 0
    assert sorted(rep.token_lengths) == want


def test_token_lengths_are_sampled_above_the_sample_size(tmp_path, tok_dir):
    rep = validate_file(write(tmp_path, chat_rows(60)), model=str(tok_dir), token_sample=10)
    t = rep.stats["tokens"]
    assert t["sampled"] and t["sample_size"] == 10 and len(rep.token_lengths) == 10
    assert t["total_tokens"] > 0 and found(rep.warnings) == set()


def test_text_and_dpo_rows(tmp_path, tok_dir, tokenizer):
    rep = validate_file(write(tmp_path, [text("one two three"), text("four")]), model=str(tok_dir))
    assert rep.stats["tokens"]["max"] == len(tokenizer("one two three")["input_ids"])
    dpo = {"prompt": "Say hi", "chosen": "hi there friend", "rejected": "no"}
    rep = validate_file(write(tmp_path, [json.dumps(dpo)], "dpo.jsonl"), model=str(tok_dir))
    chosen = len(tokenizer("Say hihi there friend")["input_ids"])
    rejected = len(tokenizer("Say hino")["input_ids"])
    assert rep.stats["tokens"]["max"] == chosen and rep.stats["tokens"]["total_tokens"] == chosen + rejected


def test_no_chat_template_and_failing_template(tmp_path, tok_dir):
    bare = tmp_path / "bare"
    shutil.copytree(tok_dir, bare, ignore=shutil.ignore_patterns("*.safetensors", "chat_template.jinja"))
    cfg = json.loads((bare / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
    rows = [chat({"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}),
            chat({"role": "tool", "content": "42"}, {"role": "assistant", "content": "yo"})]
    rep = validate_file(write(tmp_path, rows), model=str(bare))
    assert found(rep.warnings) == {(None, "", "no_chat_template")} and not rep.stats["tokens"]["chat_template"]

    strict = tmp_path / "strict"
    shutil.copytree(bare, strict)
    (strict / "chat_template.jinja").write_text(
        "{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tool turns') }}{% endif %}"
        "{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}")
    rep = validate_file(write(tmp_path, rows, "s.jsonl"), model=str(strict))
    assert found(rep.warnings) == {(2, "", "chat_template_failed")}
    assert "no tool turns" in rep.warnings[0].message and rep.stats["tokens"]["rows_measured"] == 1


def test_estimate_takes_the_measured_tokens_of_both_preference_sequences(tmp_path, tok_dir, tokenizer):
    from core.dataset_tokens import token_stats

    rows = [json.dumps({"prompt": f"Say hi {i}", "chosen": "hi there friend", "rejected": "no"}) for i in range(4)]
    rep = validate_file(write(tmp_path, rows), model=str(tok_dir))
    per_row = [len(tokenizer(f"Say hi {i}hi there friend")["input_ids"]) + len(tokenizer(f"Say hi {i}no")["input_ids"])
               for i in range(4)]
    ts = token_stats(None, stats=rep.summary())
    assert ts.basis == "token stats" and ts.mean_tokens == sum(per_row) / 4 > rep.stats["tokens"]["mean"]

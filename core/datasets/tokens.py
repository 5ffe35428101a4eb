"""Token lengths of rows, measured with the chosen model's tokenizer and chat template (transformers is imported
here, lazily, and only when a model is given)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.datasets.formats import to_chat


@functools.lru_cache(maxsize=4)
def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


@dataclass
class TokenMeasure:
    lengths: list[int] = field(default_factory=list)  # per row: its longest sequence (what max_length cuts)
    sequences: list[list[int]] = field(default_factory=list)  # per row: each sequence's tokens (DPO: two)
    lines: list[int] = field(default_factory=list)
    warnings: list[tuple[int | None, str, str, str]] = field(default_factory=list)  # (line, field, rule, message)
    chat_template: bool = True


def _sequences(row: dict[str, Any], fmt: str) -> list[tuple[str, Any]]:
    """("text", str) or ("chat", messages) for each sequence the trainer builds from the row."""
    if fmt == "text":
        return [("text", row["text"])]
    if fmt in ("chat", "sharegpt", "instruction"):
        return [("chat", to_chat(row, fmt)["messages"])]  # type: ignore[index]
    answers = ("chosen", "rejected") if fmt == "dpo" else ("completion",)
    prompt = row["prompt"]
    if type(prompt) is str:
        return [("text", prompt + row[a]) for a in answers]
    return [("chat", prompt + row[a]) for a in answers]


def measure_rows(tokenizer: Any, rows: list[tuple[int, dict[str, Any]]], fmt: str) -> TokenMeasure:
    """Token counts of ``(line, row)`` pairs: chat rows through the chat template, text as is."""
    out = TokenMeasure(chat_template=bool(getattr(tokenizer, "chat_template", None)))
    texts: list[str] = []
    specials: list[bool] = []
    owners: list[int] = []  # index into rows for each text
    for i, (line, row) in enumerate(rows):
        for kind, value in _sequences(row, fmt):
            if kind == "text":
                texts.append(value)
                specials.append(True)
            else:
                if not out.chat_template and not out.warnings:
                    out.warnings.append((None, "", "no_chat_template",
                                         "The tokenizer has no chat template, so conversations were counted as "
                                         "'role: content' lines; chat rows need a model with a chat template (an "
                                         "instruct model) to train."))
                try:
                    texts.append(_render(tokenizer, value, out.chat_template))
                except Exception as exc:  # noqa: BLE001 - a template raises anything (jinja, TemplateError)
                    out.warnings.append((line, "", "chat_template_failed",
                                         f"The model's chat template rejected this row ({exc}); fix the "
                                         "conversation's roles or order for this model."))
                    continue
                specials.append(False)
            owners.append(i)
    seqs: list[list[int]] = [[] for _ in rows]
    for special in (True, False):
        idx = [k for k, s in enumerate(specials) if s is special]
        if idx:
            ids = tokenizer([texts[k] for k in idx], add_special_tokens=special)["input_ids"]
            for k, seq in zip(idx, ids):
                seqs[owners[k]].append(len(seq))
    for r, lens in enumerate(seqs):
        if lens:  # a row whose template failed has none
            out.lengths.append(max(lens))
            out.sequences.append(lens)
            out.lines.append(rows[r][0])
    return out


def _render(tokenizer: Any, messages: list[dict[str, Any]], has_template: bool) -> str:
    if has_template:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return "".join(f"{m.get('role')}: {m.get('content') or ''}\n" for m in messages)


def read_rows(path: Path, spots: list[tuple[int, int, int]]) -> list[tuple[int, dict[str, Any]]]:
    """Rows at ``(offset, length, line)`` spots of a file (the validator's sample of valid rows)."""
    import msgspec

    decode = msgspec.json.Decoder().decode
    rows = []
    with path.open("rb") as f:
        for offset, length, line in sorted(spots):
            f.seek(offset)
            rows.append((line, decode(f.read(length).strip().removeprefix(b"\xef\xbb\xbf"))))
    return rows

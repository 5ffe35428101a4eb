"""How many tokens a dataset puts through the model per epoch, for the time and cost estimate.

Measured token counts win: the validator stores them in the dataset's ``stats`` when it measured rows with the
model's tokenizer (read from ``stats["tokens"]`` or ``stats["token_lengths"]``: ``mean``, ``p95``/``p99``, ``max``,
``total``; or ``stats["total_tokens"]``). Without them the rows' text is counted in characters, streaming, and
divided by 4 (the usual English rule of thumb for BPE tokenizers; code and non-Latin scripts give more tokens per
character), and the result says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.datasets.formats import detect_row_format

CHARS_PER_TOKEN = 4.0
# Chat templates wrap each message in role markers ("<|im_start|>user\n...<|im_end|>\n"): about 5 tokens each.
TEMPLATE_TOKENS_PER_MESSAGE = 5
SCAN_ROWS = 20_000  # enough for stable means; larger files are extrapolated from these rows


@dataclass(frozen=True)
class TokenStats:
    rows: int
    mean_tokens: float  # per row, as trained (a preference row counts its prompt twice)
    max_tokens: float | None  # longest row (p99 when the stats have no max), for the memory peak
    basis: str  # "token stats" | "chars/4"
    note: str | None = None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_text(v.get("content", v.get("value", ""))) if isinstance(v, dict) else _text(v) for v in value)
    if isinstance(value, dict):
        return _text(value.get("content", ""))
    return "" if value is None else str(value)


def _messages(value: Any) -> int:
    return len(value) if isinstance(value, list) else 1


def row_tokens(row: dict[str, Any], fmt: str | None) -> float:
    """Approximate tokens one row costs in training (chars/4 plus chat-template markers)."""
    fmt = fmt or detect_row_format(row)
    if fmt == "chat":
        msgs = row.get("messages") or []
        return len(_text(msgs)) / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE * len(msgs)
    if fmt == "sharegpt":
        turns = row.get("conversations") or []
        return len(_text(turns)) / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE * len(turns)
    if fmt == "instruction":
        chars = len(_text(row.get("instruction"))) + len(_text(row.get("input"))) + len(_text(row.get("output")))
        return chars / CHARS_PER_TOKEN + 2 * TEMPLATE_TOKENS_PER_MESSAGE
    if fmt in ("prompt_completion", "kto"):
        n = _messages(row.get("prompt")) + _messages(row.get("completion"))
        return (len(_text(row.get("prompt"))) + len(_text(row.get("completion")))) / CHARS_PER_TOKEN + \
            TEMPLATE_TOKENS_PER_MESSAGE * n
    if fmt == "dpo":
        # The trainer runs prompt+chosen and prompt+rejected: the prompt is paid twice.
        prompt = len(_text(row.get("prompt")))
        both = 2 * prompt + len(_text(row.get("chosen"))) + len(_text(row.get("rejected")))
        n = 2 * (_messages(row.get("prompt")) + 1)
        return both / CHARS_PER_TOKEN + TEMPLATE_TOKENS_PER_MESSAGE * n
    return len(_text(row.get("text"))) / CHARS_PER_TOKEN


@lru_cache(maxsize=32)
def _scan(path: str, _size: int, _mtime: float) -> tuple[int, float, float]:
    """(rows read, mean tokens, max tokens) over the first SCAN_ROWS valid rows."""
    n, total, longest = 0, 0.0, 0.0
    with open(path, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            fmt = detect_row_format(row)
            if fmt is None:
                continue
            t = row_tokens(row, fmt)
            n += 1
            total += t
            longest = max(longest, t)
            if n >= SCAN_ROWS:
                break
    return n, (total / n if n else 0.0), longest


def _from_stats(stats: dict[str, Any], rows: int) -> TokenStats | None:
    tok = stats.get("tokens") or stats.get("token_lengths")
    if isinstance(tok, dict):
        # The validator's total_tokens counts every sequence a row trains (DPO: prompt+chosen and prompt+rejected)
        # cut at max_length; its mean is the longest sequence's, so the total is the better per-row cost.
        total = tok.get("total_tokens") or tok.get("total")
        mean = (total / rows if total and rows else None) or tok.get("mean")
        if mean:
            longest = tok.get("max") or tok.get("p99") or tok.get("p95")
            return TokenStats(rows, float(mean), float(longest) if longest else None, "token stats")
    total = stats.get("total_tokens") or stats.get("train_tokens")
    if total and rows:
        return TokenStats(rows, float(total) / rows, None, "token stats")
    return None


def token_stats(path: str | None, rows: int | None = None, stats: dict[str, Any] | None = None) -> TokenStats | None:
    """Tokens per row of a dataset, from the validator's stats or by counting characters in the file."""
    if stats:
        found = _from_stats(stats, rows or int(stats.get("valid_rows") or stats.get("rows") or 0))
        if found:
            return found
    if not path or not Path(path).is_file():
        return None
    st = Path(path).stat()
    n, mean, longest = _scan(str(path), st.st_size, st.st_mtime)
    if not n:
        return None
    note = f"Tokens estimated as characters / {CHARS_PER_TOKEN:g} (no tokenizer stats for this dataset yet)"
    if rows and rows > n:
        note += f"; the first {n:,} rows were counted and extrapolated to {rows:,}"
    return TokenStats(rows or n, mean, longest, "chars/4", note + ".")

"""Rows of a file shaped for display as chat bubbles (the Dataset page's preview)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.datasets.formats import SHAREGPT_ROLES
from core.datasets.reader import sniff
from core.datasets.scan import iter_rows


def bubbles(row: Any, fmt: str | None) -> list[dict[str, str]]:
    """(role, content) turns of a row, whatever its format; a preference pair shows both answers, labelled."""
    if not isinstance(row, dict):
        return [{"role": "raw", "content": str(row)}]
    if fmt == "chat" and isinstance(row.get("messages"), list):
        return [_turn(m.get("role"), m.get("content")) for m in row["messages"] if isinstance(m, dict)]
    if fmt == "sharegpt" and isinstance(row.get("conversations"), list):
        return [_turn(SHAREGPT_ROLES.get(str(t.get("from", "")).lower(), str(t.get("from"))), t.get("value"))
                for t in row["conversations"] if isinstance(t, dict)]
    if fmt == "instruction":
        prompt = str(row.get("instruction", "")) + (f"\n\n{row['input']}" if row.get("input") else "")
        return [_turn("user", prompt), _turn("assistant", row.get("output"))]
    if fmt == "text":
        return [_turn("text", row.get("text"))]
    if fmt in ("prompt_completion", "kto", "dpo"):
        out = _side(row.get("prompt"), "user")
        answers = (("chosen", "chosen"), ("rejected", "rejected")) if fmt == "dpo" else (("completion", "assistant"),)
        for key, label in answers:
            out += _side(row.get(key), label)
        if fmt == "kto":
            out.append(_turn("label", "desirable" if row.get("label") is True else "undesirable"))
        return out
    return [{"role": "raw", "content": _short(str(row))}]


def _side(value: Any, role: str) -> list[dict[str, str]]:
    if isinstance(value, list):
        return [_turn(role if role in ("chosen", "rejected") else m.get("role"), m.get("content"))
                for m in value if isinstance(m, dict)]
    return [_turn(role, value)]


def _turn(role: Any, content: Any) -> dict[str, str]:
    return {"role": str(role), "content": _short("" if content is None else str(content))}


def _short(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit:,} more characters)"


def preview_rows(path: str | Path, fmt: str | None, *, limit: int = 20, lines: set[int] | None = None,
                 only: str = "all") -> list[dict[str, Any]]:
    """Up to ``limit`` rows as ``{"line", "valid", "turns"}``; ``only`` is all, valid or invalid; ``lines``
    restricts to those line numbers."""
    p = Path(path)
    out: list[dict[str, Any]] = []
    for line, s, row, ok in iter_rows(p, fmt, sniff(p).bom):
        if lines is not None and line not in lines or only == "valid" and not ok or only == "invalid" and ok:
            continue
        turns = bubbles(row, fmt) if row is not None else [{"role": "raw", "content": _short(s.decode("utf-8", "replace"))}]
        out.append({"line": line, "valid": ok, "turns": turns})
        if len(out) >= limit:
            break
    return out

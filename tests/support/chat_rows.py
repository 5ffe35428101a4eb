"""A chat dataset whose size the chars/4 rule makes easy to check by hand."""

from __future__ import annotations

import json
from pathlib import Path


def write_chat_jsonl(path: Path, rows: int = 100, chars: int = 400) -> Path:
    """``rows`` user/assistant pairs of ``chars`` characters each: 2·chars/4 + 2 x 5 template tokens per row."""
    row = {"messages": [{"role": "user", "content": "q" * chars}, {"role": "assistant", "content": "a" * chars}]}
    path.write_text("\n".join(json.dumps(row) for _ in range(rows)) + "\n")
    return path

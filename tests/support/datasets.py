"""Small builders for dataset files in tests."""

from __future__ import annotations

import json

U = {"role": "user", "content": "What is 2+2?"}
A = {"role": "assistant", "content": "4"}


def chat(*msgs) -> str:
    return json.dumps({"messages": list(msgs)})


def text(t) -> str:
    return json.dumps({"text": t})


def write(tmp_path, lines, name="d.jsonl"):
    """Lines (str or bytes) joined with newlines, ending with one."""
    p = tmp_path / name
    p.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return p


def found(issues, rule=None):
    """The (line, field, rule) triples of a report's errors or warnings."""
    return {(i.line, i.field, i.rule) for i in issues if rule is None or i.rule == rule}

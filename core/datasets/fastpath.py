"""Typed decoding for the common case: a valid row of the file's format, checked by msgspec in C while it is
parsed (roles, types) with only what C cannot check left to Python (empty content, the last turn).

Only a shortcut: a row the typed decoder or ``accept`` refuses is decoded again as plain JSON and judged by
core/datasets/rules.py, which alone names problems; a test holds the two to the same verdicts.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import msgspec

from core.datasets.keys import key_tokens

_U = msgspec.UNSET


class _Message(msgspec.Struct, gc=False):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class _ChatRow(msgspec.Struct, gc=False):
    messages: list[_Message]
    # Keys of the formats that take precedence over chat: a row with them is not a chat row.
    prompt: Any = _U
    completion: Any = _U
    chosen: Any = _U
    rejected: Any = _U
    instruction: Any = _U
    output: Any = _U


def _accept_chat(row: _ChatRow, roles: dict[str, int], raw: bytes) -> int:
    msgs = row.messages
    if not msgs or msgs[-1].role != "assistant":
        return -1
    if row.prompt is not _U or row.completion is not _U or row.chosen is not _U or row.rejected is not _U \
            or row.instruction is not _U or row.output is not _U:
        return -1
    # A repeated key vanishes in decoding. Every quote of the line is accounted for when it has 2 + 8m of them
    # (m messages of two string-valued keys, no other key, no escaped quote): then nothing repeats. Otherwise the
    # key tokens are counted; other keys or a repeat send the row the plain way, which names the repeat.
    m = len(msgs)
    if raw.count(b'"') != 2 + 8 * m and key_tokens(raw) != 1 + 2 * m:
        return -1
    n = 0
    for m in msgs:
        c = m.content
        if not c or c.isspace():
            return -1
        n += len(c)
    for m in msgs:
        r = m.role
        roles[r] = roles.get(r, 0) + 1
    return n


# format -> (typed decoder, accept(decoded, roles, raw line) -> content chars or -1)
FAST: dict[str, tuple[Callable[[bytes], Any], Callable[[Any, dict[str, int], bytes], int]]] = {
    "chat": (msgspec.json.Decoder(_ChatRow).decode, _accept_chat),
}

# What a typed decoder raises for a row it does not take (the row then goes the plain way).
REFUSED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)

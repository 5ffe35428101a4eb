"""Typed decoding for the common case: a valid row of the file's format, checked by msgspec in C while it is
parsed (roles, types) with only what C cannot check left to Python (empty content, the last turn).

Only a shortcut: a row the typed decoder or ``accept`` refuses is decoded again as plain JSON and judged by
core/datasets/rules.py, which alone names problems; a test holds the two to the same verdicts.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import msgspec

from core.datasets.keys import key_tokens

# Exactly the keys of a chat row, nothing else: a row with any other key (another format's, an id, tool calls) is
# refused here and judged the plain way, which also keeps the decoded keys countable for the repeated-key check.
class _Message(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    role: Literal["system", "user", "assistant", "tool"]
    content: str


class _ChatRow(msgspec.Struct, gc=False, forbid_unknown_fields=True):
    messages: list[_Message]


def _accept_chat(row: _ChatRow, roles: dict[str, int], raw: bytes) -> int:
    msgs = row.messages
    m = len(msgs)
    if not m or msgs[-1].role != "assistant":
        return -1
    # A repeated key vanishes in decoding. The row has 1 + 2m keys and 2m string values, so 2 + 8m quotes when
    # nothing repeats and no quote is escaped; then nothing repeats. Otherwise the key tokens are counted, and a
    # mismatch sends the row the plain way, which names the repeat.
    if raw.count(b'"') != 2 + 8 * m and key_tokens(raw) != 1 + 2 * m:
        return -1
    n = 0
    for msg in msgs:
        c = msg.content
        if not c or c.isspace():
            return -1
        n += len(c)
    get = roles.get
    for msg in msgs:
        r = msg.role
        roles[r] = get(r, 0) + 1
    return n


# format -> (typed decoder, accept(decoded, roles, raw line) -> content chars or -1)
FAST: dict[str, tuple[Callable[[bytes], Any], Callable[[Any, dict[str, int], bytes], int]]] = {
    "chat": (msgspec.json.Decoder(_ChatRow).decode, _accept_chat),
}

# What a typed decoder raises for a row it does not take (the row then goes the plain way).
REFUSED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)

"""Objects that repeat a key: valid to a JSON parser, which silently keeps only the last value, so a row such as
``{"text": "a", "text": "b"}`` would train on half of what its author wrote (spec §9 names such a line as one the
validator must reject).

Decoders (msgspec, the standard library) drop repeats without a trace, so the scan compares the key tokens in the
raw line with the keys of the decoded row, which costs one ``bytes.count`` a row; only when they differ is the line
parsed again, pair by pair, to find the repeats.
"""

from __future__ import annotations

import json
from typing import Any

Problem = tuple[str, str, str]


def key_tokens(s: bytes) -> int:
    """About the keys written in the line as ``"name":``. An unescaped quote before a colon ends a key or opens a
    string that starts with ':'; a key written ``"name" :`` is missed. Either error only sends the line to the exact
    check, whose verdict stands."""
    return s.count(b'":') - s.count(b'\\":')


def key_count(value: Any) -> int:
    """Keys of every object in a decoded JSON value."""
    t = type(value)
    if t is dict:
        n = len(value)
        for v in value.values():
            if type(v) is dict or type(v) is list:
                n += key_count(v)
        return n
    if t is list:
        n = 0
        for v in value:
            if type(v) is dict or type(v) is list:
                n += key_count(v)
        return n
    return 0


def may_repeat_keys(s: bytes, row: Any) -> bool:
    return key_tokens(s) != key_count(row)


class _Pairs(list):
    """An object as its (key, value) pairs, repeats kept."""


def repeated_keys(s: bytes) -> list[Problem]:
    """A ``duplicate_key`` problem for each key an object of the line repeats (its JSON path as the field)."""
    try:
        tree = json.loads(s, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        return []
    out: list[Problem] = []
    stack: list[tuple[str, Any]] = [("", tree)]
    while stack:
        path, node = stack.pop()
        if type(node) is _Pairs:
            counts: dict[str, int] = {}
            for k, v in node:
                counts[k] = counts.get(k, 0) + 1
                stack.append((f"{path}.{k}" if path else k, v))
            for k, n in counts.items():
                if n > 1:
                    out.append((f"{path}.{k}" if path else k, "duplicate_key",
                                f"The key '{k}' appears {n} times in this object; JSON readers keep only the last "
                                "value and silently drop the others. Keep one."))
        elif type(node) is list:
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(node))
    return sorted(out)

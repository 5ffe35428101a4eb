"""Property tests: whatever the bytes or JSON values, the validator returns a report and never raises; and the
fast acceptance path never disagrees with the rules."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.datasets.fastpath import FAST, REFUSED
from core.datasets.keys import key_count, repeated_keys
from core.datasets.rules import ACCEPT, judge
from core.datasets.stats import row_chars
from core.datasets.validate import validate_file

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = ["text", "messages", "conversations", "instruction", "output", "input", "prompt", "completion", "chosen",
        "rejected", "label", "role", "content", "from", "value", "tool_calls", "system"]
ROLES = ["system", "user", "assistant", "tool", "human", "gpt", "User", ""]
messages = st.lists(st.fixed_dictionaries({}, optional={
    "role": st.sampled_from(ROLES) | json_values, "content": st.text(max_size=6) | json_values,
    "tool_calls": st.just([{"type": "function"}]) | json_values}), max_size=4)
# Rows shaped like the formats, often nearly right, sometimes wrong in one place.
row_like = st.dictionaries(
    st.sampled_from(KEYS),
    st.text(max_size=6) | messages | json_values | st.lists(st.fixed_dictionaries(
        {"from": st.sampled_from(ROLES), "value": st.text(max_size=5)}), max_size=3),
    max_size=5,
)


def check_report(rep) -> None:
    doc = rep.to_json()
    json.dumps(doc)  # serialisable
    assert set(doc) == {"format", "rows", "valid_rows", "errors", "warnings", "stats", "message", "fatal"}
    assert rep.exit_code in (0, 1, 2)
    assert 0 <= rep.valid_rows <= rep.rows
    for issue in rep.errors + rep.warnings:
        assert issue.line is None or issue.line >= 1
    if rep.exit_code == 2:
        assert rep.format is None and rep.message
    assert (rep.exit_code == 0) == (not rep.errors and not rep.fatal)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_report(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("bytes") / "d.jsonl"
    p.write_bytes(data)
    check_report(validate_file(p))


@SETTINGS
@given(values=st.lists(json_values | row_like, min_size=1, max_size=8), blank=st.booleans())
def test_arbitrary_json_lines_give_a_report(tmp_path_factory, values, blank):
    lines = [json.dumps(v) for v in values]
    if blank:
        lines.insert(len(lines) // 2, "")
    p = tmp_path_factory.mktemp("json") / "d.jsonl"
    p.write_text("\n".join(lines) + "\n")
    rep = validate_file(p)
    check_report(rep)
    if len(values) == 1 and isinstance(values[0], list):  # one line holding an array: a JSON array file
        assert rep.fatal == "json_array"
        return
    assert rep.fatal is None and rep.rows == len(values)
    bad = {e.line for e in rep.errors}
    assert rep.valid_rows == rep.rows - len(bad)


@SETTINGS
@given(value=json_values)
def test_arbitrary_json_document_gives_a_report(tmp_path_factory, value):
    p = tmp_path_factory.mktemp("doc") / "d.json"
    p.write_text(json.dumps(value, indent=2))
    check_report(validate_file(p))


chat_like = st.fixed_dictionaries(
    {"messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool"]),
                                                 "content": st.text(max_size=5)}), max_size=4)},
    optional={"prompt": st.text(max_size=3), "completion": st.text(max_size=3), "text": st.text(max_size=3),
              "instruction": st.text(max_size=3), "output": st.text(max_size=3)})
text_like = st.fixed_dictionaries({"text": st.text(max_size=5) | json_values},
                                  optional={"messages": messages, "id": st.integers(), "output": st.text(max_size=3)})


def fast_verdict(row: dict, fmt: str, roles: dict[str, int]) -> int:
    """What the scan's shortcut says of a row: the typed decoder first where there is one, then ACCEPT."""
    if fmt in FAST:
        decode, accept = FAST[fmt]
        try:
            raw = json.dumps(row).encode()
            return accept(decode(raw), roles, raw)
        except REFUSED:
            return -1
    return ACCEPT[fmt](row, roles)


@settings(max_examples=250, deadline=None)
@given(row=st.one_of(row_like, chat_like, text_like), fmt=st.sampled_from(sorted({*ACCEPT, *FAST})))
def test_fast_acceptance_agrees_with_the_rules(row, fmt):
    roles: dict[str, int] = {}
    n = fast_verdict(row, fmt, roles)
    row_format, problems = judge(row, fmt)
    valid = row_format == fmt and problems == []
    if n >= 0:
        assert valid
        expect: dict[str, int] = {}
        assert n == row_chars(row, fmt, expect) and roles == expect
    else:
        assert roles == {}  # nothing counted for a row left to the rules
        if valid:  # only tool-call turns (no content) and rows with other keys may leave the fast path
            assert fmt == "chat" and (any("tool_calls" in m for m in row["messages"])
                                      or key_count(row) != 1 + 2 * len(row["messages"]))


@settings(max_examples=200, deadline=None)
@given(value=json_values, ascii_=st.booleans(), compact=st.booleans())
def test_no_false_repeats(value, ascii_, compact):
    raw = json.dumps(value, ensure_ascii=ascii_, separators=(",", ":") if compact else None).encode()
    assert repeated_keys(raw) == []


@settings(max_examples=100, deadline=None)
@given(value=st.dictionaries(st.text(max_size=5), json_values, min_size=1, max_size=4))
def test_a_repeated_key_is_always_found(value):
    key = next(iter(value))
    raw = json.dumps(value)[:-1] + ", " + json.dumps(key) + ": 0}"
    assert [(f, r) for f, r, _ in repeated_keys(raw.encode()) if f == key] == [(key, "duplicate_key")]

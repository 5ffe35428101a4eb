"""Whole files: the format each gets, which lines are errors, and the statistics."""

from __future__ import annotations

import json

import pytest
from xxhash import xxh3_64_intdigest

from core.datasets.stats import DuplicateFinder, Reservoir
from core.datasets.validate import validate_file

from tests.support.datasets import A, U, chat, found, text, write

CONV = [{"role": "user", "content": "Say hi"}]
VALID = {
    "text": [{"text": "hello world"}, {"text": "second"}],
    "chat": [{"messages": [{"role": "system", "content": "Be brief."}, U, A]},
             {"messages": [U, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f"}}]},
                           {"role": "tool", "content": "42"}, A], "id": 7}],
    "instruction": [{"instruction": "Add", "input": "2 and 2", "output": "4"},
                    {"instruction": "Greet", "input": "", "output": "hi", "text": "carried along"},
                    {"instruction": "Greet", "input": None, "output": "hello"}],
    "prompt_completion": [{"prompt": "2+2=", "completion": "4"},
                          {"prompt": "3+3=", "completion": "6"}],
    "dpo": [{"prompt": "Say hi", "chosen": "hi", "rejected": "no"},
            {"prompt": CONV, "chosen": [{"role": "assistant", "content": "hi"}],
             "rejected": [{"role": "assistant", "content": "no"}]}],
    "kto": [{"prompt": "Say hi", "completion": "hi", "label": True},
            {"prompt": CONV, "completion": [{"role": "assistant", "content": "no"}], "label": False}],
    "sharegpt": [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "hi"},
                                    {"from": "gpt", "value": "hello"}]},
                 {"conversations": [{"from": "Human", "value": "hi"}, {"from": "GPT", "value": "yo"}], "system": "x"}],
}


@pytest.mark.parametrize("fmt", sorted(VALID))
def test_valid_file_of_each_format(tmp_path, fmt):
    rep = validate_file(write(tmp_path, [json.dumps(r) for r in VALID[fmt]]))
    assert (rep.format, rep.exit_code, rep.errors) == (fmt, 0, [])
    assert rep.rows == rep.valid_rows == len(VALID[fmt])


def test_majority_format_wins_and_minority_rows_are_errors(tmp_path):
    # The first row is chat, but text rows are the majority: every row is judged again as text.
    lines = [chat(U, A), text("a"), chat(U, A, U), text("b"), text("c")]
    rep = validate_file(write(tmp_path, lines))
    assert rep.format == "text" and rep.stats["format_votes"] == {"chat": 2, "text": 3}
    assert found(rep.errors) == {(1, "", "format_mismatch"), (3, "", "format_mismatch")}


def test_tie_goes_to_the_format_seen_first(tmp_path):
    rep = validate_file(write(tmp_path, [text("a"), chat(U, A), chat(U, A), text("b")]))
    assert rep.format == "text" and found(rep.errors) == {(2, "", "format_mismatch"), (3, "", "format_mismatch")}


def test_rows_before_the_first_formatted_one_are_judged_against_the_file_format(tmp_path):
    kto = json.dumps({"prompt": "p", "completion": "c", "label": False})
    rep = validate_file(write(tmp_path, ['{"prompt": "p"}', '{"foo": 1}', kto, kto.replace("False", "true")]))
    assert rep.format == "kto"
    assert found(rep.errors) == {(1, "completion", "missing_key"), (1, "label", "missing_key"),
                                 (2, "", "unknown_format")}


def test_objects_of_no_format_make_a_null_format_with_every_line_named(tmp_path):
    rep = validate_file(write(tmp_path, ['{"a": 1}', "", '{"b": 2}']))
    assert rep.format is None and rep.exit_code == 1 and rep.fatal is None
    assert found(rep.errors) == {(1, "", "unknown_format"), (3, "", "unknown_format")}


def test_lines_of_json_that_are_not_objects(tmp_path):
    rep = validate_file(write(tmp_path, ["[1]", "2", "null"]))
    assert rep.format is None and rep.exit_code == 1
    assert found(rep.errors) == {(n, "", "not_object") for n in (1, 2, 3)}


def test_broken_first_line_is_a_line_error_not_a_document(tmp_path):
    rep = validate_file(write(tmp_path, ['{"text": "a"', text("b"), text("c")]))
    assert rep.format == "text" and found(rep.errors) == {(1, "", "invalid_json")}


def test_one_row_split_over_two_lines_is_two_bad_lines(tmp_path):
    lines = ['{"text":', '"a"}'] + [text(str(i)) for i in range(6)]
    rep = validate_file(write(tmp_path, lines))
    assert rep.fatal is None and found(rep.errors) == {(1, "", "invalid_json"), (2, "", "invalid_json")}


def test_crlf_and_bom_are_read(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + (chat(U, A) + "\r\n").encode() * 3)
    rep = validate_file(p)
    assert rep.format == "chat" and rep.valid_rows == 3 and rep.stats["crlf_lines"] == 3 and rep.stats["bom"]
    assert rep.stats["duplicates"] == 2


def test_stats(tmp_path):
    rows = [chat({"role": "system", "content": "s"}, {"role": "user", "content": "x" * n}, A) for n in range(1, 101)]
    rep = validate_file(write(tmp_path, rows + ["", '{"messages": 1}']), eval_split=0.2, method="sft")
    s = rep.stats
    assert (rep.rows, rep.valid_rows, s["blank_lines"], s["invalid_rows"]) == (101, 100, 1, 1)
    assert s["roles"] == {"assistant": 100, "system": 100, "user": 100}
    # content chars: 1 (system) + n (user) + 1 (assistant) for n = 1..100
    assert s["chars"]["min"] == 3 and s["chars"]["max"] == 102 and s["chars"]["p50"] == 52
    assert s["chars"]["p90"] == 92 and s["chars"]["total"] == sum(n + 2 for n in range(1, 101))
    assert s["chars"]["sampled"] is False
    assert s["split"] == {"eval_split": 0.2, "train": 80, "eval": 20, "train_examples": 80}
    assert s["tokens"] is None and s["fixes"] == ["drop_invalid"]


def test_kto_from_dpo_pairs_doubles_training_examples(tmp_path):
    dpo = [json.dumps({"prompt": f"p{i}", "chosen": "good", "rejected": "bad"}) for i in range(10)]
    rep = validate_file(write(tmp_path, dpo), method="kto", eval_split=0.1)
    assert rep.exit_code == 0 and rep.stats["split"]["train_examples"] == 18
    assert found(rep.warnings) == {(None, "", "method_conversion")}


def test_parallel_ranges_match_one_pass(tmp_path):
    lines = []
    for i in range(3000):
        if i % 97 == 5:
            lines.append('{"messages": [')
        elif i % 89 == 3:
            lines.append(chat(U, U))
        elif i % 50 == 7:
            lines.append("")
        elif i % 31 == 0:
            lines.append(chat(U, A))  # repeats
        else:
            lines.append(chat({"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a" * (i % 40 + 1)}))
    p = write(tmp_path, lines)
    one = validate_file(p, workers=1, max_errors_per_rule=20)
    many = validate_file(p, workers=3, max_errors_per_rule=20)
    for rep in (one, many):
        rep.stats.pop("seconds")
    assert one.errors == many.errors and one.warnings == many.warnings
    assert one.stats == many.stats and one.stats["duplicates"] == lines.count(chat(U, A)) - 1


def test_parallel_duplicates_spilled_by_workers_match_one_pass(tmp_path):
    from core.datasets.scan import scan_file

    lines = [text(f"row {i % 150}") if i % 7 else "" for i in range(1200)]  # repeats, blank lines shift numbers
    p = write(tmp_path, lines)
    one = scan_file(p, "text", workers=1, spill_rows=40)
    many = scan_file(p, "text", workers=3, spill_rows=40)
    rows = [x for x in lines if x]
    assert one.duplicates == many.duplicates and one.duplicates[0] == len(rows) - len(set(rows))


def test_duplicate_finder_spills_and_agrees():
    pairs = [(xxh3_64_intdigest(b"row %d" % (i % 37)), i + 1) for i in range(500)]
    small, big = DuplicateFinder(spill_rows=64), DuplicateFinder()
    for h, line in pairs:
        small.add(h, line)
        big.add(h, line)
    assert small.finish(1000) == big.finish(1000)
    count = DuplicateFinder(spill_rows=64)
    for h, line in pairs:
        count.add(h, line)
    n, first = count.finish(5)
    assert n == 500 - 37 and first == [(38, 1), (39, 2), (40, 3), (41, 4), (42, 5)]


def test_reservoir_is_exact_below_its_size_and_bounded_above():
    r = Reservoir(100)
    for i in range(50):
        r.add(i)
    assert sorted(r.items) == list(range(50)) and not r.sampled
    for i in range(50, 100_000):
        r.add(i)
    assert len(r.items) == 100 and r.sampled and len(set(r.items)) == 100
    assert 20_000 < sum(r.items) / 100 < 80_000  # spread over the stream, not its head
    other = Reservoir(100)
    for i in range(30):
        other.add(-i)
    import random

    r.merge(other, random.Random(0))
    assert len(r.items) == 100 and r.seen == 100_030

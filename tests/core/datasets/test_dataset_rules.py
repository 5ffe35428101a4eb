"""One case per rule id: the file, and exactly the (line, field, rule) issues it must get."""

from __future__ import annotations

import gzip
import json

import pytest

from core.datasets import scan as scan_mod
from core.datasets.rules import ERROR_RULES, FATAL_RULES, WARNING_RULES
from core.datasets.validate import validate_file
from tests.support.datasets import A, U, chat, found, text, write

GOOD_CHAT = chat(U, A)
KTO = json.dumps({"prompt": "Say hi", "completion": "hi", "label": True})
DPO = json.dumps({"prompt": "Say hi", "chosen": "hi", "rejected": "go away"})

# rule -> (lines, validate kwargs, exactly the errors of the file)
ERROR_CASES = {
    "invalid_json": ([GOOD_CHAT, '{"messages": [', GOOD_CHAT], {}, {(2, "", "invalid_json")}),
    "invalid_utf8": ([text("ok"), b'{"text": "caf\xe9"}'], {}, {(2, "", "invalid_utf8")}),
    "line_too_long": ([text("ok"), text("x" * 3000), text("ok too")], {"_max_line": 1024},
                      {(2, "", "line_too_long")}),
    "not_object": ([text("a"), "[1, 2]", '"just a string"'], {}, {(2, "", "not_object"), (3, "", "not_object")}),
    "duplicate_key": ([text("a"), '{"text": "a", "text": "b"}', '{"text": "x","text":"y", "text" : "z"}'], {},
                      {(2, "text", "duplicate_key"), (3, "text", "duplicate_key")}),
    "unknown_format": ([text("a"), '{"txt": "a"}'], {}, {(2, "", "unknown_format")}),
    "format_mismatch": ([GOOD_CHAT, GOOD_CHAT, text("a")], {}, {(3, "", "format_mismatch")}),
    "missing_key": ([KTO, KTO, json.dumps({"prompt": "p", "completion": "c"}), json.dumps({"prompt": "p"})], {},
                    {(3, "label", "missing_key"), (4, "completion", "missing_key"), (4, "label", "missing_key")}),
    "wrong_type": ([text("a"), json.dumps({"text": 5}), json.dumps({"text": None})], {},
                   {(2, "text", "wrong_type"), (3, "text", "wrong_type")}),
    "empty_value": ([GOOD_CHAT, chat(U, {"role": "assistant", "content": "  \n"}), json.dumps({"messages": []})], {},
                    {(2, "messages[1].content", "empty_value"), (3, "messages", "empty_value")}),
    "invalid_role": ([GOOD_CHAT, chat({"role": "human", "content": "hi"}, A)], {},
                     {(2, "messages[0].role", "invalid_role")}),
    "no_assistant": ([GOOD_CHAT, chat(U, U)], {}, {(2, "messages", "no_assistant")}),
    "last_not_assistant": ([GOOD_CHAT, chat(U, A, U)], {}, {(2, "messages[2].role", "last_not_assistant")}),
    "mixed_forms": ([json.dumps({"prompt": "p", "completion": "c"}),
                     json.dumps({"prompt": "p", "completion": [A]})], {}, {(2, "completion", "mixed_forms")}),
    "chosen_equals_rejected": ([DPO, json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"})], {},
                               {(2, "rejected", "chosen_equals_rejected")}),
    "method_mismatch": ([DPO, DPO.replace("hi", "hello")], {"method": "sft"}, {(None, "", "method_mismatch")}),
}


@pytest.mark.parametrize("rule", sorted(ERROR_CASES))
def test_error_rule(tmp_path, monkeypatch, rule):
    lines, kw, expected = ERROR_CASES[rule]
    kw = dict(kw)
    if "_max_line" in kw:
        monkeypatch.setattr(scan_mod, "MAX_LINE_BYTES", kw.pop("_max_line"))
    rep = validate_file(write(tmp_path, lines), **kw)
    assert found(rep.errors) == expected
    assert rep.exit_code == 1 and rep.fatal is None
    assert rep.stats["error_counts"][rule] == sum(1 for e in expected if e[2] == rule)
    for e in rep.errors:
        assert e.message.endswith(".") and len(e.message) > 20  # a sentence saying what to fix


WARNING_CASES = {
    "bom": ([b"\xef\xbb\xbf" + text("a").encode(), text("b")], {}, {(1, "", "bom")}),
    "crlf": ([text("a").encode() + b"\r", text("b").encode() + b"\r", text("c")], {}, {(1, "", "crlf")}),
    "blank_line": ([text("a"), "", "   ", text("b")], {}, {(2, "", "blank_line"), (3, "", "blank_line")}),
    "duplicate_row": ([text("a"), text("b"), text("a"), text("a")], {},
                      {(3, "", "duplicate_row"), (4, "", "duplicate_row")}),
    "long_row": ([text("short"), text("x" * 200)], {"long_row_chars": 100}, {(2, "", "long_row")}),
    "method_conversion": ([json.dumps({"conversations": [{"from": "human", "value": "hi"},
                                                         {"from": "gpt", "value": "hello"}]})], {"method": "sft"},
                          {(None, "", "method_conversion")}),
    "kto_one_label": ([KTO, KTO.replace("hi", "hey")], {}, {(None, "label", "kto_one_label")}),
    "tokenizer_unavailable": ([text("a")], {"model": "/nonexistent/model-dir"}, {(None, "", "tokenizer_unavailable")}),
}


@pytest.mark.parametrize("rule", sorted(WARNING_CASES))
def test_warning_rule(tmp_path, rule):
    lines, kw, expected = WARNING_CASES[rule]
    rep = validate_file(write(tmp_path, lines), **kw)
    assert found(rep.warnings) == expected
    assert rep.errors == [] and rep.exit_code == 0 and rep.valid_rows == rep.rows


def test_not_utf8_file_warning(tmp_path):
    latin1 = [json.dumps({"text": w}, ensure_ascii=False).encode("latin-1") for w in ("café", "naïve", "déjà", "été")]
    rep = validate_file(write(tmp_path, latin1))
    assert found(rep.errors) == {(n, "", "invalid_utf8") for n in (1, 2, 3, 4)}
    assert found(rep.warnings) == {(None, "", "not_utf8_file")}
    assert rep.format == "text" and rep.valid_rows == 0  # the rows still count for the format


def test_duplicates_name_the_first_copy(tmp_path):
    rep = validate_file(write(tmp_path, [text("a"), text("b"), text("a")]))
    (dup,) = rep.warnings
    assert "line 1" in dup.message and rep.stats["duplicates"] == 1


FATAL_CASES = {
    "empty_file": b"",
    "utf16": "\n".join([text("a"), text("b")]).encode("utf-16"),
    "binary": gzip.compress(text("a").encode()),
    "json_array": json.dumps([{"text": "a"}, {"text": "b"}], indent=2).encode(),
    "multiline_json": (json.dumps({"text": "a"}, indent=2) + "\n" + json.dumps({"text": "b"}, indent=2)).encode(),
    "no_json_lines": b"name,text\n1,hello\n2,world\n",
}


@pytest.mark.parametrize("rule", sorted(FATAL_CASES))
def test_fatal_rule(tmp_path, rule):
    p = tmp_path / "d.jsonl"
    p.write_bytes(FATAL_CASES[rule])
    rep = validate_file(p)
    assert rep.fatal == rule and rep.exit_code == 2 and rep.format is None
    assert rep.message and p.name in rep.message


def test_unreadable_and_blank_only(tmp_path):
    rep = validate_file(tmp_path / "missing.jsonl")
    assert rep.fatal == "unreadable" and rep.exit_code == 2
    rep = validate_file(write(tmp_path, ["", "  "]))
    assert rep.fatal == "empty_file" and rep.stats["blank_lines"] == 2


def test_no_json_lines_still_names_the_lines(tmp_path):
    rep = validate_file(write(tmp_path, ["a,b", "1,2"]))
    assert rep.fatal == "no_json_lines" and found(rep.errors) == {(1, "", "invalid_json"), (2, "", "invalid_json")}


def test_utf16_without_bom(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes((text("hello") + "\n").encode("utf-16-le") * 3)
    assert validate_file(p).fatal == "utf16"


def test_json_array_reports_its_rows_and_offers_conversion(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps([{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}] * 3))
    rep = validate_file(p)  # a one-line array is a JSON array file too
    assert rep.fatal == "json_array" and rep.stats["json_document"]["rows"] == 3
    assert rep.stats["json_document"]["format"] == "sharegpt" and rep.fixes == ["convert_json"]


def test_every_rule_has_a_case():
    covered = set(ERROR_CASES) | set(WARNING_CASES) | set(FATAL_CASES) | {
        "not_utf8_file", "unreadable", "no_chat_template", "chat_template_failed", "truncated_rows"}  # tested elsewhere
    assert covered == set(ERROR_RULES) | set(WARNING_RULES) | set(FATAL_RULES)


def test_capped_per_rule_with_counts(tmp_path):
    lines = [text("ok")] + [text("")] * 30 + ['{"bad'] * 5
    rep = validate_file(write(tmp_path, lines), max_errors_per_rule=10)
    assert rep.stats["error_counts"] == {"empty_value": 30, "invalid_json": 5}
    assert [e.line for e in rep.errors if e.rule == "empty_value"] == list(range(2, 12))  # the first ten
    assert len([e for e in rep.errors if e.rule == "invalid_json"]) == 5 and rep.stats["issues_capped"]


@pytest.mark.parametrize("line,says", [
    (b'\xef\xbb\xbf{"text": "b"}', "byte order mark"),
    (b'{"text": "c"},', "a comma after the object"),
    (b'{"text": "d"} {"text": "e"}', "two objects on one line"),
    (b'{"text": NaN}', "NaN is not valid JSON"),
    (b'{"text": "\\ud800"}', "unpaired UTF-16 surrogate"),
    (b'{"text": 1e999}', "out of range"),
    (b'{"text": "a"', "column"),
])
def test_invalid_json_messages_say_what_is_wrong(tmp_path, line, says):
    rep = validate_file(write(tmp_path, [text("a"), line]))
    (err,) = rep.errors
    assert (err.line, err.rule) == (2, "invalid_json") and says in err.message


def test_duplicate_keys_in_chat_rows_and_nested_objects(tmp_path):
    lines = [GOOD_CHAT,
             '{"messages": [{"role": "user", "role": "assistant", "content": "hi"}]}',  # valid once decoded
             '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "id": 1}',
             '{"messages": [{"role": "user", "content": "q"}], "messages": [{"role": "assistant", "content": "b"}]}',
             '{"messages": [{"role": "user", "content": "say \\":\\" "}, {"role": "assistant", "content": "ok"}]}']
    rep = validate_file(write(tmp_path, lines))
    assert rep.format == "chat" and rep.valid_rows == 3
    assert found(rep.errors) == {(2, "messages[0].role", "duplicate_key"), (4, "messages", "duplicate_key")}
    assert "appears 2 times" in rep.errors[0].message

"""The validate command's JSON and exit codes; the fixes, each saving a new dataset by content hash."""

from __future__ import annotations

import json

import pytest

from core.cli import main
from core.datasets.fixes import apply_fix
from core.datasets.ingest import ingest_file
from core.datasets.preview import preview_rows
from core.datasets.validate import validate_file
from core.errors import DatasetError
from core.store import open_store
from tests.support.datasets import A, U, chat, text, write

KEYS = {"format", "rows", "valid_rows", "errors", "warnings", "stats", "message", "fatal"}
SHAREGPT = json.dumps({"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]})


def run_cli(capsys, *args):
    code = main(["validate", *map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("lines,code,fmt", [
    ([chat(U, A)], 0, "chat"),
    ([chat(U, A), "{oops", chat(U, U)], 1, "chat"),
    (["a,b", "1,2"], 2, None),
])
def test_cli_json_and_exit_codes(tmp_path, capsys, lines, code, fmt):
    got, doc = run_cli(capsys, write(tmp_path, lines))
    assert got == code and set(doc) == KEYS and doc["format"] == fmt
    assert all(set(e) == {"line", "field", "rule", "message"} for e in doc["errors"] + doc["warnings"])
    if code == 1:
        assert [(e["line"], e["rule"]) for e in doc["errors"]] == [(2, "invalid_json"), (3, "no_assistant")]
    if code == 2:
        assert doc["message"] and doc["fatal"] == "no_json_lines"


def test_cli_method_and_human_output(tmp_path, capsys):
    p = write(tmp_path, [text("a"), text("b")])
    got, doc = run_cli(capsys, p, "--method", "dpo")
    assert got == 1 and doc["errors"][0]["rule"] == "method_mismatch" and doc["errors"][0]["line"] is None
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 2
    assert "Cannot read" in capsys.readouterr().out


def test_drop_invalid_saves_only_valid_rows(console_home, tmp_path):
    p = write(tmp_path, [b"\xef\xbb\xbf" + chat(U, A).encode(), "", "{bad", chat(U, U), text("x"),
                         chat({"role": "user", "content": "q"}, A)], name="mixed.jsonl")
    store = open_store()
    res = apply_fix(store, "drop_invalid", p)
    assert (res.kept, res.dropped) == (2, 3)
    assert res.path.read_bytes().splitlines() == [chat(U, A).encode(),
                                                  chat({"role": "user", "content": "q"}, A).encode()]
    rep = validate_file(res.path)
    assert rep.exit_code == 0 and rep.warnings == []
    rec = store.get_dataset(res.dataset.id)
    assert (rec.name, rec.format, rec.row_count, rec.valid_rows) == ("mixed-valid.jsonl", "chat", 2, 2)
    again = apply_fix(store, "drop_invalid", p)  # same content, same dataset
    assert again.dataset.id == res.dataset.id and len(store.list_datasets()) == 1


def test_convert_sharegpt_and_instruction_to_chat(console_home, tmp_path):
    store = open_store()
    res = apply_fix(store, "convert_to_chat", write(tmp_path, [SHAREGPT, SHAREGPT.replace("hi", "hey")], "sg.jsonl"))
    rows = [json.loads(x) for x in res.path.read_text().splitlines()]
    assert rows[0] == {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    assert res.dataset.format == "chat" and res.dataset.name == "sg-chat.jsonl"
    inst = json.dumps({"instruction": "Add", "input": "2 and 2", "output": "4"})
    res = apply_fix(store, "convert_to_chat", write(tmp_path, [inst, '{"instruction": "x"}'], "inst.jsonl"))
    assert (res.kept, res.dropped) == (1, 1)
    assert json.loads(res.path.read_text())["messages"][0] == {"role": "user", "content": "Add\n\n2 and 2"}
    with pytest.raises(DatasetError, match="cannot become chat"):
        apply_fix(store, "convert_to_chat", write(tmp_path, [text("a")], "t.jsonl"))


def test_convert_json_array(console_home, tmp_path):
    p = tmp_path / "arr.json"
    p.write_text(json.dumps([json.loads(SHAREGPT)] * 2 + [{"conversations": []}], indent=2))
    assert validate_file(p).fixes == ["convert_json"]
    res = apply_fix(open_store(), "convert_json", p)
    assert (res.kept, res.dropped) == (2, 1) and res.dataset.format == "chat"
    assert validate_file(res.path).exit_code == 0
    pretty = tmp_path / "pretty.jsonl"  # rows pretty-printed one after another
    pretty.write_text("\n".join(json.dumps({"text": f"row {i}"}, indent=2) for i in range(3)))
    rep = validate_file(pretty)
    assert rep.fatal == "multiline_json" and rep.fixes == ["convert_json"]
    res = apply_fix(open_store(), "convert_json", pretty)
    assert res.path.read_text().splitlines() == [json.dumps({"text": f"row {i}"}, separators=(",", ":"))
                                                 for i in range(3)]


def test_ingest_records_the_validator_verdict_and_refuses_unreadable_files(console_home, tmp_path):
    store = open_store()
    rec = ingest_file(store, write(tmp_path, [chat(U, A), "{x"]))
    assert (rec.format, rec.row_count, rec.valid_rows) == ("chat", 2, 1)
    assert rec.stats["error_counts"] == {"invalid_json": 1}
    bad = tmp_path / "u16.jsonl"
    bad.write_bytes(chat(U, A).encode("utf-16"))
    with pytest.raises(DatasetError, match="UTF-16"):
        ingest_file(store, bad)
    assert len(store.list_datasets()) == 1


def test_preview_rows_as_turns(tmp_path):
    dpo = json.dumps({"prompt": "Say hi", "chosen": "hi", "rejected": "no"})
    p = write(tmp_path, [dpo, "{bad", dpo.replace("no", "never")])
    rows = preview_rows(p, "dpo")
    assert [(r["line"], r["valid"]) for r in rows] == [(1, True), (2, False), (3, True)]
    assert rows[0]["turns"] == [{"role": "user", "content": "Say hi"}, {"role": "chosen", "content": "hi"},
                                {"role": "rejected", "content": "no"}]
    assert preview_rows(p, "dpo", only="invalid")[0]["turns"] == [{"role": "raw", "content": "{bad"}]


def test_save_upload_is_content_addressed_with_progress(console_home):
    import io

    from core.datasets.ingest import save_upload

    seen: list[float] = []
    data = (chat(U, A) + "\n").encode() * 50_000  # several chunks
    first = save_upload(io.BytesIO(data), "My Data.JSONL", seen.append, total=len(data))
    again = save_upload(data, "renamed.jsonl")
    assert first == again and first.read_bytes() == data and first.suffix == ".jsonl"
    assert seen[-1] == 1.0 and seen == sorted(seen) and len(seen) > 1
    assert list(first.parent.glob("*.part")) == []


def test_filter_and_csv_of_issues(tmp_path):
    from core.datasets.validate import filter_issues, issues_csv

    rep = validate_file(write(tmp_path, [chat(U, A), "{x", chat(U, U), chat({"role": "bot", "content": "x"}, A)]))
    assert [i.line for i in filter_issues(rep.errors, rules=["invalid_role"])] == [4]
    assert [i.line for i in filter_issues(rep.errors, text="ASSISTANT turn")] == [3]
    assert [i.line for i in filter_issues(rep.errors, text="2")] == [2]
    csv_text = issues_csv(rep.errors)
    assert csv_text.splitlines()[0] == "line,field,rule,message"
    assert csv_text.splitlines()[3].startswith("4,messages[0].role,invalid_role,")


def test_python_m_core_validate_as_a_user_runs_it(console_home, demo_assets, tmp_path):
    """The real entry point in a subprocess: exit codes 0, 1, 2 and the JSON document, tokens from the demo model."""
    from tests.support.cli import run_cli as run_process

    good = write(tmp_path, [chat(U, A), chat({"role": "user", "content": "Hi"}, A)], "good.jsonl")
    r = run_process("validate", str(good), "--model", str(demo_assets / "tiny-llama"), "--max-length", "8",
                    "--method", "sft", "--json", home=console_home, timeout=300)
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["format"] == "chat" and doc["errors"] == []
    assert doc["stats"]["tokens"]["max_length"] == 8 and doc["stats"]["tokens"]["truncated_rows"] == 2

    bad = write(tmp_path, [chat(U, A), '{"messages": [{"role": "user", "role": "assistant", "content": "x"}]}',
                           text("stray")], "bad.jsonl")
    r = run_process("validate", str(bad), "--json", home=console_home)
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and (doc["rows"], doc["valid_rows"]) == (3, 1)
    assert [(e["line"], e["field"], e["rule"]) for e in doc["errors"]] == [
        (2, "messages[0].role", "duplicate_key"), (3, "", "format_mismatch")]

    u16 = tmp_path / "u16.jsonl"
    u16.write_bytes(chat(U, A).encode("utf-16"))
    r = run_process("validate", str(u16), "--json", home=console_home)
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and doc["format"] is None and "UTF-16" in doc["message"]

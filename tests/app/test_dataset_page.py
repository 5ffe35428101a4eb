"""The Dataset screen, driven through AppTest with a file on this machine (AppTest cannot drive an upload)."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.store import open_store
from tests.support.datasets import A, U, chat, text, write

ROOT = Path(__file__).resolve().parents[2]


def check(path: Path, model: str | None = None) -> AppTest:
    """Open the Dataset screen, optionally pick a tokenizer by path, and check ``path``."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/dataset.py")
    at.run()
    if model:
        at.selectbox(key="ds_model_pick").set_value("Another model id or path…").run()
        at.text_input(key="ds_model_other").input(model)
    at.text_input(key="ds_path").input(str(path))
    at.button(key="ds_check_path").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_valid_file_summary_histogram_and_bubbles(console_home, demo_assets, tmp_path):
    rows = [chat({"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question {i}?"}, A)
            for i in range(12)]
    p = write(tmp_path, rows, "good.jsonl")
    at = check(p, model=str(demo_assets / "tiny-llama"))
    m = metrics(at)
    assert (m["Format"], m["Rows"], m["Valid rows"], m["Errors"]) == ("chat", "12", "12", "0")
    assert any("All 12 rows are valid" in s.value for s in at.success)
    assert "Median tokens" in m and "Truncated at 1024" in m
    (ds,) = open_store().list_datasets()
    assert ds.format == "chat" and ds.row_count == 12 and any(ds.id in c.value for c in at.caption)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["data"][0]["type"] == "histogram" and len(fig["data"][0]["x"]) == 12
    assert "tokens" in fig["layout"]["title"]["text"]
    roles = [c.name for c in at.chat_message]
    assert roles[:3] == ["system", "user", "assistant"] and len(roles) == 15  # 5 rows previewed
    assert not at.get("download_button") and not any(b.key and b.key.startswith("ds_fix_") for b in at.button)


def test_broken_file_errors_table_and_drop_fix(console_home, tmp_path):
    p = write(tmp_path, [chat(U, A), "{broken", chat(U, U), text("stray"),
                         chat({"role": "bot", "content": "x"}, A)], "broken.jsonl")
    at = check(p)
    m = metrics(at)
    assert (m["Format"], m["Rows"], m["Valid rows"], m["Errors"]) == ("chat", "5", "1", "4")
    assert any("4 of 5 rows are invalid" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert list(zip(table["line"], table["rule"])) == [(2, "invalid_json"), (3, "no_assistant"),
                                                      (4, "format_mismatch"), (5, "invalid_role")]
    assert list(table["field"]) == ["", "messages", "", "messages[0].role"]
    at.multiselect(key="ds_errors_rules").select("invalid_role").run()
    assert list(at.dataframe[0].value["line"]) == [5]
    assert at.get("download_button")[0].proto.label == "Download errors as CSV"
    at.button(key="ds_fix_drop_invalid").click().run()
    assert not at.exception
    assert any("1 rows kept, 4 dropped" in s.value for s in at.success)
    names = {d.name for d in open_store().list_datasets()}
    assert names == {"broken.jsonl", "broken-valid.jsonl"}
    assert metrics(at)["Errors"] == "0"  # the page now shows the fixed dataset


def test_unreadable_file_says_why(console_home, tmp_path):
    p = tmp_path / "u16.jsonl"
    p.write_bytes(chat(U, A).encode("utf-16"))
    at = check(p)
    assert any("UTF-16" in e.value for e in at.error)
    assert open_store().list_datasets() == []


SHAREGPT = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}


def test_json_array_is_offered_a_conversion_that_saves_a_chat_dataset(console_home, tmp_path):
    p = tmp_path / "array.json"
    p.write_text(json.dumps([SHAREGPT, {**SHAREGPT, "conversations": SHAREGPT["conversations"][:1] * 2},
                             {"conversations": [{"from": "human", "value": "yo"}, {"from": "gpt", "value": "hey"}]}],
                            indent=2))
    at = check(p)
    assert any("is a JSON array (3 rows, 'sharegpt' format)" in e.value for e in at.error)
    assert metrics(at)["Format"] == "—" and open_store().list_datasets() == []
    at.button(key="ds_fix_convert_json").click().run()
    assert not at.exception
    assert any("2 rows kept, 1 dropped" in s.value for s in at.success)  # the row without a gpt turn
    (ds,) = open_store().list_datasets()
    assert (ds.name, ds.format, ds.row_count) == ("array-chat.jsonl", "chat", 2)
    assert (metrics(at)["Format"], metrics(at)["Errors"]) == ("chat", "0")


def test_sharegpt_converts_to_chat_and_same_content_is_recognised(console_home, tmp_path):
    rows = [json.dumps(SHAREGPT), json.dumps({"conversations": [{"from": "human", "value": "2+2?"},
                                                                {"from": "gpt", "value": "4"}]})]
    at = check(write(tmp_path, rows, "sg.jsonl"))
    assert metrics(at)["Format"] == "sharegpt"
    roles = [c.name for c in at.chat_message]
    assert roles[:2] == ["user", "assistant"]  # ShareGPT turns shown under chat roles
    at.button(key="ds_fix_convert_to_chat").click().run()
    assert any("2 rows kept, 0 dropped" in s.value for s in at.success)
    assert {d.format for d in open_store().list_datasets()} == {"sharegpt", "chat"}

    copy = tmp_path / "copy" / "same-bytes.jsonl"  # the same file under another name
    copy.parent.mkdir()
    copy.write_bytes((tmp_path / "sg.jsonl").read_bytes())
    at = check(copy)
    assert any("Recognised by its content" in i.value and "sg.jsonl" in i.value for i in at.info)
    assert len(open_store().list_datasets()) == 2

"""The Dataset screen in headless Chromium, through a real upload (AppTest cannot drive the file uploader): the
verdict, each bad line with its rule in the preview, the CSV download, and the drop-invalid fix saving a new dataset."""

from __future__ import annotations

import pytest

from tests.support.browser import chrome, chromium_available, click_text, console_server, nav, wait_css, wait_text
from tests.support.datasets import A, U, chat, text, write

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not chromium_available(), reason="needs chromium and chromedriver "
                                                                  "(scripts/system-deps.sh installs them)")]


def test_upload_broken_file_see_its_lines_and_drop_them(console_home, tmp_path, artifacts_dir):
    p = write(tmp_path, [chat(U, A), "{broken", chat(U, U), text("stray"),
                         chat({"role": "user", "content": "Hi"}, A)], "broken.jsonl")
    with console_server(console_home) as url, chrome() as d:
        d.get(url)
        nav(d, "Dataset")
        wait_css(d, "input[type=file]").send_keys(str(p))
        wait_text(d, "3 of 5 rows are invalid")
        for line in ("Download errors as CSV", "Line 2 · invalid", "invalid_json", "Line 3 · invalid", "no_assistant",
                     "Line 4 · invalid", "format_mismatch"):  # the page streams in: wait for each part
            wait_text(d, line, timeout=30)
        d.save_screenshot(str(artifacts_dir / "dataset-broken.png"))
        click_text(d, "Drop the invalid lines")
        wait_text(d, "2 rows kept, 3 dropped")
        wait_text(d, "All 2 rows are valid")
        wait_text(d, "broken-valid.jsonl")
        d.save_screenshot(str(artifacts_dir / "dataset-fixed.png"))
    from core.store import open_store

    assert {(x.name, x.valid_rows) for x in open_store().list_datasets()} == {("broken.jsonl", 2),
                                                                               ("broken-valid.jsonl", 2)}

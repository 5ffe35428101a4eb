"""The whole console in headless Chromium: upload -> configure -> launch (local) -> monitor -> registry."""

from __future__ import annotations

import pytest

from tests.support.browser import chrome, click_text, console_server, nav, wait_css, wait_text

pytestmark = [pytest.mark.browser, pytest.mark.training, pytest.mark.slow]


def test_upload_configure_launch_monitor_registry(demo_home, artifacts_dir):
    dataset = demo_home / "demo" / "data" / "sft_chat.jsonl"
    with console_server(demo_home) as url, chrome() as d:
        d.get(url)
        wait_text(d, "No jobs yet")

        nav(d, "Dataset")
        wait_css(d, "input[type=file]").send_keys(str(dataset))
        wait_text(d, "Stored as")
        assert "chat" in d.find_element("tag name", "body").text

        nav(d, "Model & training")
        wait_text(d, "The config is valid")
        click_text(d, "Use an uploaded dataset")
        click_text(d, "Use it")
        wait_text(d, "The config is valid")
        click_text(d, "Deploy it")

        wait_text(d, "Budget (USD)")
        click_text(d, "Launch")
        wait_text(d, "Completed", timeout=420)
        d.save_screenshot(str(artifacts_dir / "deploy-finished.png"))
        click_text(d, "Open in monitor")
        wait_text(d, "Predictions")
        wait_text(d, "Completed")
        wait_text(d, "BLEU")
        d.save_screenshot(str(artifacts_dir / "monitor-finished-job.png"))

        nav(d, "Models")
        wait_text(d, "Artifact (local)")
        wait_text(d, "Open in Playground")
        d.save_screenshot(str(artifacts_dir / "models-registry.png"))
    assert (artifacts_dir / "monitor-finished-job.png").stat().st_size > 10_000

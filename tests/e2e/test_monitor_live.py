"""The monitor of a running local job in headless Chromium: the displayed step advances on its own."""

from __future__ import annotations

import re
import time

import pytest

from tests.support.browser import chrome, console_server, nav, wait_text

pytestmark = [pytest.mark.browser, pytest.mark.training, pytest.mark.slow]


def displayed_metric(driver, label: str) -> str | None:
    for el in driver.find_elements("css selector", '[data-testid="stMetric"]'):
        labels = el.find_elements("css selector", '[data-testid="stMetricLabel"]')
        if labels and labels[0].text.strip() == label:
            return el.find_element("css selector", '[data-testid="stMetricValue"]').text.strip()
    return None


def displayed_step(driver) -> int:
    text = displayed_metric(driver, "Step") or ""
    m = re.match(r"(\d+)\s*/", text)
    return int(m.group(1)) if m else -1


def wait_step_above(driver, floor: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = displayed_step(driver)
        if step > floor:
            return step
        time.sleep(0.5)
    body = driver.find_element("tag name", "body").text
    raise AssertionError(f"the displayed step stayed at or below {floor} for {timeout:.0f}s; the page shows:\n"
                         f"{body[-2500:]}")


def test_monitor_of_a_running_local_job_advances(demo_home, artifacts_dir):
    from core import lifecycle as L
    from core.config import load_config_file
    from core.jobs import JobService
    from core.store import open_store

    cfg = load_config_file(demo_home / "demo" / "sft.yaml")
    cfg.training.max_steps = 3000  # far longer than the test watches: it is cancelled at the end
    svc = JobService(open_store())
    job = svc.deploy(cfg, provider="local")
    try:
        assert job.status == L.PROVISIONING, job.reason
        with console_server(demo_home) as url, chrome() as d:
            d.get(url)
            wait_text(d, "1 live")
            nav(d, "Monitor")
            wait_text(d, "Stop and keep checkpoint")
            first = wait_step_above(d, 0, timeout=300)  # loading the model and the first steps
            d.save_screenshot(str(artifacts_dir / "monitor-live-1.png"))
            time.sleep(4)
            second = wait_step_above(d, first, timeout=90)
            d.save_screenshot(str(artifacts_dir / "monitor-live-2.png"))
            assert second > first
            assert svc.store.get_job(job.id).status == L.RUNNING
            # the charts are drawn, and none of them takes a WebGL context
            wait_text(d, "Loss")
            assert d.execute_script("return document.querySelectorAll('.js-plotly-plot').length") >= 4
            assert d.execute_script("return document.querySelectorAll('.gl-container canvas').length") == 0
    finally:
        if not svc.store.get_job(job.id).is_terminal:
            svc.cancel(job.id, keep_checkpoint=False)
    done = svc.store.get_job(job.id)
    assert done.status == L.CANCELLED and "no checkpoint" in (done.reason or "")
    for shot in ("monitor-live-1.png", "monitor-live-2.png"):
        assert (artifacts_dir / shot).stat().st_size > 10_000

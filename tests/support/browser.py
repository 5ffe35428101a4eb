"""Drive the real console in headless Chromium: start `streamlit run` on a free port and a Selenium driver.

Debian's chromium and chromium-driver (scripts/system-deps.sh installs them). The flags keep Chromium off the
network, which this machine does not have, and off /dev/shm, which containers keep small.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def console_server(home: Path, extra_env: dict[str, str] | None = None, timeout: float = 90) -> Iterator[str]:
    """The console as `make run` starts it, on a free port, with its own CONSOLE_HOME. Yields the base URL."""
    port = free_port()
    env = {**os.environ, "CONSOLE_HOME": str(home), "PYTHONPATH": str(ROOT), **(extra_env or {})}
    log = open(home / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: {(home / 'streamlit.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def chromium_available() -> bool:
    return bool(shutil.which("chromedriver") and (shutil.which("chromium") or shutil.which("chromium-browser")))


@contextmanager
def chrome(width: int = 1400, height: int = 1000) -> Iterator["object"]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="ftc-chrome-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_text(driver, text: str, timeout: float = 60) -> None:
    """Until ``text`` appears anywhere on the page; on timeout the page's text is in the error."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.5).until(
            lambda d: text in d.find_element("tag name", "body").text)
    except TimeoutException:
        body = driver.find_element("tag name", "body").text
        raise AssertionError(f"{text!r} did not appear within {timeout:.0f}s; the page shows:\n{body[-3000:]}") from None


def click_text(driver, text: str, tag: str = "button", timeout: float = 30) -> None:
    """Click the first visible ``tag`` whose text contains ``text`` (Streamlit wraps labels in <p>)."""
    from selenium.webdriver.support.ui import WebDriverWait

    def find(d):
        for el in d.find_elements("xpath", f"//{tag}[contains(normalize-space(.), {_xpath_literal(text)})]"):
            if el.is_displayed() and el.is_enabled():
                return el
        return False

    el = WebDriverWait(driver, timeout, poll_frequency=0.3).until(find)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.click()


def nav(driver, title: str) -> None:
    """Follow a sidebar link, keeping the browser session (and its session state)."""
    click_text(driver, title, tag="a")


def _xpath_literal(s: str) -> str:
    return f"'{s}'" if "'" not in s else f'concat("{s}")'


def wait_css(driver, selector: str, timeout: float = 30):
    """The first element matching ``selector`` once it exists (hidden inputs included)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.3).until(
        lambda d: (d.find_elements("css selector", selector) or [False])[0])

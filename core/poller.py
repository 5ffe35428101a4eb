"""The lifecycle loop: one per console process (a background thread) or headless (`python -m core worker`)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("finetune_console.poller")


class Poller:
    def __init__(self, service: Any, interval_s: float = 5.0) -> None:
        self.service = service
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ftc-poller", daemon=True)
        self.rounds = 0

    def start(self) -> "Poller":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            tick(self.service)
            self.rounds += 1
            self._stop.wait(self.interval_s)


def tick(service: Any) -> None:
    try:
        service.poll_all()
    except Exception:  # noqa: BLE001 - the loop must survive anything one round throws
        log.exception("poll round failed")


def run_forever(service: Any, interval_s: float = 5.0, iterations: int | None = None) -> None:
    n = 0
    while iterations is None or n < iterations:
        tick(service)
        n += 1
        if iterations is None or n < iterations:
            time.sleep(interval_s)

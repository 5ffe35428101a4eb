"""What the callbacks, the signal handler and the run loop share, without importing torch or transformers: the
process entry point needs it (SIGTERM handler, rank) before those load, so a job that fails early fails fast."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field


def world() -> tuple[int, int]:
    """(rank, world size) as torchrun / accelerate set them; (0, 1) for a single process."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


@dataclass
class RunState:
    """Shared between the callbacks, the signal handler and the run loop."""

    is_main: bool = True
    stop_reason: str | None = None  # None | "cancelled" | "budget_stopped"
    stop_detail: str | None = None
    sigterm: bool = False
    started_monotonic: float = field(default_factory=time.monotonic)
    prior_cost_usd: float = 0.0
    cost_per_hour: float = 0.0
    last_loss: float | None = None
    total_steps: int | None = None
    current_step: int = 0
    prediction_seconds: float = 0.0
    prediction_calls: int = 0

    def cost_now(self) -> float:
        return self.prior_cost_usd + (time.monotonic() - self.started_monotonic) / 3600.0 * self.cost_per_hour

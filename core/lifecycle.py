"""Job states and the transitions between them (design.md §2). Shared by the console and the trainer."""

from __future__ import annotations

QUEUED = "queued"
PROVISIONING = "provisioning"
RUNNING = "running"
COMPLETING = "completing"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
BUDGET_STOPPED = "budget_stopped"

STATES = (QUEUED, PROVISIONING, RUNNING, COMPLETING, COMPLETED, FAILED, CANCELLED, BUDGET_STOPPED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, BUDGET_STOPPED})
LIVE = frozenset(STATES) - TERMINAL

# Forward path; any live state may also end in failed / cancelled / budget_stopped.
_FORWARD = {
    QUEUED: {PROVISIONING},
    PROVISIONING: {RUNNING, COMPLETING},
    RUNNING: {COMPLETING},
    COMPLETING: {COMPLETED},
}


def allowed_next(state: str) -> frozenset[str]:
    if state in TERMINAL:
        return frozenset()
    return frozenset(_FORWARD.get(state, set()) | {FAILED, CANCELLED, BUDGET_STOPPED})


def can_transition(src: str, dst: str) -> bool:
    return dst in allowed_next(src)


def sources_for(dst: str) -> tuple[str, ...]:
    """Every state from which ``dst`` may be reached: used in compare-and-set updates."""
    return tuple(s for s in STATES if dst in allowed_next(s))

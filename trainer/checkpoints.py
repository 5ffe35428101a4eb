"""Finding the checkpoint to resume from. No heavy imports: the console calls this before relaunching a job.

A checkpoint is ``<output_dir>/checkpoints/checkpoint-<step>``. The Trainer writes the weights, optimizer,
scheduler and RNG state first and ``trainer_state.json`` last, so a folder whose state file parses is complete;
one without it was cut short by a kill or a full disk and must not be resumed from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

STATE_FILE = "trainer_state.json"


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def _step(p: Path) -> int | None:
    tail = p.name.rpartition("-")[2]
    return int(tail) if p.name.startswith("checkpoint-") and tail.isdigit() else None


def is_complete(ckpt: Path) -> bool:
    try:
        state = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and "global_step" in state


def checkpoints(output_dir: str | Path) -> list[tuple[int, Path, bool]]:
    """(step, folder, complete) for every checkpoint folder, oldest first."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = [(_step(p), p) for p in root.iterdir() if p.is_dir()]
    return sorted((s, p, is_complete(p)) for s, p in found if s is not None)


def latest_checkpoint(output_dir: str | Path) -> str | None:
    """The newest complete checkpoint, or None."""
    complete = [p for _, p, ok in checkpoints(output_dir) if ok]
    return str(complete[-1]) if complete else None


def checkpoint_step(path: str | Path) -> int:
    return int(json.loads((Path(path) / STATE_FILE).read_text(encoding="utf-8"))["global_step"])


def remove_incomplete(output_dir: str | Path) -> list[str]:
    """Delete checkpoint folders a killed run left half-written (the resumed run rewrites that step)."""
    removed = []
    for _, p, ok in checkpoints(output_dir):
        if not ok:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(str(p))
    return removed

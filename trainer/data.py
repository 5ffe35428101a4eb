"""Read the job's JSONL, convert it to the method's TRL shape, split it, and pick the prediction samples."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import METHOD_FORMATS, TrainingConfig
from core.datasets.formats import detect_row_format, prediction_sample, split_sizes, to_training_row
from core.datasets.rules import row_problems
from core.errors import DatasetError


@dataclass
class PreparedData:
    fmt: str
    train: list[dict[str, Any]]
    eval: list[dict[str, Any]]
    samples: list[dict[str, Any]] = field(default_factory=list)  # {sample_id, prompt, expected}
    skipped: int = 0


def read_jsonl(path: str | Path) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """(line number, row) for every object line, and the count of lines skipped as unusable."""
    rows, skipped = [], 0
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"Dataset file {p} does not exist.")
    with p.open(encoding="utf-8-sig", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                skipped += 1
                continue
            if isinstance(obj, dict):
                rows.append((n, obj))
            else:
                skipped += 1
    return rows, skipped


def prepare(cfg: TrainingConfig, path: str | Path) -> PreparedData:
    lines, skipped = read_jsonl(path)
    if not lines:
        raise DatasetError(f"Dataset {Path(path).name} has no JSON object rows; validate it on the Dataset page.")
    fmt = cfg.data.format
    if fmt == "auto":
        counts: dict[str, int] = {}
        for _, row in lines[:1000]:
            f = detect_row_format(row)
            if f:
                counts[f] = counts.get(f, 0) + 1
        if not counts:
            raise DatasetError("No row matches a known format (text, chat, instruction, prompt_completion, dpo, kto,"
                               " sharegpt); validate the file on the Dataset page.")
        fmt = max(counts, key=counts.get)
    method = cfg.training.method
    if fmt not in METHOD_FORMATS[method]:
        allowed = ", ".join(METHOD_FORMATS[method])
        raise DatasetError(f"{method.upper()} cannot learn from '{fmt}' rows; it takes {allowed}.",
                           hint="Pick another method or upload a matching dataset.")
    usable = [(n, r) for n, r in lines if detect_row_format(r) == fmt and not row_problems(r, fmt)]  # as validated
    skipped += len(lines) - len(usable)
    rng = random.Random(cfg.data.seed)
    rng.shuffle(usable)
    if cfg.data.max_samples:
        usable = usable[: cfg.data.max_samples]
    n_eval = split_sizes(len(usable), cfg.data.eval_split)[1]
    eval_src, train_src = usable[:n_eval], usable[n_eval:]
    if not train_src:
        raise DatasetError("No training rows are left after the evaluation split; lower data.eval_split.")
    train = [t for _, r in train_src for t in to_training_row(r, fmt, method)]
    evals = [t for _, r in eval_src for t in to_training_row(r, fmt, method)]
    samples = []
    # Held-out prompts when there is an eval split, training prompts otherwise (then scores measure fit).
    for n, row in (eval_src or train_src):
        s = prediction_sample(row, fmt)
        if s is None:
            continue
        samples.append({"sample_id": f"line_{n}", "prompt": s[0], "expected": s[1]})
        if len(samples) >= cfg.predictions.sample_count:
            break
    return PreparedData(fmt=fmt, train=train, eval=evals, samples=samples, skipped=skipped)

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
    usable, first_problem = usable_rows(lines, fmt)
    if not usable:
        n, problem = first_problem or (lines[0][0], f"the row is not '{fmt}'")
        raise DatasetError(f"No row of the dataset can be trained on; line {n}: {problem}",
                           hint="Validate the file on the Dataset page and fix the lines it names.")
    if first_problem:
        # The validator counted these as invalid rows; training goes on without them, as the Dataset page says.
        print(f"[trainer] skipped {len(lines) - len(usable)} rows the validator flags (first: line {first_problem[0]}:"
              f" {first_problem[1]})", flush=True)
    skipped += len(lines) - len(usable)
    rng = random.Random(cfg.data.seed)
    rng.shuffle(usable)
    if cfg.data.max_samples:
        usable = usable[: cfg.data.max_samples]
    n_eval = split_sizes(len(usable), cfg.data.eval_split)[1]
    eval_src, train_src = usable[:n_eval], usable[n_eval:]
    if not train_src:
        raise DatasetError("No training rows are left after the evaluation split; lower data.eval_split.")
    train = converted(train_src, fmt, method)
    evals = converted(eval_src, fmt, method)
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


def usable_rows(lines: list[tuple[int, dict[str, Any]]], fmt: str
                ) -> tuple[list[tuple[int, dict[str, Any]]], tuple[int, str] | None]:
    """The rows the validator passes as rows of a ``fmt`` file, and the first flagged one (line, message)."""
    usable, first = [], None
    for n, row in lines:
        problems = row_problems(row, fmt)
        if not problems and detect_row_format(row) == fmt:
            usable.append((n, row))
        elif first is None:
            first = (n, problems[0][2] if problems else f"the row is not '{fmt}'")
    return usable, first


def converted(rows: list[tuple[int, dict[str, Any]]], fmt: str, method: str) -> list[dict[str, Any]]:
    """The TRL rows for ``rows``; a row whose values have the wrong shape fails here, naming its line, before
    any model is loaded (TRL would fail later with a message that names neither the line nor the field)."""
    out = []
    for n, row in rows:
        for t in to_training_row(row, fmt, method):
            problem = row_problem(t)
            if problem:
                raise DatasetError(f"Line {n} of the dataset cannot be trained on: {problem}.",
                                   hint="Validate the file on the Dataset page and fix or drop that line.")
            out.append(t)
    return out


def row_problem(row: dict[str, Any]) -> str | None:
    """What is wrong with one TRL-shaped row, or None. Text fields must be non-empty strings or message lists."""
    for key, value in row.items():
        if key == "label":
            if not isinstance(value, bool):
                return f"'label' must be true or false, not {value!r}"
            continue
        problem = _text_problem(key, value)
        if problem:
            return problem
    return None


def _text_problem(key: str, value: Any) -> str | None:
    if isinstance(value, str):
        return None if value.strip() or key == "prompt" else f"'{key}' is empty"
    if not isinstance(value, list) or not value:
        return f"'{key}' must be a string or a non-empty list of messages, not {type(value).__name__}"
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            return f"'{key}[{i}]' must be a message object with role and content"
        if not isinstance(m.get("role"), str) or not m["role"]:
            return f"'{key}[{i}].role' must be a non-empty string"
        if not isinstance(m.get("content"), str):
            return f"'{key}[{i}].content' must be a string, not {type(m.get('content')).__name__}"
    return None

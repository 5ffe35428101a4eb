"""Line-by-line dataset validation (issue 3). This first version checks JSON and format per line; the
validator issue extends the rules and statistics behind the same API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from core.datasets.formats import detect_row_format


class Issue(BaseModel):
    line: int
    field: str
    rule: str
    message: str


class ValidationReport(BaseModel):
    format: str | None = None
    rows: int = 0
    valid_rows: int = 0
    blank_lines: int = 0
    errors: list[Issue] = Field(default_factory=list)
    warnings: list[Issue] = Field(default_factory=list)
    error_counts: dict[str, int] = Field(default_factory=dict)
    stats: dict[str, Any] = Field(default_factory=dict)
    fatal: str | None = None

    @property
    def exit_code(self) -> int:
        if self.fatal:
            return 2
        return 1 if self.errors else 0

    def to_json(self) -> dict[str, Any]:
        d = self.model_dump()
        d["message"] = self.fatal
        return d


def validate_file(path: str | Path, *, method: str | None = None, model: str | None = None,
                  max_length: int | None = None, **_: Any) -> ValidationReport:
    p = Path(path)
    rep = ValidationReport()
    if not p.is_file():
        rep.fatal = f"{p} does not exist."
        return rep
    per_line: list[tuple[int, str | None]] = []
    with p.open("rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                rep.blank_lines += 1
                continue
            rep.rows += 1
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                rep.errors.append(Issue(line=n, field="", rule="invalid_json", message=f"Not valid JSON: {exc}"))
                per_line.append((n, None))
                continue
            per_line.append((n, detect_row_format(obj)))
    counts: dict[str, int] = {}
    for _, fmt in per_line:
        if fmt:
            counts[fmt] = counts.get(fmt, 0) + 1
    rep.format = max(counts, key=counts.get) if counts else None
    for n, fmt in per_line:
        if fmt is not None and fmt != rep.format:
            rep.errors.append(Issue(line=n, field="", rule="format_mismatch",
                                    message=f"Row is '{fmt}' but the file is '{rep.format}'."))
        elif fmt is None and not any(e.line == n for e in rep.errors):
            rep.errors.append(Issue(line=n, field="", rule="unknown_format", message="Row matches no known format."))
    rep.valid_rows = counts.get(rep.format, 0) if rep.format else 0
    if rep.rows and rep.format is None:
        rep.fatal = "No line is a row in a known format."
    for e in rep.errors:
        rep.error_counts[e.rule] = rep.error_counts.get(e.rule, 0) + 1
    rep.stats = {"rows": rep.rows, "valid_rows": rep.valid_rows}
    return rep

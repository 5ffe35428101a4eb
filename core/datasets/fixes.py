"""Fixes the Dataset page offers, each saving a new dataset (stored once by content hash):

* ``drop_invalid``: keep only the rows the validator counts as valid (blank lines, a BOM and CRLF go too);
* ``convert_to_chat``: ShareGPT or instruction rows (and chat / prompt-completion ones) as JSONL ``chat``;
* ``convert_json``: a JSON array, or objects spread over several lines, as JSONL with one row a line (ShareGPT and
  instruction rows converted to ``chat`` on the way).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec

from core.datasets.formats import detect_row_format, to_chat
from core.datasets.reader import JsonDocument, sniff
from core.datasets.scan import iter_rows
from core.errors import DatasetError, InputError

FIXES = {
    "drop_invalid": "Drop the invalid lines",
    "convert_to_chat": "Convert to JSONL chat (messages)",
    "convert_json": "Convert the JSON document to JSONL",
}
_CHAT_CONVERTIBLE = ("sharegpt", "instruction")


@dataclass
class FixResult:
    dataset: Any  # the DatasetRecord saved
    kept: int
    dropped: int
    path: Path  # where the new file is stored


def _write(rows: Iterator[bytes], name: str) -> tuple[Path, int]:
    from core.paths import datasets_dir

    n = 0
    with tempfile.NamedTemporaryFile("wb", dir=datasets_dir(), prefix=".fix-", suffix=".tmp", delete=False) as f:
        tmp = Path(f.name)
        for line in rows:
            f.write(line)
            f.write(b"\n")
            n += 1
    return tmp, n


def _save(store: Any, rows: Iterator[bytes], name: str, dropped: Callable[[], int]) -> FixResult:
    from core.datasets.ingest import ingest_file

    tmp, kept = _write(rows, name)
    try:
        if not kept:
            raise DatasetError("No row is left to save after the fix; fix the rows by hand and upload again.")
        rec = ingest_file(store, tmp, name=name)
    finally:
        tmp.unlink(missing_ok=True)
    return FixResult(dataset=rec, kept=kept, dropped=dropped(), path=Path(rec.path))


def _stem(path: Path, name: str | None) -> str:
    return Path(name or path.name).stem


def drop_invalid(store: Any, path: str | Path, *, name: str | None = None) -> FixResult:
    p = Path(path)
    bom = sniff(p).bom
    fmt = _file_format(p, bom)
    bad = 0

    def rows() -> Iterator[bytes]:
        nonlocal bad
        for _, s, _, ok in iter_rows(p, fmt, bom):
            if ok:
                yield s
            else:
                bad += 1

    return _save(store, rows(), f"{_stem(p, name)}-valid.jsonl", lambda: bad)


def convert_to_chat(store: Any, path: str | Path, *, name: str | None = None) -> FixResult:
    p = Path(path)
    bom = sniff(p).bom
    fmt = _file_format(p, bom)
    if fmt not in (*_CHAT_CONVERTIBLE, "chat", "prompt_completion"):
        raise DatasetError(f"'{fmt}' rows cannot become chat conversations; only sharegpt and instruction rows "
                           "(and prompt/completion ones) convert.")
    bad = 0
    encode = msgspec.json.encode

    def rows() -> Iterator[bytes]:
        nonlocal bad
        for _, _, row, ok in iter_rows(p, fmt, bom):
            chat = to_chat(row, fmt) if ok else None  # type: ignore[arg-type]
            if chat:
                yield encode(chat)
            else:
                bad += 1

    return _save(store, rows(), f"{_stem(p, name)}-chat.jsonl", lambda: bad)


def convert_json(store: Any, path: str | Path, *, name: str | None = None) -> FixResult:
    p = Path(path)
    encode = msgspec.json.encode
    skipped = 0

    def rows() -> Iterator[bytes]:
        nonlocal skipped
        try:
            for value in JsonDocument(p):
                fmt = detect_row_format(value)
                if fmt in _CHAT_CONVERTIBLE:
                    from core.datasets.rules import row_problems

                    if row_problems(value, fmt):
                        skipped += 1
                        continue
                    value = to_chat(value, fmt)
                yield encode(value)
        except ValueError as exc:
            raise InputError(f"{p.name} is not a JSON document ({exc}); validate it to see its bad lines.") from None

    chat = "-chat" if (sniff(p).document.get("format") in _CHAT_CONVERTIBLE) else ""
    return _save(store, rows(), f"{_stem(p, name)}{chat}.jsonl", lambda: skipped)


def _file_format(p: Path, bom: bool) -> str | None:
    """The file's format by the validator's majority rule."""
    from core.datasets.validate import validate_file

    rep = validate_file(p, max_errors_per_rule=1)
    if rep.fatal:
        raise InputError(rep.message or f"{p.name} cannot be read as JSON Lines.")
    return rep.format


def apply_fix(store: Any, fix: str, path: str | Path, *, name: str | None = None) -> FixResult:
    fn = {"drop_invalid": drop_invalid, "convert_to_chat": convert_to_chat, "convert_json": convert_json}.get(fix)
    if fn is None:
        raise InputError(f"Unknown fix '{fix}'; use one of {', '.join(FIXES)}.")
    return fn(store, path, name=name)

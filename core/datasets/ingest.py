"""Keep each dataset once, under its content hash, and record it in the store."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, BinaryIO

from core.datasets.formats import detect_row_format
from core.errors import DatasetError, InputError, NotFoundError
from core.store.records import DatasetRecord

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def quick_scan(path: Path, limit: int | None = None) -> dict[str, Any]:
    """Rows, majority format and invalid-line count, streaming. The full validator gives more."""
    rows = valid = 0
    counts: dict[str, int] = {}
    with path.open("rb") as f:
        for i, raw in enumerate(f):
            if limit is not None and i >= limit:
                break
            if not raw.strip():
                continue
            rows += 1
            try:
                obj = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            fmt = detect_row_format(obj)
            if fmt:
                valid += 1
                counts[fmt] = counts.get(fmt, 0) + 1
    fmt = max(counts, key=counts.get) if counts else None
    return {"rows": rows, "valid_rows": counts.get(fmt, 0) if fmt else 0, "format": fmt, "formats": counts}


def ingest_file(store: Any, src: str | Path, *, name: str | None = None, stats: dict[str, Any] | None = None) -> DatasetRecord:
    """Copy ``src`` under ``$CONSOLE_HOME/datasets/<sha256>.jsonl`` (once) and record it."""
    from core.paths import datasets_dir

    src = Path(src)
    if not src.is_file():
        raise InputError(f"Dataset file {src} does not exist.")
    digest = sha256_file(src)
    existing = store.find_dataset_by_hash(digest)
    if existing and Path(existing.path).exists():
        return existing
    dest = datasets_dir() / f"{digest}.jsonl"
    if not dest.exists():
        tmp = dest.with_suffix(".part")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    scan = stats or quick_scan(dest)
    if not scan.get("rows"):
        raise DatasetError(f"{src.name} has no rows; upload a JSONL file with one JSON object per line.")
    rec = DatasetRecord(
        id=f"ds_{digest[:16]}", name=name or src.name, content_hash=digest, path=str(dest),
        format=scan.get("format"), row_count=scan.get("rows", 0), valid_rows=scan.get("valid_rows", 0),
        size_bytes=dest.stat().st_size, stats=scan,
    )
    return store.add_dataset(rec)


def ingest_bytes(store: Any, data: bytes | BinaryIO, name: str, **kw: Any) -> DatasetRecord:
    from core.paths import datasets_dir

    tmp = datasets_dir() / f".upload-{hashlib.sha256(name.encode()).hexdigest()[:8]}.tmp"
    with tmp.open("wb") as f:
        if isinstance(data, (bytes, bytearray)):
            f.write(data)
        else:
            shutil.copyfileobj(data, f, CHUNK)
    try:
        return ingest_file(store, tmp, name=name, **kw)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_dataset(store: Any, ref: str) -> DatasetRecord:
    """A stored dataset id, or a file path (ingested on the way)."""
    if ref.startswith("ds_"):
        try:
            return store.get_dataset(ref)
        except NotFoundError:
            raise NotFoundError(f"No stored dataset '{ref}'; upload it on the Dataset page.") from None
    return ingest_file(store, ref)

"""Keep each dataset once, under its content hash, and record it in the store."""

from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

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
    """The validator's verdict in brief (rows, valid rows, format, per-format counts), for the datasets row."""
    from core.datasets.validate import validate_file

    rep = validate_file(path, max_errors_per_rule=10)
    return rep.summary()


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
    if scan.get("fatal") or not scan.get("rows"):
        dest.unlink(missing_ok=True)
        raise DatasetError(scan.get("message") or f"{src.name} has no rows; upload a JSONL file with one JSON "
                                                  "object per line.")
    rec = DatasetRecord(
        id=f"ds_{digest[:16]}", name=name or src.name, content_hash=digest, path=str(dest),
        format=scan.get("format"), row_count=scan.get("rows", 0), valid_rows=scan.get("valid_rows", 0),
        size_bytes=dest.stat().st_size, stats=scan,
    )
    return store.add_dataset(rec)


def save_upload(data: bytes | BinaryIO, name: str, progress: Any = None, total: int | None = None) -> Path:
    """Stage an upload under ``$CONSOLE_HOME/uploads/<sha256><suffix>`` (the same content, the same file) before
    it is validated and, when readable, ingested; ``progress(fraction)`` follows the copy."""
    from core.paths import console_home

    d = console_home() / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    src = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    size = total or (len(data) if isinstance(data, (bytes, bytearray)) else None)
    done = 0
    with tempfile.NamedTemporaryFile("wb", dir=d, suffix=".part", delete=False) as f:
        while chunk := src.read(CHUNK * 4):
            f.write(chunk)
            h.update(chunk)
            done += len(chunk)
            if progress and size:
                progress(min(1.0, done / size))
    dest = d / f"{h.hexdigest()}{Path(name).suffix.lower() or '.jsonl'}"
    Path(f.name).replace(dest)
    return dest


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

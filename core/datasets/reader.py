"""What kind of file this is before it is read line by line, and streaming reads of JSON documents.

``sniff`` recognises the files that cannot be JSON Lines at all (UTF-16/32, archives, a JSON array, objects
pretty-printed over many lines) from their first bytes, so the validator can say so in one sentence instead of
naming every line. ``JsonDocument`` streams the rows of a JSON array (or of concatenated JSON values) in bounded
memory; the JSON-array conversion fix uses it too.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from core.datasets.formats import detect_row_format

UTF8_BOM = b"\xef\xbb\xbf"
HEAD_BYTES = 1 << 16
MAX_LINE_BYTES = 16 << 20  # a longer line is reported, not read: one row must not take the memory bound

_MAGIC = (
    (b"\x1f\x8b", "a gzip archive; decompress it first (gunzip)"),
    (b"PK\x03\x04", "a zip archive (or an Excel/Word file); extract the JSONL file from it"),
    (b"\xfd7zXZ\x00", "an xz archive; decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive; decompress it first (unzstd)"),
    (b"PAR1", "a Parquet file; export it as JSON Lines (e.g. pandas.read_parquet(...).to_json(lines=True, "
              "orient='records'))"),
    (b"%PDF", "a PDF document"),
)


@dataclass
class Sniff:
    bom: bool = False
    fatal: str | None = None  # a FATAL_RULES id
    message: str | None = None
    document: dict[str, Any] = field(default_factory=dict)  # a JSON array's / multi-line file's row counts


def sniff(path: Path) -> Sniff:
    try:
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        return Sniff(fatal="unreadable", message=f"Cannot open {path.name}: {exc.strerror or exc}.")
    if not head:
        return Sniff(fatal="empty_file", message=f"{path.name} is empty; upload a JSONL file with one JSON object "
                                                 "per line.")
    enc = _wide_encoding(head)
    if enc:
        return Sniff(fatal="utf16", message=f"{path.name} is encoded as {enc}, not UTF-8; save it as UTF-8 (in most "
                                            "editors: Save As, Encoding: UTF-8) and upload it again.")
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return Sniff(fatal="binary", message=f"{path.name} is {what}, not a JSONL text file.")
    if head[:4096].count(0) * 4 >= min(len(head), 4096):
        return Sniff(fatal="binary", message=f"{path.name} is a binary file (a quarter of its first bytes are NUL), "
                                             "not a JSONL text file.")
    bom = head.startswith(UTF8_BOM)
    body = head[3:] if bom else head
    first = body.lstrip()[:1]
    if first in (b"[", b"{"):
        doc = _document(path, array=first == b"[")
        if doc is not None:
            doc.bom = bom
            return doc
    return Sniff(bom=bom)


def _wide_encoding(head: bytes) -> str | None:
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if head.startswith(bom):
            return name
    sample = head[:4096]
    if len(sample) < 4:
        return None
    # ASCII text in UTF-16 has a NUL beside every character: on odd offsets (little endian) or even ones (big).
    odd, even = sample[1::2].count(0), sample[0::2].count(0)
    half = len(sample) // 2
    if max(odd, even) >= 0.6 * half and min(odd, even) <= 0.1 * half:
        return "UTF-16"
    return None


def _document(path: Path, *, array: bool) -> Sniff | None:
    """A fatal Sniff when the file is one JSON array, or JSON objects spread over several lines each."""
    with path.open("rb") as f:
        first_line, rest_blank = _first_line(f)
    try:
        value = json.loads(first_line.removeprefix(UTF8_BOM))
        standalone = True
    except (ValueError, RecursionError):
        value, standalone = None, False
    if standalone and not (array and type(value) is list and rest_blank):
        return None  # the first line is a row on its own: this is JSON Lines (good or bad)
    doc = JsonDocument(path)
    formats: dict[str, int] = {}
    n = 0
    try:
        for row in doc:
            n += 1
            fmt = detect_row_format(row)
            if fmt:
                formats[fmt] = formats.get(fmt, 0) + 1
    except (ValueError, RecursionError):
        return None  # not a JSON document either: read it line by line and name the bad lines
    fmt = max(formats, key=formats.get) if formats else None  # type: ignore[arg-type]
    info = {"rows": n, "format": fmt, "formats": formats, "kind": "array" if doc.is_array else "values"}
    if doc.is_array:
        what = f"{n} rows" + (f", '{fmt}' format" if fmt else "")
        return Sniff(fatal="json_array", document=info,
                     message=f"{path.name} is a JSON array ({what}), not JSON Lines with one object per line; "
                             "convert it to JSONL (the Dataset page offers the conversion).")
    lines = _count_lines(path)
    if n * 2 > lines:
        return None  # mostly one value a line: JSON Lines with a few broken lines
    info["lines"] = lines
    return Sniff(fatal="multiline_json", document=info,
                 message=f"{path.name} holds {n} JSON value(s) spread over {lines} lines; JSONL needs each row on one "
                         "line. Convert it (the Dataset page offers the conversion) or re-save with one object per "
                         "line (json.dumps without indent).")


def _first_line(f: BinaryIO) -> tuple[bytes, bool]:
    """The first non-blank line (capped) and whether everything after it is blank."""
    line = b""
    while True:
        line = f.readline(MAX_LINE_BYTES)
        if not line or line.strip(UTF8_BOM + b" \t\r\n"):
            break
    if len(line) >= MAX_LINE_BYTES and not line.endswith(b"\n"):
        return line, False
    while chunk := f.read(1 << 20):
        if chunk.strip():
            return line, False
    return line, True


def _count_lines(path: Path) -> int:
    n, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
            last = chunk[-1:]
    return n + (last != b"\n")


_WS = re.compile(r"[ \t\n\r]*")


class JsonDocument:
    """The rows of a file read as JSON: the elements of one top-level array, or each of several concatenated
    top-level values. Streams in chunks; raises ValueError (with the position) when the file is not JSON."""

    def __init__(self, path: Path, chunk: int = 1 << 20, max_value: int = 64 << 20) -> None:
        self.path = path
        self.chunk = chunk
        self.max_value = max_value
        self.is_array = False

    def __iter__(self) -> Iterator[Any]:
        decode = json.JSONDecoder().raw_decode
        utf8 = codecs.getincrementaldecoder("utf-8")()
        with self.path.open("rb") as f:
            buf, pos, eof = "", 0, False

            def more() -> None:
                nonlocal buf, pos, eof
                data = f.read(self.chunk)
                if pos:
                    buf, pos = buf[pos:], 0
                if not data:
                    eof = True
                    buf += utf8.decode(b"", final=True)
                else:
                    buf += utf8.decode(data)

            def skip_ws() -> None:
                nonlocal pos
                while True:
                    pos = _WS.match(buf, pos).end()  # type: ignore[union-attr]
                    if pos < len(buf) or eof:
                        return
                    more()

            def value() -> Any:
                nonlocal pos
                while True:
                    try:
                        v, end = decode(buf, pos)
                    except json.JSONDecodeError as exc:
                        if eof or len(buf) - pos > self.max_value:
                            raise ValueError(f"not JSON: {exc.msg} at character {exc.pos}") from None
                        more()
                        continue
                    if end == len(buf) and not eof:  # a number or literal may go on in the next chunk
                        more()
                        continue
                    pos = end
                    return v

            more()
            if buf.startswith("\ufeff"):
                pos = 1
            skip_ws()
            if buf[pos:pos + 1] == "[":
                self.is_array = True
                pos += 1
            first = True
            while True:
                skip_ws()
                if pos >= len(buf):
                    if self.is_array:
                        raise ValueError("the JSON array is not closed with ']'")
                    return
                if self.is_array:
                    if buf[pos] == "]":
                        pos += 1
                        skip_ws()
                        if pos < len(buf):
                            raise ValueError("data follows the JSON array's closing ']'")
                        return
                    if not first:
                        if buf[pos] != ",":
                            raise ValueError("expected ',' between the array's elements")
                        pos += 1
                        skip_ws()
                first = False
                yield value()

"""The line-by-line pass of the validator over a file or a byte range of it, and the merge of ranges read by
worker processes. Kept free of pydantic so that a worker process starts light."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any, Callable

import msgspec
from xxhash import xxh3_64_intdigest as _row_hash

from core.datasets.fastpath import FAST, REFUSED
from core.datasets.keys import key_count, key_tokens, repeated_keys
from core.datasets.reader import MAX_LINE_BYTES, UTF8_BOM
from core.datasets.rules import acceptor, judge
from core.datasets.stats import DuplicateFinder, Reservoir, row_chars

CHAR_SAMPLE = 100_000
PROGRESS_EVERY = 8 << 20

IssueRow = tuple["int | None", str, str, str]  # (line, field, rule, message)


class IssueLog:
    """Issues kept per rule up to a cap, every one counted."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept: list[IssueRow] = []
        self.counts: dict[str, int] = {}

    def add(self, line: int | None, field: str, rule: str, message: str) -> None:
        n = self.counts.get(rule, 0)
        self.counts[rule] = n + 1
        if n < self.cap:
            self.kept.append((line, field, rule, message))

    def absorb(self, other: IssueLog, line_offset: int) -> None:
        """Add another range's issues (its lines shifted), still keeping the first ``cap`` lines of each rule."""
        for line, field, rule, message in other.kept:
            self.kept.append((None if line is None else line + line_offset, field, rule, message))
        for rule, n in other.counts.items():
            self.counts[rule] = self.counts.get(rule, 0) + n
        by_rule: dict[str, int] = {}
        kept = []
        for issue in sorted(self.kept, key=_line_order):
            k = by_rule.get(issue[2], 0)
            if k < self.cap:
                by_rule[issue[2]] = k + 1
                kept.append(issue)
        self.kept = kept

    def ordered(self) -> list[IssueRow]:
        return sorted(self.kept, key=_line_order)

    @property
    def capped(self) -> bool:
        return any(n > self.cap for n in self.counts.values())


def _line_order(issue: IssueRow) -> int:
    return -1 if issue[0] is None else issue[0]


class Scan:
    """One streaming read of lines ``[begin, end)`` (byte offsets at line starts), judging rows as ``file_format``.

    Line numbers are counted from the range's first line; ``merge`` shifts them for ranges after the first.
    """

    def __init__(self, path: Path, file_format: str | None, *, bom: bool = False, cap: int = 1000,
                 long_row_chars: int = 32_768, token_sample: int = 2000, begin: int = 0, end: int | None = None,
                 spill_dir: str | None = None, tag: int = 0, seed: int = 0, spill_rows: int = 1_000_000) -> None:
        self.path = path
        self.file_format = file_format
        self.bom = bom and begin == 0
        self.long_row_chars = long_row_chars
        self.begin, self.end = begin, end
        self.errors = IssueLog(cap)
        self.warnings = IssueLog(cap)
        self.votes: dict[str, int] = {}
        self.lines = self.rows = self.valid = self.blank = self.parsed = self.crlf = self.bad_utf8 = 0
        self.first_crlf: int | None = None
        self.total_chars = 0
        self.long_rows = 0
        self.chars = Reservoir(CHAR_SAMPLE, seed=seed)
        self.spots = Reservoir(token_sample, seed=seed + 1)
        self.dups = DuplicateFinder(spill_rows, spill_dir=spill_dir, tag=tag)
        self.roles: dict[str, int] = {}
        self.labels: dict[bool, int] = {}
        self.duplicates: tuple[int, list[tuple[int, int]]] = (0, [])

    def run(self, progress: Callable[[float], None] | None = None) -> Scan:
        end = self.end if self.end is not None else self.path.stat().st_size
        span = max(1, end - self.begin)
        next_progress = self.begin + PROGRESS_EVERY
        decode = msgspec.json.Decoder().decode
        err = self.errors.add
        fmt, votes, roles = self.file_format, self.votes, self.roles
        accept = acceptor(fmt)
        typed, typed_accept = FAST.get(fmt, (None, None))  # type: ignore[arg-type]
        if fmt:
            votes[fmt] = 0
        chars, spots, long_row = self.chars, self.spots, self.long_row_chars
        dup_hashes, dup_lines = self.dups.arrays()
        dups_spill = self.dups.spill_rows
        row_hash = _row_hash
        bom = self.bom
        total_chars = rows = parsed = valid_rows = fast = 0
        chars_next, spots_next = chars.next, spots.next
        with self.path.open("rb", buffering=1 << 20) as f:
            f.seek(self.begin)
            readline = f.readline
            lineno, offset = 0, self.begin
            while offset < end:
                raw = readline(MAX_LINE_BYTES)
                if not raw:
                    break
                lineno += 1
                start = offset
                offset += len(raw)
                if progress and offset >= next_progress:
                    progress(min(1.0, (offset - self.begin) / span))
                    next_progress = offset + PROGRESS_EVERY
                if len(raw) == MAX_LINE_BYTES and raw[-1:] != b"\n":
                    offset += _skip_line(f)
                    rows += 1
                    err(lineno, "", "line_too_long", f"The line is over {MAX_LINE_BYTES >> 20} MiB and was not read; "
                                                     "split the row into shorter ones or drop it.")
                    continue
                if start == 0 and bom:
                    raw = raw[3:]
                    start = 3
                s = raw.strip()
                if not s:
                    self.blank += 1
                    self.warnings.add(lineno, "", "blank_line", "Blank line (skipped); remove it to keep the file tidy.")
                    continue
                rows += 1
                if raw[-2:] == b"\r\n":
                    self.crlf += 1
                    if self.first_crlf is None:
                        self.first_crlf = lineno
                n = -1
                if typed is not None:
                    try:
                        n = typed_accept(typed(s), roles, s)
                    except REFUSED:
                        pass
                if n >= 0:
                    fast += 1
                else:
                    try:
                        row = decode(s)
                        valid = True
                    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                        row = self._undecodable(lineno, s)
                        if row is _UNREAD:
                            continue
                        valid = False
                    keys_ok = not valid or key_tokens(s) == key_count(row)
                    if keys_ok and valid and type(row) is dict and (n := accept(row, roles)) >= 0:
                        fast += 1
                    else:
                        parsed += 1
                        row_format, problems = judge(row, fmt)
                        if not keys_ok:
                            problems = problems + repeated_keys(s)
                        if row_format is not None:
                            votes[row_format] = votes.get(row_format, 0) + 1
                        if problems:
                            for field, rule, message in problems:
                                err(lineno, field, rule, message)
                            continue
                        if not valid:
                            continue
                        n = row_chars(row, fmt, roles)  # type: ignore[arg-type]
                        if fmt == "kto":
                            self.labels[row["label"]] = self.labels.get(row["label"], 0) + 1
                # A valid row of the file's format.
                total_chars += n
                if valid_rows == chars_next:
                    chars_next = chars.take(valid_rows, n)
                if valid_rows == spots_next:
                    spots_next = spots.take(valid_rows, (start, len(raw), lineno))
                valid_rows += 1
                if n > long_row:
                    self._long_row(lineno, n)
                dup_hashes.append(row_hash(s))
                dup_lines.append(lineno)
                if len(dup_hashes) >= dups_spill:
                    self.dups.spill()
                    dup_hashes, dup_lines = self.dups.arrays()
        self.lines = lineno
        self.total_chars += total_chars
        self.rows += rows
        self.parsed += parsed + fast
        self.valid += valid_rows
        chars.seen = spots.seen = valid_rows
        if fmt:
            votes[fmt] += fast
        return self

    def _undecodable(self, lineno: int, s: bytes) -> Any:
        """Name why the line does not decode; the row with bad bytes replaced when that is all that is wrong."""
        try:
            s.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad_utf8 += 1
            self.errors.add(lineno, "", "invalid_utf8",
                            f"Byte 0x{s[exc.start]:02x} at byte {exc.start + 1} of the line is not UTF-8; save the "
                            "file as UTF-8 (this looks like Latin-1 or Windows-1252 text) or fix the line.")
            try:
                return msgspec.json.decode(s.decode("utf-8", "replace").encode())
            except (msgspec.DecodeError, RecursionError):
                return _UNREAD
        self.errors.add(lineno, "", "invalid_json", json_error_message(s))
        return _UNREAD

    def _long_row(self, lineno: int, n: int) -> None:
        self.long_rows += 1
        self.warnings.add(lineno, "", "long_row",
                          f"The row has {n:,} characters of content (over {self.long_row_chars:,}); it will be "
                          "truncated at max_length and slows training; split or shorten it if that is unintended.")

    # -- ranges read in parallel ----------------------------------------------------------------------------

    def for_merge(self) -> Scan:
        """Ready to pickle back to the parent; a range that spilled duplicates to files hands them all over as files."""
        if self.dups.spilled:
            self.dups.spill()
        return self

    def merge(self, other: Scan) -> None:
        """Take in the next range's results (its lines follow this scan's lines)."""
        off = self.lines
        self.errors.absorb(other.errors, off)
        self.warnings.absorb(other.warnings, off)
        for name in ("rows", "valid", "blank", "parsed", "crlf", "bad_utf8", "total_chars", "long_rows", "lines"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if self.first_crlf is None and other.first_crlf is not None:
            self.first_crlf = other.first_crlf + off
        for mine, theirs in ((self.votes, other.votes), (self.roles, other.roles), (self.labels, other.labels)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        rng = random.Random(off)
        self.chars.merge(other.chars, rng)
        other.spots.items = [(a, b, line + off) for a, b, line in other.spots.items]
        self.spots.merge(other.spots, rng)
        self.dups.adopt(other.dups, off)


_UNREAD = object()


def _skip_line(f: Any) -> int:
    n = 0
    while chunk := f.readline(1 << 20):
        n += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return n


def json_error_message(s: bytes) -> str:
    """Why a line is not JSON, in the standard library's words (with the column) where it can say."""
    import json

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    fix = "fix the line or drop it."
    if s.startswith(UTF8_BOM):
        return ("The line starts with a byte order mark (U+FEFF), which only the start of a file may carry (were "
                f"files joined together?); remove it.")
    try:
        json.loads(s, parse_constant=no_constant)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            rest = exc.doc[exc.pos:exc.pos + 1]
            hint = (" (a comma after the object? JSON Lines has none between rows)" if rest == "," else
                    " (two objects on one line? put each on its own line)" if rest in "{[" else "")
            return f"Not valid JSON: text after the end of the value{hint} at column {exc.colno}; {fix}"
        return f"Not valid JSON: {exc.msg} at column {exc.colno}; {fix}"
    except RecursionError:
        return f"Not valid JSON here: nested too deeply; {fix}"
    except ValueError as exc:
        return f"Not valid JSON: {exc}; use null or a number, or {fix}"
    if _SURROGATE.search(s):
        return f"The line holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff), which is not valid text; {fix}"
    return f"Not valid JSON: a number is out of range (over about 1.8e308); {fix}"


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def guess_format(path: Path, bom: bool) -> str | None:
    """The format of the first row that has one (the pass assumes it; the final count may overrule it)."""
    decode = msgspec.json.Decoder().decode
    with path.open("rb") as f:
        first = True
        while raw := f.readline(MAX_LINE_BYTES):
            if first and bom:
                raw = raw.removeprefix(UTF8_BOM)
            first = False
            try:
                row = decode(raw)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                continue
            fmt, _ = judge(row, None)
            if fmt:
                return fmt
    return None


# -- parallel ---------------------------------------------------------------------------------------------------

PARALLEL_MIN_BYTES = 48 << 20


def workers_for(size: int) -> int:
    """Worker processes for a file of ``size`` bytes: one per idle core, none for a small file. Cores busy with
    other work are not counted: a worker that only competes for a busy core costs its start and merge for nothing."""
    if size < PARALLEL_MIN_BYTES:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    if cpus < 2:
        return 1
    import psutil

    idle = cpus * (1 - psutil.cpu_percent(interval=0.2) / 100)  # now, not the lagging load average
    return max(1, min(int(idle + 0.5), 8, size // (16 << 20)))


def split_ranges(path: Path, parts: int, first_extra: float = 0.0) -> list[tuple[int, int]]:
    """``parts`` byte ranges, each starting at the beginning of a line: the first ``first_extra`` of the file larger
    than the others, which are of about equal size."""
    size = path.stat().st_size
    rest = (1.0 - 1.0 / parts - first_extra) / max(1, parts - 1)
    cuts = [0]
    with path.open("rb") as f:
        for i in range(1, parts):
            f.seek(max(cuts[-1], int(size * (1.0 - rest * (parts - i)))))
            if f.tell() > 0:
                f.seek(f.tell() - 1)
                f.readline()  # to the start of the next line (a range starting at a line start keeps it)
            pos = f.tell()
            if cuts[-1] < pos < size:
                cuts.append(pos)
    return list(zip(cuts, cuts[1:] + [size]))


class _ProgressFile:
    """A worker's progress, written to a small file the parent polls (workers cannot call the parent back)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, fraction: float) -> None:
        tmp = f"{self.path}.tmp"
        Path(tmp).write_text(f"{fraction:.4f}")
        os.replace(tmp, self.path)  # the parent never reads a half-written (empty) file as no progress


def _run_range(args: dict[str, Any]) -> Scan:
    progress = _ProgressFile(args.pop("progress_file"))
    return Scan(**args).run(progress).for_merge()


def scan_file(path: Path, file_format: str | None, *, progress: Callable[[float], None] | None = None,
              workers: int | None = None, **opts: Any) -> Scan:
    """One pass over the whole file, in ``workers`` processes when it is large (the ranges merged in order);
    duplicates are resolved before returning (``Scan.duplicates``)."""
    import tempfile

    size = path.stat().st_size
    n = workers or workers_for(size)
    # This process reads the first range while the workers start, so it takes a little more than its share.
    ranges = split_ranges(path, n, HEAD_START_SHARE) if n > 1 else [(0, size)]
    cap = opts.get("cap", 1000)
    if len(ranges) == 1:
        scan = Scan(path, file_format, **opts).run(progress)
        scan.duplicates = scan.dups.finish(cap)
        return scan
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    with tempfile.TemporaryDirectory(prefix="ftc-validate-") as spill:
        jobs = [dict(path=path, file_format=file_format, begin=b, end=e, spill_dir=spill, tag=i, seed=i,
                     progress_file=f"{spill}/progress.{i}", **opts) for i, (b, e) in enumerate(ranges)]
        (b0, e0), others = ranges[0], ranges[1:]

        def head_progress(fraction: float) -> None:
            if progress:
                progress(min(1.0, (fraction * (e0 - b0) + _polled_bytes(jobs[1:], others)) / size))

        # spawn, not fork: the console's server runs threads, and a forked child could inherit a held lock.
        with ProcessPoolExecutor(max_workers=len(jobs) - 1, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_run_range, job) for job in jobs[1:]]
            head_job = {k: v for k, v in jobs[0].items() if k != "progress_file"}
            head = Scan(**head_job).run(head_progress).for_merge()
            while wait(futures, timeout=0.25, return_when=FIRST_EXCEPTION).not_done:
                head_progress(1.0)
            parts = [f.result() for f in futures]
        if progress:
            progress(1.0)
        for part in parts:
            head.merge(part)
        head.duplicates = head.dups.finish(cap)
        return head


HEAD_START_SHARE = 0.03  # of the file: about what this process reads while a worker process starts


def _polled_bytes(jobs: list[dict[str, Any]], ranges: list[tuple[int, int]]) -> float:
    done = 0.0
    for job, (b, e) in zip(jobs, ranges):
        try:
            done += float(Path(job["progress_file"]).read_text() or 0) * (e - b)
        except (OSError, ValueError):
            pass
    return done


def line_problems(s: bytes, row: Any) -> list[tuple[str, str, str]]:
    """Problems only the raw line shows (a repeated key), beside the rules' problems of the decoded row."""
    return repeated_keys(s) if key_tokens(s) != key_count(row) else []


def iter_rows(path: Path, file_format: str | None, bom: bool) -> Any:
    """(line, stripped bytes, decoded row or None, valid) for every non-blank line, judged as ``file_format``:
    the rows the fixes keep are exactly the rows the validator counts as valid."""
    decode = msgspec.json.Decoder().decode
    with path.open("rb", buffering=1 << 20) as f:
        lineno = 0
        while raw := f.readline(MAX_LINE_BYTES):
            lineno += 1
            if len(raw) == MAX_LINE_BYTES and raw[-1:] != b"\n":
                _skip_line(f)
                yield lineno, b"", None, False
                continue
            if lineno == 1 and bom:
                raw = raw.removeprefix(UTF8_BOM)
            s = raw.strip()
            if not s:
                continue
            try:
                row = decode(s)
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                yield lineno, s, None, False
                continue
            yield lineno, s, row, not judge(row, file_format)[1] and not line_problems(s, row)

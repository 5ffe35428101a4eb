"""Streaming statistics in bounded memory: row sizes, uniform samples, percentiles and exact duplicates."""

from __future__ import annotations

import math
import random
import tempfile
from array import array
from pathlib import Path
from typing import Any

from core.datasets.formats import SHAREGPT_ROLES


def _content_chars(value: Any, roles: dict[str, int]) -> int:
    """Characters of a string, or of the contents of a message list (counting its roles)."""
    if type(value) is str:
        return len(value)
    n = 0
    for m in value:
        c = m.get("content")
        if type(c) is str:
            n += len(c)
        r = m["role"]
        roles[r] = roles.get(r, 0) + 1
    return n


def row_chars(row: dict[str, Any], fmt: str, roles: dict[str, int]) -> int:
    """Characters of what a valid row trains on (for DPO: the prompt and the longer answer); adds its roles."""
    if fmt == "chat":
        return _content_chars(row["messages"], roles)
    if fmt == "text":
        return len(row["text"])
    if fmt == "sharegpt":
        n = 0
        for t in row["conversations"]:
            n += len(t["value"])
            r = SHAREGPT_ROLES[t["from"].lower()]
            roles[r] = roles.get(r, 0) + 1
        return n
    if fmt == "instruction":
        return len(row["instruction"]) + len(row.get("input") or "") + len(row["output"])
    if fmt == "dpo":
        return _content_chars(row["prompt"], roles) + max(_content_chars(row["chosen"], roles),
                                                          _content_chars(row["rejected"], roles))
    return _content_chars(row["prompt"], roles) + _content_chars(row["completion"], roles)


class Reservoir:
    """A uniform sample of at most ``size`` items from a stream of unknown length (Li's algorithm L: one random
    draw per replacement, not per item). ``next`` is the index of the next item the sample wants, so a hot loop can
    compare one integer and call ``take`` only then (setting ``seen`` itself at the end)."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.items: list[Any] = []
        self.seen = 0
        self.next = 0
        self._rng = random.Random(seed)
        self._w = 1.0

    def add(self, item: Any) -> None:
        i = self.seen
        self.seen = i + 1
        if i == self.next:
            self.take(i, item)

    def take(self, i: int, item: Any) -> int:
        """Item number ``i`` (0-based; ``i == next``); returns the new ``next``."""
        if i < self.size:
            self.items.append(item)
            self.next = i + 1
            if self.next == self.size:
                self._w = math.exp(math.log(self._rng.random() or 1e-300) / self.size)
                self._skip()
        else:
            self.items[self._rng.randrange(self.size)] = item
            self._w *= math.exp(math.log(self._rng.random() or 1e-300) / self.size)
            self._skip()
        return self.next

    def _skip(self) -> None:
        if self._w >= 1.0:  # only when random() returned 0; never replace again rather than divide by zero
            self.next = math.inf  # type: ignore[assignment]
            return
        self.next += int(math.log(self._rng.random() or 1e-300) / math.log1p(-self._w)) + 1

    @property
    def sampled(self) -> bool:
        return self.seen > self.size

    def merge(self, other: Reservoir, rng: random.Random) -> None:
        """Become a uniform sample of both streams: each side contributes in proportion to what it saw."""
        total = self.seen + other.seen
        if total <= self.size:
            self.items = self.items + other.items
        else:
            left, right = self.seen, other.seen
            take_left = 0
            for _ in range(self.size):  # draws without replacement from the two populations
                if rng.randrange(left + right) < left:
                    take_left += 1
                    left -= 1
                else:
                    right -= 1
            take_right = self.size - take_left
            self.items = rng.sample(self.items, take_left) + rng.sample(other.items, take_right)
            self._w, self.next = 0.0, math.inf  # type: ignore[assignment]  # merged samples take no more items
        self.seen = total


def percentiles(values: list[int], *, total: int | None = None, count: int | None = None) -> dict[str, Any]:
    """Nearest-rank percentiles of ``values``; ``total``/``count`` give the exact mean when values are a sample."""
    if not values:
        return {}
    s = sorted(values)
    n = len(s)

    def rank(q: float) -> int:
        return s[max(0, math.ceil(q / 100 * n) - 1)]

    mean = (total / count) if total is not None and count else sum(s) / n
    return {"min": s[0], "p50": rank(50), "p90": rank(90), "p95": rank(95), "p99": rank(99), "max": s[-1],
            "mean": round(mean, 1)}


class DuplicateFinder:
    """Exact duplicate rows by 64-bit hash (xxh3: the same in every process), in 12 bytes a row. Beyond ``spill_rows`` the (hash, line) pairs go to
    hash-partitioned files, so memory stays bounded whatever the file's length; finding the repeats then reads one
    partition at a time. Worker processes reading ranges of one file hand their pairs back in memory (numpy stays
    out of them), or, past ``spill_rows``, as files in a shared folder under their ``tag``; the parent ``adopt``s
    them with their line offsets."""

    BUCKETS = 16

    def __init__(self, spill_rows: int = 1_000_000, spill_dir: str | None = None, tag: int = 0) -> None:
        self._hashes = array("Q")
        self._lines = array("I")
        self.spill_rows = spill_rows
        self._shared_dir = spill_dir
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        self.tag = tag
        self._parts: dict[int, int] = {}  # tag -> line offset of every range spilled to files

    def add(self, row_hash: int, line: int) -> None:
        self._hashes.append(row_hash)
        self._lines.append(line)
        if len(self._hashes) >= self.spill_rows:
            self.spill()

    @property
    def spilled(self) -> bool:
        return bool(self._parts)

    def arrays(self) -> tuple[array, array]:
        """The current (hashes, lines) arrays, for a caller that appends to them itself and calls ``spill``
        when they reach ``spill_rows``."""
        return self._hashes, self._lines

    def _dir(self) -> Path:
        if self._shared_dir:
            return Path(self._shared_dir)
        if self._own_dir is None:
            self._own_dir = tempfile.TemporaryDirectory(prefix="ftc-dups-")
        return Path(self._own_dir.name)

    def spill(self) -> None:
        import numpy as np

        self._parts.setdefault(self.tag, 0)
        if not self._hashes:
            return
        d = self._dir()
        h = np.frombuffer(self._hashes, dtype=np.uint64)
        lines = np.frombuffer(self._lines, dtype=np.uint32)
        bucket = h >> np.uint64(60)
        for b in range(self.BUCKETS):
            mask = bucket == b
            with open(d / f"{b}.{self.tag}.h", "ab") as fh, open(d / f"{b}.{self.tag}.l", "ab") as fl:
                h[mask].tofile(fh)
                lines[mask].tofile(fl)
        del h, lines, bucket, mask
        self._hashes = array("Q")
        self._lines = array("I")

    def adopt(self, other: DuplicateFinder, line_offset: int) -> None:
        """Take in another range's pairs, its lines shifted by ``line_offset``: those it spilled stay in their files
        (same shared folder), those it kept in memory join this finder's."""
        for tag, off in other._parts.items():
            self._parts[tag] = off + line_offset
        if other._hashes:
            import numpy as np

            self._hashes.extend(other._hashes)
            shifted = np.frombuffer(other._lines, dtype=np.uint32) + np.uint32(line_offset)
            self._lines.frombytes(shifted.astype(np.uint32).tobytes())
            if len(self._hashes) >= self.spill_rows:
                self.spill()

    def finish(self, keep: int) -> tuple[int, list[tuple[int, int]]]:
        """(number of rows that repeat an earlier row, the first ``keep`` of them as (line, first line))."""
        if not self._hashes and not self._parts:
            return 0, []
        import numpy as np

        count, found = 0, []
        try:
            if not self._parts:
                h = np.frombuffer(self._hashes, dtype=np.uint64)
                lines = np.frombuffer(self._lines, dtype=np.uint32)
                bucket = h >> np.uint64(60)
                parts = ((h[bucket == b], lines[bucket == b]) for b in range(self.BUCKETS))
            else:
                self.spill()
                parts = (self._load(np, b) for b in range(self.BUCKETS))
            for hs, ls in parts:
                c, pairs = _repeats(np, hs, ls, keep)
                count += c
                found = sorted(found + pairs)[:keep]
        finally:
            if self._own_dir is not None:
                self._own_dir.cleanup()
                self._own_dir = None
            self._hashes = array("Q")
            self._lines = array("I")
        return count, found

    def _load(self, np: Any, b: int) -> tuple[Any, Any]:
        d = self._dir()
        hs, ls = [], []
        for tag, off in self._parts.items():
            if (d / f"{b}.{tag}.h").exists():
                hs.append(np.fromfile(d / f"{b}.{tag}.h", dtype=np.uint64))
                ls.append(np.fromfile(d / f"{b}.{tag}.l", dtype=np.uint32).astype(np.int64) + off)
        if not hs:
            return np.empty(0, np.uint64), np.empty(0, np.int64)
        return np.concatenate(hs), np.concatenate(ls)


def _repeats(np: Any, hs: Any, ls: Any, keep: int) -> tuple[int, list[tuple[int, int]]]:
    if len(hs) < 2:
        return 0, []
    order = np.lexsort((ls, hs))
    hs, ls = hs[order], ls[order]
    repeat = np.empty(len(hs), dtype=bool)
    repeat[0] = False
    np.equal(hs[1:], hs[:-1], out=repeat[1:])
    idx = np.arange(len(hs))
    group_start = np.maximum.accumulate(np.where(repeat, 0, idx))
    dup_lines, first_lines = ls[repeat], ls[group_start[repeat]]
    if len(dup_lines) > keep:
        pick = np.argpartition(dup_lines, keep - 1)[:keep] if keep else np.array([], dtype=np.int64)
        dup_lines, first_lines = dup_lines[pick], first_lines[pick]
    return int(repeat.sum()), sorted(zip(dup_lines.tolist(), first_lines.tolist()))

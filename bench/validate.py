"""Benchmark: our streaming validator against pandas.read_json(lines=True) and datasets.load_dataset("json").

    python bench/validate.py                 # 1,000,000 chat rows (~600 MB), all three tools
    python bench/validate.py --rows 100000   # a quick run
    python bench/validate.py --tools ours,datasets --keep
    python bench/validate.py --rows 200000 --repeat 3   # medians of interleaved runs on a busy machine

Generates a chat JSONL file, then runs each tool in its own subprocess (one after the other, so they do not
compete for the cores) and prints wall time, rows/s, CPU time and the peak RSS of that subprocess and its worker
processes, and our ratio to each baseline. CPU time counts all threads and waited-for workers, imports included:
on a busy machine it is steadier than wall time, which then mostly measures the wait for a core. Our run checks
every rule and computes the char-length statistics and duplicates, without a tokenizer (issue 3). Targets: our
wall time at most the datasets loader's, our peak RSS at most 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("the model learns from every example that we give it and the loss goes down as training goes on while the "
         "evaluation split tells us whether it generalises beyond what it has seen answer question reverse capital "
         "city river mountain number seven eleven because therefore however summary explain briefly").split()


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Chat rows of about 600 bytes: a system prompt, a question and an answer of random words."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            user = " ".join(rng.choices(WORDS, k=rng.randint(10, 34)))
            answer = " ".join(rng.choices(WORDS, k=rng.randint(24, 72)))
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "You are a concise and helpful assistant."},
                {"role": "user", "content": f"Question {i}: {user}?"},
                {"role": "assistant", "content": answer + "."},
            ]}) + "\n")


def run_tool(tool: str, path: str, scratch: str, workers: int | None = None) -> dict:
    """Runs inside the child process: import, then the operation; prints seconds and rows."""
    t0 = time.perf_counter()
    if tool == "ours":
        sys.path.insert(0, str(ROOT))
        from core.datasets.validate import validate_file

        t1 = time.perf_counter()
        rep = validate_file(path, workers=workers)
        rows, extra = rep.valid_rows, {"errors": sum(rep.stats["error_counts"].values()),
                                       "duplicates": rep.stats["duplicates"]}
    elif tool == "pandas":
        import pandas as pd

        t1 = time.perf_counter()
        rows, extra = len(pd.read_json(path, lines=True)), {}
    elif tool == "datasets":
        import datasets

        datasets.disable_progress_bars()
        t1 = time.perf_counter()
        ds = datasets.load_dataset("json", data_files=path, split="train", cache_dir=scratch)
        rows, extra = len(ds), {}
    else:
        raise SystemExit(f"unknown tool {tool}")
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "op_s": t2 - t1, "rows": rows, **extra}


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(tool: str, path: Path, workers: int | None = None) -> dict:
    """Run one tool in a fresh subprocess. Peak RSS is the larger of the process's own peak (``wait4``) and the
    peak of its whole process tree sampled every 20 ms (our validator reads large files in worker processes)."""
    scratch = tempfile.mkdtemp(prefix=f"bench-{tool}-", dir=path.parent)
    try:
        with tempfile.TemporaryFile() as out:
            cmd = [sys.executable, __file__, "--run-tool", tool, str(path), "--scratch", scratch]
            if workers:
                cmd += ["--workers", str(workers)]
            proc = subprocess.Popen(cmd, stdout=out, cwd=ROOT)
            root, tree_peak = psutil.Process(proc.pid), 0
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                tree_peak = max(tree_peak, _tree_rss(root))
                time.sleep(0.02)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise SystemExit(f"{tool} failed")
            out.seek(0)
            res = json.loads(out.read().decode().strip().splitlines()[-1])
        res["peak_rss_mb"] = max(usage.ru_maxrss * 1024, tree_peak) / 2**20  # ru_maxrss is in KiB on Linux
        res["cpu_s"] = usage.ru_utime + usage.ru_stime  # all threads, and the worker processes it waited for
        return res
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the generated file goes")
    ap.add_argument("--tools", default="ours,pandas,datasets")
    ap.add_argument("--keep", action="store_true", help="keep the generated file for another run")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each tool, interleaved; the medians are compared")
    ap.add_argument("--workers", type=int, help="our worker processes (default: one per idle core)")
    ap.add_argument("--run-tool", nargs=2, metavar=("TOOL", "FILE"), help=argparse.SUPPRESS)
    ap.add_argument("--scratch", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_tool:
        print(json.dumps(run_tool(a.run_tool[0], a.run_tool[1], a.scratch, a.workers)))
        return
    path = Path(a.dir) / f"ftc-bench-chat-{a.rows}.jsonl"
    if not path.exists():
        t = time.perf_counter()
        generate(path, a.rows)
        print(f"generated {path} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    size_mb = path.stat().st_size / 1e6
    print(f"{a.rows:,} chat rows, {size_mb:,.0f} MB, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    results: dict[str, dict] = {}
    runs: dict[str, list[dict]] = {}
    tools = a.tools.split(",")
    for i in range(a.repeat):  # interleaved, so a change in the machine's load hits every tool alike
        for tool in tools:
            r = measure(tool, path, a.workers if tool == "ours" else None)
            runs.setdefault(tool, []).append(r)
            _line(f"{tool} #{i + 1}" if a.repeat > 1 else tool, r, size_mb)
    for tool, rs in runs.items():
        results[tool] = r = {k: _median([x[k] for x in rs]) for k in rs[0]}
        r["peak_rss_mb"] = max(x["peak_rss_mb"] for x in rs)  # the bound holds for every run, not the median one
        if a.repeat > 1:
            _line(f"{tool} med", r, size_mb)
    ours = results.get("ours")
    if ours:
        _ratios(ours, results)
    if not a.keep:
        path.unlink()


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def _line(tool: str, r: dict, size_mb: float) -> None:
    print(f"{tool:<12} wall {r['op_s']:7.2f} s (+{r['import_s']:.2f} s import)  {r['rows'] / r['op_s']:>11,.0f} rows/s"
          f"  {size_mb / r['op_s']:6.1f} MB/s  CPU {r['cpu_s']:7.2f} s  peak RSS {r['peak_rss_mb']:8.1f} MB"
          f"  rows {r['rows']:,.0f}", flush=True)


def _ratios(ours: dict, results: dict[str, dict]) -> None:
    print()
    for tool, r in results.items():
        if tool != "ours":
            print(f"ours / {tool:<9} wall {ours['op_s'] / r['op_s']:.2f}x (with imports "
                  f"{(ours['op_s'] + ours['import_s']) / (r['op_s'] + r['import_s']):.2f}x)  "
                  f"CPU {ours['cpu_s'] / r['cpu_s']:.2f}x (with imports)  "
                  f"peak RSS {ours['peak_rss_mb'] / r['peak_rss_mb']:.2f}x")
    wall_ok = "datasets" not in results or ours["op_s"] <= results["datasets"]["op_s"]
    print(f"\ntargets: wall <= datasets: {'met' if wall_ok else 'MISSED'}"
          f"; peak RSS <= 150 MB: {'met' if ours['peak_rss_mb'] <= 150 else 'MISSED'}")


if __name__ == "__main__":
    main()

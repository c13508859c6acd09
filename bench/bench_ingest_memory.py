"""Benchmark (issue 10 §4, memory and scale): peak memory of `jiefeng ingest FILE` against the
file's event count. Target: flat past the state cache's size; a 5,000,000-event file below
1 GB.

- baseline: a child process that imports `jiefeng.cli` and opens a fresh store (peak RSS).
- ingest: `jiefeng ingest FILE --db fresh.db --quiet` per size, each in a fresh process (a
  file over one transaction is pipelined: the command's process and its writer, and from
  three transactions a second folding process). Peak RSS of the command's process and of its
  largest child (VmHWM, read from /proc while it runs) and of all of them together (the sum
  of their PSS, sampled every POLL_SECONDS), as ratios to the baseline and to the smallest
  size. PSS (proportional set size) counts a page shared by n processes as 1/n in each: the
  children are forked from the command and share the pages of the modules it had imported,
  which a sum of RSS would count three times. The sum of RSS is printed too.
- list path (sizes up to --compare-up-to): the same file read whole, cut into a list of lines
  and ingested from that list with a result kept per line, as `jiefeng ingest` did before.

Files are synthetic portfolios (`jiefeng.batch.synthetic`) of PORTFOLIO_ACCOUNTS accounts
each, with distinct seeds and their ids prefixed, each written to disk as it is generated,
then merged in time order into one file (or, with `--order concatenated`, one after the
other, so that ingest sorts it): no file is ever held in memory. Linux only (/proc).

What grows with a file is mostly its accounts: each keeps a state of about 10 KB (about twice
that resident) in the folding process's cache (bounded at 50,000 accounts,
`JIEFENG_CACHE_ACCOUNTS`), growing with its history, so the output names the accounts of each
file.

With `--cache-accounts N` the ingest runs with `JIEFENG_CACHE_ACCOUNTS=N`: a cache smaller than
the file's accounts shows what "flat past the cache size" means. A batch (one transaction of
10,000 events) still holds the states of the accounts it touches, so the bound is the cache
plus the batches in flight; a file is decided account by account between sweeps, so an
account is loaded about once per segment, whatever the cache (in one global time order a
cache below the accounts reloaded most of them at every batch).

Usage: python bench/bench_ingest_memory.py [--events 1000000] [--compare-up-to 1000000]
           [--order merged|concatenated] [--cache-accounts N]
       (--events 5000000 adds the 5M file; sizes are 100k, 1M, 5M up to --events)
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SIZES = (100_000, 1_000_000, 5_000_000)
PORTFOLIO_ACCOUNTS = 1_000  # about 176,000 events over 18 months
POLL_SECONDS = 0.1
MB = 1024 * 1024

# What `jiefeng ingest` did before (same imports and collector settings as the command).
LIST_PATH = """
import gc, sys
from pathlib import Path
gc.set_threshold(200_000, 50, 1000)
from jiefeng import cli
from jiefeng.service.lines import event_lines
items = event_lines(Path(sys.argv[1]).read_bytes())
engine = cli._engine(sys.argv[2])
report = engine.ingest_file(items)
cli._audit_commands(engine.store, items, report)
print(f"accepted {report.accepted}, duplicate {report.duplicates}, rejected {report.rejected}")
"""

BASELINE = """
import resource, sys
import jiefeng.cli
from jiefeng.store.sql import SqlStore
SqlStore(sys.argv[1]).close()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def _prefixed(event: dict, prefix: str) -> dict:
    """Every id (`*_id`, `*_ids`) prefixed: portfolios with other seeds share no id."""
    out = {}
    for key, value in event.items():
        if key.endswith("_id") and isinstance(value, str):
            value = prefix + value
        elif key.endswith("_ids") and isinstance(value, list):
            value = [prefix + item for item in value]
        out[key] = value
    return out


def write_portfolios(target: int, folder: Path) -> list[Path]:
    """Portfolios written one at a time, together at least `target` events."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    paths: list[Path] = []
    written = 0
    while written < target:
        number = len(paths)
        events = generate_portfolio(PortfolioSpec(PORTFOLIO_ACCOUNTS, 18, seed=1_000 + number))
        path = folder / f"portfolio-{number}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for event in events:
                out.write(json.dumps(_prefixed(event, f"P{number}-"), ensure_ascii=False))
                out.write("\n")
        written += len(events)
        paths.append(path)
        del events
    return paths


def _timed_lines(path: Path) -> Iterator[tuple[str, str]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            # Every synthetic time is RFC 3339 at +08:00: the text sorts as the instant.
            yield json.loads(line)["at"], line


def write_file(portfolios: list[Path], count: int, path: Path,
               order: str) -> tuple[int, int]:
    """The first `count` events of the portfolios in time order (`merged`, streamed by
    heapq.merge), or of one portfolio after the other (`concatenated`: ingest sorts it):
    (events, accounts) written."""
    written = 0
    accounts: set[str] = set()
    if order == "merged":
        lines = heapq.merge(*(_timed_lines(p) for p in portfolios))
    else:
        lines = (timed for p in portfolios for timed in _timed_lines(p))
    with path.open("w", encoding="utf-8") as out:
        for _, line in lines:
            if written == count:
                break
            out.write(line)
            written += 1
            if '"type": "account_opened"' in line:
                accounts.add(json.loads(line)["account_id"])
    return written, len(accounts)


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    """The process's proportional set size (Linux 4.14 and later), else its RSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return _status_kb(pid, "VmRSS")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(child) for child in children.read().split())
    except OSError:
        pass
    return found


def measure(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `command`; peak RSS (bytes) of the process, of its largest child, of both at once
    (sampled), and the seconds it took."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=env)
    peaks: dict[int, int] = {}
    together = together_rss = 0
    while process.poll() is None:
        pids = [process.pid, *_children(process.pid)]
        pss = rss = 0
        for pid in pids:
            peaks[pid] = max(peaks.get(pid, 0), _status_kb(pid, "VmHWM"))
            pss += _pss_kb(pid)
            rss += _status_kb(pid, "VmRSS")
        together = max(together, pss)
        together_rss = max(together_rss, rss)
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    stdout = process.stdout.read().decode(errors="replace") if process.stdout else ""
    # Exit 2: some lines rejected. Portfolios merged into one store meet each other's
    # operator commands (a sweep reaches every account), so a few appeals find no hold.
    if process.returncode not in (0, 2):
        raise SystemExit(f"{command[:2]} failed ({process.returncode}): {stdout[-2000:]}")
    main = peaks.pop(process.pid, 0)
    return {"main": main * 1024, "child": max(peaks.values(), default=0) * 1024,
            "together": together * 1024, "together_rss": together_rss * 1024,
            "seconds": seconds,
            "totals": stdout.strip().splitlines()[-1] if stdout.strip() else "?"}


def baseline_bytes(folder: Path) -> int:
    completed = subprocess.run([sys.executable, "-c", BASELINE, str(folder / "baseline.db")],
                               capture_output=True, text=True, check=True)
    return int(completed.stdout.split()[-1])


def sizes_for(events: int) -> list[int]:
    if events < SIZES[0]:
        return [max(1_000, events // 10), events]
    return [size for size in SIZES if size < events] + [events]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="largest file (sizes: 100k, 1M, 5M below it, and this)")
    parser.add_argument("--compare-up-to", type=int, default=1_000_000,
                        help="also run the list path for files up to this many events")
    parser.add_argument("--order", choices=("merged", "concatenated"), default="merged",
                        help="merged: the file in time order (the common case); "
                             "concatenated: portfolio after portfolio, so ingest sorts it")
    parser.add_argument("--tmp", default=None, help="folder for the files (default: $TMPDIR)")
    parser.add_argument("--cache-accounts", type=int, default=None,
                        help="run the ingest with JIEFENG_CACHE_ACCOUNTS set to this")
    args = parser.parse_args()
    env = None
    if args.cache_accounts is not None:
        env = {**os.environ, "JIEFENG_CACHE_ACCOUNTS": str(args.cache_accounts)}
    jiefeng = str(Path(sys.executable).with_name("jiefeng"))
    sizes = sizes_for(args.events)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        portfolios = write_portfolios(sizes[-1], folder)
        files, accounts = {}, {}
        for size in sizes:
            files[size] = folder / f"events-{size}.jsonl"
            written, accounts[size] = write_file(portfolios, size, files[size], args.order)
            assert written == size
        for path in portfolios:
            path.unlink()
        print(f"files ({args.order}): {', '.join(f'{s:,}' for s in sizes)} events "
              f"({len(portfolios)} portfolios of {PORTFOLIO_ACCOUNTS:,} accounts, "
              f"{time.perf_counter() - started:.0f} s to write); cpu count {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.2f}")
        base = baseline_bytes(folder)
        print(f"baseline (import jiefeng.cli, open a store): {base / MB:8.0f} MB   ratio 1.00")
        first: dict[str, float] = {}
        for size in sizes:
            path = files[size]
            runs = [("ingest", [jiefeng, "ingest", str(path), "--db",
                                str(folder / f"stream-{size}.db"), "--quiet"])]
            if size <= args.compare_up_to:
                runs.append(("list path", [sys.executable, "-c", LIST_PATH, str(path),
                                           str(folder / f"list-{size}.db")]))
            for name, command in runs:
                figures = measure(command, env)
                first.setdefault(name, figures["together"])
                print(f"{name:9} {size:>9,} events, {accounts[size]:6,} accounts "
                      f"({path.stat().st_size / MB:5,.0f} MB file): "
                      f"peak {figures['main'] / MB:6,.0f} MB folding + "
                      f"{figures['child'] / MB:5,.0f} MB largest child, "
                      f"together {figures['together'] / MB:6,.0f} MB (PSS; RSS "
                      f"{figures['together_rss'] / MB:,.0f}) = "
                      f"{figures['together'] / base:5.2f} x baseline, "
                      f"{figures['together'] / first[name]:5.2f} x its first size; "
                      f"{size / figures['seconds']:7,.0f} events/s ({figures['totals']})",
                      flush=True)
            (folder / f"stream-{size}.db").unlink(missing_ok=True)
            (folder / f"list-{size}.db").unlink(missing_ok=True)
        cache = args.cache_accounts or 50_000
        print(f"target: ingest flat past the state cache ({cache:,} accounts"
              f"{', JIEFENG_CACHE_ACCOUNTS' if args.cache_accounts else ''}), "
              "5,000,000 events below 1 GB (1024 MB)")


if __name__ == "__main__":
    main()

"""Benchmarks for the core (issue: the core): the pure fold and durable ingest into SQLite.

Figures are printed next to baselines measured in the same run on the same data, because these
machines are shared and noisy: absolute rates move, ratios much less.

- floor: json-parse the same JSON Lines file and insert its rows into SQLite (WAL,
  synchronous=NORMAL, 1,000 rows a transaction, unique event_id, index on account and time).
- ingest: `jiefeng ingest FILE` as a whole process (start-up, validation, fold, snapshots,
  effects; pipelined on two cores), as events/s and as a ratio to the floor. Target: >= 0.5.
  Also `--no-pipeline`, one process, for comparison.
- fold: the pure core folding the same (already parsed) events, per account in time order, on
  one core. Target: >= 100,000 events/s.

Input shapes (`--shape`, several comma-separated or `all`): `portfolio` (the default: one
synthetic portfolio in time order), `many-accounts` (ten times the accounts, each its first
months, interleaved), `long-histories` (36 months, twice the events an account), `shuffled`
(the portfolio's lines in random order: late arrivals everywhere, the file sorted on ingest).
A target met on one shape and missed on another is not met.

Usage: python bench/bench_core.py [--events 100000] [--repeat 3] [--shape portfolio]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

# The shapes of input (`--shape`): events per account and how the lines are laid out.
SHAPES = {
    # one portfolio, 18 months, in time order: about 170 events an account
    "portfolio": "18 months, about 170 events an account, in time order",
    # ten times the accounts, cut at the same count: each its first months, interleaved
    "many-accounts": "ten times the accounts, each its first two months, interleaved",
    # 36 months: twice the history an account
    "long-histories": "36 months, about 340 events an account, in time order",
    # the portfolio's lines in random order: every account's events arrive late
    "shuffled": "the portfolio's lines in random order (late arrivals everywhere)",
}


def make_events(target: int, shape: str = "portfolio") -> list[dict]:
    from jiefeng.batch.limits import MAX_ACCOUNTS, MIN_ACCOUNTS
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    per_account, months = {"many-accounts": (17, 18), "long-histories": (340, 36)}.get(
        shape, (170, 18))
    accounts = min(MAX_ACCOUNTS, max(MIN_ACCOUNTS, target // per_account))
    spec = PortfolioSpec(accounts=accounts, months=months, seed=11)
    if months > 18:  # ending before today: ingest rejects events ahead of its clock
        spec = replace(spec, start=spec.start.replace(year=spec.start.year - 2))
    events = generate_portfolio(spec)
    events = events[:target]
    if shape == "shuffled":
        random.Random(11).shuffle(events)
    return events


def floor_rate(path: Path, db_path: Path) -> float:
    started = time.perf_counter()
    connection = sqlite3.connect(db_path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
        "account_id TEXT, type TEXT NOT NULL, at_utc TEXT NOT NULL, body TEXT NOT NULL)")
    connection.execute("CREATE INDEX ix_events_account_time ON events (account_id, at_utc)")
    rows = []
    count = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            raw = json.loads(line)
            rows.append((raw["event_id"], raw.get("account_id"), raw["type"], raw["at"], line))
            if len(rows) == 1_000:
                connection.execute("BEGIN")
                connection.executemany(
                    "INSERT INTO events (event_id, account_id, type, at_utc, body) "
                    "VALUES (?, ?, ?, ?, ?)", rows)
                connection.execute("COMMIT")
                count += len(rows)
                rows = []
    if rows:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO events (event_id, account_id, type, at_utc, body) VALUES (?, ?, ?, ?, ?)",
            rows)
        connection.execute("COMMIT")
        count += len(rows)
    connection.close()
    return count / (time.perf_counter() - started)


def ingest_rate(path: Path, db_path: Path, count: int, *options: str) -> float:
    jiefeng = Path(sys.executable).with_name("jiefeng")
    started = time.perf_counter()
    subprocess.run([str(jiefeng), "ingest", str(path), "--db", str(db_path), "--quiet", *options],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return count / (time.perf_counter() - started)


def parsed_by_account(events: list[dict]) -> tuple[dict[str, list], Any]:
    """The events parsed, each account's in time order, and the scopes of the operator
    commands among them."""
    from jiefeng.domain.events import parse_event
    from jiefeng.domain.scopes import SCOPE_TYPES, Scopes, apply_scope_command

    scopes = Scopes()
    by_account: dict[str, list] = defaultdict(list)
    # In time order whatever the file's (a shuffled file is sorted on ingest too).
    for raw in sorted(events, key=lambda raw: datetime.fromisoformat(raw["at"])):
        event = parse_event(raw)
        if event.type in SCOPE_TYPES:
            scopes = apply_scope_command(scopes, event)
        elif getattr(event, "account_id", None):
            by_account[event.account_id].append(event)
    return by_account, scopes


def fold_rate(events: list[dict], decisions: bool = True) -> float:
    """The pure fold's events/s; `decisions=False` as a backtest's runs fold (without building
    the purchase decisions' effects, which they never read)."""
    from jiefeng.domain import core
    from jiefeng.policy.schema import default_policy

    policy = default_policy()
    by_account, scopes = parsed_by_account(events)
    total = sum(len(v) for v in by_account.values())
    started = time.perf_counter()
    for account_id, account_events in by_account.items():
        core.fold(account_id, account_events, policy, scopes, decisions=decisions)
    return total / (time.perf_counter() - started)


def bytecode_state() -> str:
    """Whether jiefeng's modules load from precompiled bytecode (`make setup` writes it, as pip
    does for an installed wheel) or are compiled by every process of every run (bytecode never
    written, e.g. under PYTHONDONTWRITEBYTECODE): a few tenths of a second of CPU per run."""
    import importlib.util

    import jiefeng.service.pipeline as probe

    source = Path(probe.__file__)
    cached = Path(importlib.util.cache_from_source(str(source)))
    if cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime:
        return "precompiled"
    return "compiled at each start (python -m compileall src, as make setup does)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--shape", default="portfolio",
                        help=f"comma-separated, of: {', '.join(SHAPES)}; or all")
    args = parser.parse_args()
    shapes = list(SHAPES) if args.shape == "all" else args.shape.split(",")
    unknown = [shape for shape in shapes if shape not in SHAPES]
    if unknown:
        parser.error(f"--shape: no shape {', '.join(unknown)} (of: {', '.join(SHAPES)})")
    for shape in shapes:
        run_shape(shape, args.events, args.repeat)


def run_shape(shape: str, target: int, repeat: int) -> None:
    events = make_events(target, shape)
    count = len(events)
    accounts = len({e.get("account_id") for e in events} - {None})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events),
                        encoding="utf-8")
        floors, ingests, singles, folds = [], [], [], []
        for n in range(repeat):
            floors.append(floor_rate(path, Path(tmp) / f"floor-{n}.db"))
            ingests.append(ingest_rate(path, Path(tmp) / f"ingest-{n}.db", count))
            singles.append(ingest_rate(path, Path(tmp) / f"single-{n}.db", count,
                                       "--no-pipeline"))
            folds.append(fold_rate(events))
    floor, ingest, single, fold = (statistics.median(x)
                                   for x in (floors, ingests, singles, folds))
    from jiefeng import native

    compiled = native.compiled_modules()  # `make native`; JIEFENG_NATIVE=0 runs the sources
    print(f"shape {shape}: {SHAPES[shape]}; {accounts:,} accounts")
    print(f"events: {count} mixed (synthetic portfolio), repeat {repeat}, "
          f"cpu count {os.cpu_count()}, domain: "
          + (f"{len(compiled)} of {len(native.NATIVE_MODULES)} hot modules compiled"
             if compiled else "Python sources")
          + f", bytecode {bytecode_state()}")
    print(f"floor  (json + sqlite insert, 1000/tx): {floor:12,.0f} events/s   ratio 1.00")
    print(f"ingest (jiefeng ingest, whole process): {ingest:12,.0f} events/s   "
          f"ratio {ingest / floor:.2f} of floor (target >= 0.50)")
    # Each round's ingest against the floor measured just before it: steadier where the
    # machine drifts between rounds (the ratio above divides medians taken over all rounds).
    pairs = sorted(i / f for i, f in zip(ingests, floors, strict=True))
    print(f"  ingest / floor round by round        : median {statistics.median(pairs):.2f} "
          f"(min {pairs[0]:.2f}, max {pairs[-1]:.2f})")
    print(f"ingest --no-pipeline (one process)    : {single:12,.0f} events/s   "
          f"ratio {single / floor:.2f} of floor")
    print(f"fold   (pure core, one core)          : {fold:12,.0f} events/s   "
          f"ratio {fold / floor:.2f} of floor (target >= 100,000 events/s)")


if __name__ == "__main__":
    main()

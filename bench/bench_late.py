"""Late arrivals: ingest cost when events come out of order, as a ratio to the same events
in time order, in the same run (the baseline).

A synthetic portfolio (the demo's generator) is ingested into a fresh SQLite store in
batches of `--batch` events (as API clients send them), in three shapes:

- in order: the events in time order (baseline);
- last first: each account's opening and last event first, then the rest in time order:
  every later event of an account is late (the audit's case: quadratic before checkpoints);
- shuffled windows: the openings first, then the log cut into windows of 2,000 events, each
  window's batches sent newest first, so most accounts see late events in every window.

Each shape stores the same events; the ratio is its time over the in-order time. A late event
costs a fold from the account's nearest checkpoint (every 16 events), so the ratios stay
flat as the history grows: run with a larger `--events` to see it.

Usage: python bench/bench_late.py [--events 20000] [--batch 500]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def portfolio(events: int) -> list[dict]:
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    accounts = max(100, events // 180)  # about 180 events per account over 18 months
    generated = generate_portfolio(PortfolioSpec(accounts=accounts, months=18, seed=5))
    return generated[:events]


def last_first(events: list[dict]) -> list[dict]:
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, event in enumerate(events):
        account = event.get("account_id")
        if account is None:
            continue
        if event["type"] == "account_opened":
            first[account] = index
        last[account] = index
    early = sorted({*first.values(), *(i for a, i in last.items() if a in first)})
    taken = set(early)
    return [events[i] for i in early] + [e for i, e in enumerate(events) if i not in taken]


def shuffled_windows(events: list[dict], batch: int, window: int = 2_000) -> list[list[dict]]:
    """Openings first (an event before its account's opening is rejected, not late), then
    each window's batches newest first."""
    opened = [e for e in events if e["type"] == "account_opened"]
    events = [e for e in events if e["type"] != "account_opened"]
    batches = [opened[i : i + batch] for i in range(0, len(opened), batch)]
    for start in range(0, len(events), window):
        chunk = events[start : start + window]
        pieces = [chunk[i : i + batch] for i in range(0, len(chunk), batch)]
        batches.extend(reversed(pieces))
    return batches


def run(batches: list[list[dict]]) -> tuple[float, int]:
    from jiefeng.service.engine import Engine
    from jiefeng.store.sql import SqlStore

    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(SqlStore(str(Path(folder) / "bench.db")), now=lambda: NOW)
        accepted = 0
        started = time.perf_counter()
        for batch in batches:
            items = list(enumerate(json.dumps(e) for e in batch))
            accepted += engine.ingest(items, batch_events=max(1, len(items))).accepted
        elapsed = time.perf_counter() - started
        engine.store.close()
    return elapsed, accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    if args.events < 1_000 or args.batch < 1:
        parser.error("--events must be at least 1000 and --batch at least 1")
    events = portfolio(args.events)

    def cut(seq: list[dict]) -> list[list[dict]]:
        return [seq[i : i + args.batch] for i in range(0, len(seq), args.batch)]

    shapes = {
        "in order": cut(events),
        "last first": cut(last_first(events)),
        "shuffled windows": shuffled_windows(events, args.batch),
    }
    print(f"{len(events):,} events, batches of {args.batch}")
    baseline = None
    for name, batches in shapes.items():
        elapsed, accepted = run(batches)
        baseline = baseline or elapsed
        print(f"  {name:17s} {elapsed:8.2f} s  {len(events) / elapsed:9,.0f} events/s  "
              f"ratio {elapsed / baseline:5.2f}  (accepted {accepted:,})")


if __name__ == "__main__":
    main()

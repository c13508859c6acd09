"""The backtest's summary (backtest.json from the accounts' runs) as the portfolio grows, as a
ratio to one pass over the same holds in the same run (the baseline).

A backtest folds accounts in parallel, then summarizes every account's runs in one process:
the figures per hold code, the frozen accounts per day for the charts, the hours to release.
That part does not shrink with more workers, so it must stay a small multiple of reading the
holds once, whatever the portfolio's size and however long its holds last.

It also measures the peak memory of summarizing the runs as an engine hands them back (each
pair added and dropped) against holding every run until the end, as a backtest did before.

Synthetic runs (no fold): `--accounts` accounts over a two-year window, each with `--holds`
holds of one of four codes, placed at a random instant, a third still in force at the end,
the others lasting up to `--max-days` days. The baseline is one pass over every hold that
computes its first and last local day (the least a summary by day must do).

Usage: python bench/bench_backtest_summary.py [--accounts 20000 100000] [--holds 2]
                                              [--max-days 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
import tracemalloc
from collections.abc import Iterator

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2025, 12, 31, tzinfo=dt.UTC)
CODES = ("overdue", "dormant", "password_lock", "score_below_threshold")
TIMEZONE = "Asia/Shanghai"


def synthetic_run_stream(accounts: int, holds: int, max_days: int, seed: int) -> Iterator:
    """The runs one at a time, as an engine hands them back."""
    from jiefeng.batch.backtest import AccountRun, Interval

    rng = random.Random(seed)
    span_seconds = int((END - START).total_seconds())
    for number in range(accounts):
        run = AccountRun(f"A{number:07d}", status_end="active")
        for _ in range(holds):
            start = START + dt.timedelta(seconds=rng.randrange(span_seconds))
            end = (None if rng.random() < 1 / 3
                   else start + dt.timedelta(seconds=rng.randrange(max_days * 86_400)))
            run.intervals.append(Interval(rng.choice(CODES), start, end,
                                          None if end is None else "time"))
        run.intervals.sort(key=lambda interval: (interval.start, interval.code))
        yield run


def synthetic_runs(accounts: int, holds: int, max_days: int, seed: int) -> list:
    return list(synthetic_run_stream(accounts, holds, max_days, seed))


def peak_mb(accounts: int, holds: int, max_days: int, streamed: bool) -> float:
    """Peak memory (MB, traced) of making the runs and summarizing them: `streamed`, each
    account's pair added to the summary as it is made and dropped (what a backtest does
    now); else every run made first and summarized at the end (what it did before)."""
    from jiefeng.batch.backtest import Window, new_tally
    from jiefeng.policy.schema import default_policy

    policy = default_policy()
    tracemalloc.start()
    try:
        pairs = zip(synthetic_run_stream(accounts, holds, max_days, 1),
                    synthetic_run_stream(accounts, holds, max_days, 2), strict=True)
        if not streamed:
            pairs = iter(list(pairs))
        tally = new_tally(Window(START, END), policy, policy, 10)
        for baseline, candidate in pairs:
            tally.add(baseline, candidate)
        tally.result({}, [])
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def one_pass(runs: list) -> float:
    """The baseline: every hold's first and last local day, once."""
    from jiefeng.domain.clock import local_date, zone

    tz = zone(TIMEZONE)
    started = time.perf_counter()
    for run in runs:
        for interval in run.intervals:
            local_date(interval.start, tz)
            local_date(interval.end or END, tz)
    return time.perf_counter() - started


def summary(baseline: list, candidate: list) -> float:
    from jiefeng.batch.backtest import Window, summarize
    from jiefeng.policy.schema import default_policy

    policy = default_policy()
    started = time.perf_counter()
    summarize(baseline, candidate, Window(START, END), baseline_policy=policy,
              candidate_policy=policy, selection={}, differing_sample=[])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--holds", type=int, default=2)
    parser.add_argument("--max-days", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--events", type=int, help="ignored: the runs are synthetic, no events "
                        "are folded (run_all.py passes it to every benchmark)")
    args = parser.parse_args()
    for accounts in args.accounts:
        baseline = synthetic_runs(accounts, args.holds, args.max_days, seed=1)
        candidate = synthetic_runs(accounts, args.holds, args.max_days, seed=2)
        passes, summaries = [], []
        for _ in range(args.repeat):
            passes.append(one_pass(baseline) + one_pass(candidate))
            summaries.append(summary(baseline, candidate))
        floor, took = statistics.median(passes), statistics.median(summaries)
        print(f"{accounts:>9,} accounts x {args.holds} holds (up to {args.max_days} days), "
              f"both sides: one pass {floor:6.2f} s; summary {took:6.2f} s, "
              f"ratio {took / floor:5.1f}")
    for accounts in args.accounts:
        held = peak_mb(accounts, args.holds, args.max_days, streamed=False)
        streamed = peak_mb(accounts, args.holds, args.max_days, streamed=True)
        print(f"{accounts:>9,} accounts: peak memory with every run held {held:7.1f} MB, "
              f"summarized as they come {streamed:6.1f} MB (ratio {streamed / held:.2f})")


if __name__ == "__main__":
    main()

"""Backtest rate: events replayed per second per worker, as a ratio to the pure fold measured
in the same run on the same events (the baseline).

A backtest replays every selected account under the baseline and the candidate policy, reading
its events from the store; the figure counts both: (2 x events) / seconds / workers. The
target is >= 0.70 of the in-process fold rate per worker, measured just before and just after
each backtest (the ratio is to the mean of the two). A backtest's runs fold without building
the purchase decisions' effects, which they never read (`core.fold(..., decisions=False)`);
that fold's rate is printed for reference, and the baseline stays the full fold. Engines
measured: local with one process, local with two, and Spark (local session, two cores,
reading an export made beforehand) when PySpark and Java are installed. For reference, the
pure fold is also run in two processes at once: what the machine's two cores give each of two
workers before any backtest overhead (two virtual cores may share a physical one).

Each engine is measured twice: as it runs (an account the candidate cannot reach, whose
baseline fold never read a setting the candidate changes, is folded once: see
jiefeng.batch.policy_reach), and with every account folded under both policies
(`reuse_unreached=False`: the engine's own cost per fold). The candidate here is a 120-day
cure period; the share of accounts it reaches is printed.

Shapes (`--shape`, comma-separated or `all`), as in bench_core.py: `portfolio` (the default),
`many-accounts` (ten times the accounts, each its first two months: more accounts per event,
so more per-account work per event), `long-histories` (36 months, twice the events an
account). The shuffled shape is left out: a backtest reads each account's events sorted from
the store, whatever order they were ingested in.

Usage: python bench/bench_backtest.py [--events 100000] [--repeat 3] [--shape portfolio]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_core import SHAPES, fold_rate, make_events, parsed_by_account  # noqa: E402


def candidate_policy():
    from jiefeng.policy.schema import default_policy_text, parse_policy_text

    text = default_policy_text().replace("[cure_probation]\ndays = 90 ",
                                         "[cure_probation]\ndays = 120")
    return parse_policy_text(text.replace('version = "', 'version = "bench-candidate-', 1))


def timed_backtest(db: str, workers: int, engine=None, reuse: bool = True) -> tuple[float, int]:
    from jiefeng.policy.schema import default_policy
    from jiefeng.service.backtest import BacktestSpec, run_backtest
    from jiefeng.service.engine import Engine
    from jiefeng.store.sql import SqlStore

    store = SqlStore(db, upgrade=False)
    spec = BacktestSpec(default_policy(), candidate_policy(), workers=workers,
                        reuse_unreached=reuse)
    started = time.perf_counter()
    result = run_backtest(db, store, Engine(store).scopes(), spec, engine=engine)
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed, result["accounts"]["compared"]


def _fold_in_child(events: list[dict], start, results) -> None:
    start.wait()  # both children fold at the same time
    results.put(fold_rate(events))


def concurrent_fold_rate(events: list[dict], processes: int = 2) -> float:
    """The pure fold in `processes` processes at once, events/s per process: what this
    machine's cores give each of that many workers with no backtest overhead at all (two
    virtual cores may share one physical core, and memory bandwidth is shared). A reference
    for the per-worker ratios of the multi-worker runs, not their baseline."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # this process has threads (the JVM gateway)
    start, results = context.Event(), context.Queue()
    children = [context.Process(target=_fold_in_child, args=(events, start, results))
                for _ in range(processes)]
    for child in children:
        child.start()
    start.set()
    rates = [results.get() for _ in children]
    for child in children:
        child.join()
    return statistics.mean(rates)


def empty_spark_job_seconds(runs: int = 5) -> float:
    """What a Spark job costs with nothing to do: two tasks through the Python workers, as a
    backtest's job runs them (median of `runs`, warm session). A reference for Spark's fixed
    cost per backtest."""
    from jiefeng.service.backtest_spark import spark_session

    spark = spark_session(2, None)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        spark.range(0, 2, 1, numPartitions=2).mapInArrow(_count_rows, "n bigint").collect()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def reached_share(events: list[dict]) -> float:
    """The share of accounts whose baseline fold reads a setting the candidate changes."""
    from jiefeng.batch.policy_reach import PolicyWatch
    from jiefeng.domain import core
    from jiefeng.policy.schema import default_policy

    watch = PolicyWatch(default_policy(), candidate_policy())
    by_account, scopes = parsed_by_account(events)
    reached = 0
    for account_id, account_events in by_account.items():
        watch.read = False
        core.fold(account_id, account_events, watch.policy, scopes)
        reached += watch.read
    return reached / len(by_account)


def _count_rows(batches):
    import pyarrow as pa

    yield pa.RecordBatch.from_pydict({"n": [sum(batch.num_rows for batch in batches)]})


# The input shapes of bench_core.py a backtest sees differently: it reads each account's events
# sorted from the store, so the order of a file's lines (the shuffled shape) does not reach it.
BACKTEST_SHAPES = ("portfolio", "many-accounts", "long-histories")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds; each measures the fold again, and the median ratio is "
                             "reported (these machines are shared: use 3 or more)")
    parser.add_argument("--shape", default="portfolio",
                        help=f"comma-separated, of: {', '.join(BACKTEST_SHAPES)}; or all")
    args = parser.parse_args()
    shapes = list(BACKTEST_SHAPES) if args.shape == "all" else args.shape.split(",")
    unknown = [shape for shape in shapes if shape not in BACKTEST_SHAPES]
    if unknown:
        parser.error(f"--shape: no shape {', '.join(unknown)} "
                     f"(of: {', '.join(BACKTEST_SHAPES)})")
    for shape in shapes:
        run_shape(shape, args.events, args.repeat)


def run_shape(shape: str, target: int, repeat: int) -> None:
    from jiefeng.service.engine import Engine
    from jiefeng.store.sql import SqlStore

    events = make_events(target, shape)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bt.db")
        engine = Engine(SqlStore(db))
        engine.ingest_file(list(enumerate(events)))
        with engine.store.read() as connection:
            account_events = connection.exec_driver_sql(
                "SELECT count(*) FROM events WHERE account_id IS NOT NULL").scalar_one()
            accounts = connection.exec_driver_sql(
                "SELECT count(DISTINCT account_id) FROM events "
                "WHERE account_id IS NOT NULL").scalar_one()
        spark_engine = None
        try:
            import pyspark  # noqa: F401

            from jiefeng.batch.export import export_events
            from jiefeng.service.backtest_spark import spark_pairs_from

            export_events(engine, Path(tmp) / "export")
            spark_engine = spark_pairs_from(Path(tmp) / "export", None)
            timed_backtest(db, 2, spark_engine)  # warm-up: the JVM and the session start
        except ImportError:
            pass
        folds: list[float] = []
        ceilings: list[float] = []
        ratios: dict[str, list[float]] = {}
        rates: dict[str, list[float]] = {}
        runs = [(f"backtest local, {w} worker(s)", w, None, True) for w in (1, 2)]
        if spark_engine is not None:
            runs.append(("backtest spark (local session), 2 workers", 2, spark_engine, True))
        runs += [(f"{label}, every account twice", w, e, False) for label, w, e, _ in runs]
        job_seconds: list[float] = []
        lean: list[float] = []
        for round_number in range(repeat):
            fold = fold_rate(events)
            folds.append(fold)
            lean.append(fold_rate(events, decisions=False) / fold)
            ceilings.append(concurrent_fold_rate(events) / fold)
            if spark_engine is not None:
                job_seconds.append(empty_spark_job_seconds())
            # Each round starts with another engine: none is always measured after the others.
            shift = round_number % len(runs)
            for label, workers, engine_function, reuse in runs[shift:] + runs[:shift]:
                elapsed, _ = timed_backtest(db, workers, engine_function, reuse)
                rate = 2 * account_events / elapsed / workers
                # The fold measured again right after: each run is compared with the mean of
                # the folds just before and just after it (the machine's speed moves within a
                # round: a fold measured once a round was up to a third off for the last runs).
                after = fold_rate(events)
                folds.append(after)
                rates.setdefault(label, []).append(rate)
                ratios.setdefault(label, []).append(rate / ((fold + after) / 2))
                fold = after
    print(f"shape {shape}: {SHAPES[shape]}; {accounts:,} accounts")
    print(f"events: {account_events} account events ({len(events)} in all), "
          f"cpu count {os.cpu_count()}, rounds {repeat} (medians)")
    print(f"{'fold (pure core, one core: the baseline)':62}: "
          f"{statistics.median(folds):10,.0f} events/s            ratio 1.00")
    print(f"{'fold without purchase decisions (as a backtest folds)':62}: "
          f"{statistics.median(lean) * statistics.median(folds):10,.0f} events/s            "
          f"ratio {statistics.median(lean):.2f} of the fold (a reference, not the baseline)")
    print(f"{'two pure folds at once (no backtest at all)':62}: "
          f"{statistics.median(ceilings) * statistics.median(folds):10,.0f} events/s per process "
          f"ratio {statistics.median(ceilings):.2f} of the fold (what 2 cores give 2 workers)")
    print(f"accounts the candidate reaches (folded twice; the others once): "
          f"{reached_share(events):.0%}")
    for label, _, _, _ in runs:
        print(f"{label:62}: {statistics.median(rates[label]):10,.0f} events/s per worker   "
              f"ratio {statistics.median(ratios[label]):.2f} of the fold (target >= 0.70)")
    if spark_engine is None:
        print("backtest spark: PySpark not installed, skipped")
    else:
        twice = rates["backtest local, 2 worker(s), every account twice"]
        local_two = 2 * account_events / statistics.median(twice) / 2
        print(f"{'spark job of two empty tasks (fixed cost)':62}: "
              f"{statistics.median(job_seconds):10.3f} s                "
              f"{statistics.median(job_seconds) / local_two:.2f} of a local 2-worker backtest")


if __name__ == "__main__":
    main()

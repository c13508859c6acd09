"""The backtest on Spark: the same pure fold, run per partition of accounts.

The events export is already partitioned by account: every event of an account is in one
bucket (`account_bucket=NN/`, a hash of its id). Spark runs one task per worker for a small
export and more for a large one (`spark_tasks.task_count`: the progress bar moves as each
ends, a retry re-reads fewer buckets), each given whole buckets (balanced by their size); a
task reads its buckets one at a time (the columns a fold needs, the window's and the sample's
rows only), sorts each by (account, time, arrival) and hands the accounts one by one to
`compare_account`, through `mapInArrow`. Each task summarizes its accounts as a local backtest
does (jiefeng.batch.backtest_summary) and sends the driver one row: the driver merges a row a
task, not two runs an account, and both engines write the same `backtest.json`.

Why the executors read the buckets themselves instead of through Spark's Parquet reader and a
repartition by account: the export is partitioned already, so the shuffle moved every row to
where it would have been read anyway, and the JVM's scan, shuffle and sort came before the
first fold (0.6-0.9 s of a 3-4 s backtest of 100,000 events on two cores, while the
Python workers waited). Read directly, a task folds from its first bucket on: 2.1-2.7 against
2.9-3.7 s, as fast as the local engine. A bucket is read whole (its rows must be sorted
before its first account is folded): export with more buckets (`--buckets`) where one would
not fit a worker's memory.

The policies, the operator commands (scopes), the window and the bucket assignment travel
with the function to every executor once (Spark ships a closure to each task; with Spark
Connect, the executors need jiefeng installed and the export's path). PySpark is an optional
extra: `pip install 'jiefeng[spark]'`.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jiefeng.batch import backtest as B
from jiefeng.batch.backtest_collect import Pair, PairCollector
from jiefeng.service.backtest import (
    BacktestContext,
    BacktestError,
    collector_paused,
    compare_account,
    new_collector,
)
from jiefeng.service.spark_tasks import TaskProgress, polled, task_count

if TYPE_CHECKING:
    from jiefeng.policy.criteria import CompiledCriteria

SPARK_EXTRA_HINT = "the spark engine needs PySpark: pip install 'jiefeng[spark]'"
_RESULT_SCHEMA = "account_id string, selected boolean, baseline string, candidate string"
_RESULT_COLUMNS = ("account_id", "selected", "baseline", "candidate")
# A task summarized where it ran: its collector (pickled) and the digest of its accounts.
_SUMMARY_SCHEMA = "collector binary, digest string"
_SUMMARY_COLUMNS = ("collector", "digest")
BUCKET_PREFIX = "account_bucket="
_ROWS_PER_CHUNK = 10_000  # rows turned into Python objects at a time


@dataclass(frozen=True)
class Bucket:
    """The files of one bucket of an export: every row of any of its accounts is in them."""

    files: tuple[str, ...]
    size_bytes: int


def spark_session(workers: int, remote: str | None) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise BacktestError("--engine spark", SPARK_EXTRA_HINT) from None
    if remote:
        return SparkSession.builder.remote(remote).getOrCreate()
    # Executors run this interpreter, so they import the same jiefeng.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = (SparkSession.builder.master(f"local[{workers}]").appName("jiefeng-backtest")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")  # our own bar shows progress
               .config("spark.sql.session.timeZone", "UTC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def export_buckets(events_path: Path) -> list[Bucket]:
    """The export's Parquet files grouped by bucket folder, in the folders' order. Files
    outside any bucket folder (an export written without buckets) are one group: their
    accounts may be anywhere in them. Hidden files (`_SUCCESS`, `.crc`) are not data."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(events_path.rglob("*.parquet")):
        relative = path.relative_to(events_path).parts
        if any(part.startswith(("_", ".")) for part in relative):
            continue
        bucket = next((part for part in relative[:-1] if part.startswith(BUCKET_PREFIX)), "")
        groups.setdefault(bucket, []).append(path)
    return [Bucket(tuple(str(path) for path in files), sum(p.stat().st_size for p in files))
            for _, files in sorted(groups.items())]


def assign_buckets(buckets: Sequence[Bucket], tasks: int) -> list[list[Bucket]]:
    """Whole buckets to `tasks` tasks, the largest first to the least loaded (ties to the
    lowest task): each task about the same bytes to fold. Empty tasks are dropped."""
    loads = [0] * max(1, tasks)
    assigned: list[list[Bucket]] = [[] for _ in loads]
    for bucket in sorted(buckets, key=lambda b: (-b.size_bytes, b.files)):
        lightest = loads.index(min(loads))
        loads[lightest] += bucket.size_bytes
        assigned[lightest].append(bucket)
    return [task for task in assigned if task]


def read_bucket(bucket: Bucket, until: Any, accounts: Sequence[str] | None) -> Any:
    """One bucket's rows a fold needs, up to `until`, of `accounts` only when given, as an
    Arrow table sorted by (account, time, arrival)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from jiefeng.batch.export_schema import EVENT_SCHEMA

    # The columns read, in the export's types: files another tool rewrote (times in
    # nanoseconds, a column of nulls) are cast to them rather than refused as a schema that
    # does not unify.
    schema = pa.schema([EVENT_SCHEMA.field(name) for name in ("account_id", "type", "at_utc",
                                                               "seq", "body")])
    files = ds.dataset(list(bucket.files), format="parquet", schema=schema)
    condition = ds.field("at_utc") <= pa.scalar(until, schema.field("at_utc").type)
    if accounts is not None:
        condition = condition & ds.field("account_id").isin(pa.array(accounts, pa.string()))
    table = files.to_table(columns=schema.names, filter=condition)
    return table.sort_by([("account_id", "ascending"), ("at_utc", "ascending"),
                          ("seq", "ascending")])


def fold_sorted_table(table: Any, context: BacktestContext, criteria: CompiledCriteria | None,
                      take: Callable[[str, Pair | None], None]) -> None:
    """Each account of a table sorted by account (as `read_bucket` returns it) under both
    policies, handed to `take` with its pair of runs (None: the criteria leave it out)."""
    import pyarrow as pa

    from jiefeng.service.states import parse_exported_rows

    current: str | None = None
    rows: list[tuple[str, str, Any, str]] = []  # the current account's
    for chunk in table.to_batches(max_chunksize=_ROWS_PER_CHUNK):
        # Only the columns read here become Python objects: the arrival column is there for
        # the sort. Bodies, not the recorded decisions, as a local backtest reads them: each
        # policy decides purchases anew.
        columns = [chunk.column(name).to_pylist() for name in ("account_id", "type")]
        columns.append(chunk.column("at_utc").cast(pa.int64()).to_pylist())  # microseconds
        columns.append(chunk.column("body").to_pylist())
        with collector_paused():  # as a local chunk: one Arrow chunk at a time
            for row in zip(*columns, strict=True):
                if row[0] != current:
                    if current is not None:
                        take(current, compare_account(current, parse_exported_rows(rows),
                                                      context, criteria))
                    current, rows = row[0], []
                rows.append(row)
    if current is not None:
        with collector_paused():
            take(current, compare_account(current, parse_exported_rows(rows), context,
                                          criteria))


def accounts_digest(account_ids: Iterable[str]) -> tuple[int, int]:
    """(how many, a sum of their hashes modulo 2**64): the same for the same set of accounts
    in any order and split, and for another set only by a 64-bit coincidence."""
    count = total = 0
    for account_id in account_ids:
        count += 1
        total += int(B.sample_order(account_id)[:16], 16)  # its SHA-256's first 64 bits
    return count, total % 2**64


def _task_schema(summarized: bool) -> Any:
    import pyarrow as pa

    if summarized:
        return pa.schema([(name, pa.string() if name == "digest" else pa.binary())
                          for name in _SUMMARY_COLUMNS])
    return pa.schema([(name, pa.bool_() if name == "selected" else pa.string())
                      for name in _RESULT_COLUMNS])


def _fold_buckets(context: BacktestContext, tasks: Sequence[Sequence[Bucket]],
                  accounts: Sequence[str] | None, summarized: bool
                  ) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function each executor runs: the task numbers in its partition, each task's
    buckets read, sorted and folded one at a time.

    `summarized`: each task summarizes its accounts where it runs and returns one row (its
    collector, pickled, and the digest of the accounts it folded): the driver then holds a
    row a task, not two runs an account. Else one row an account (its two runs as JSON), a
    result batch a bucket."""

    def fold(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from jiefeng.policy.criteria import compile_criteria

        schema = _task_schema(summarized)
        criteria = compile_criteria(context.criteria) if context.criteria else None
        numbers = [n for batch in batches for n in batch.column(0).to_pylist()]
        for number in numbers:
            if summarized:
                yield pa.RecordBatch.from_pydict(
                    _summarized_task(tasks[number], context, criteria, accounts), schema=schema)
                continue
            for bucket in tasks[number]:
                out: dict[str, list[Any]] = {name: [] for name in _RESULT_COLUMNS}

                def take(account_id: str, pair: Pair | None, out: dict = out) -> None:
                    out["account_id"].append(account_id)
                    out["selected"].append(pair is not None)
                    out["baseline"].append(json.dumps(B.run_to_dict(pair[0])) if pair else None)
                    out["candidate"].append(json.dumps(B.run_to_dict(pair[1])) if pair else None)

                fold_sorted_table(read_bucket(bucket, context.window.end, accounts), context,
                                  criteria, take)
                if out["account_id"]:
                    yield pa.RecordBatch.from_pydict(out, schema=schema)

    return fold


def _summarized_task(buckets: Sequence[Bucket], context: BacktestContext,
                     criteria: CompiledCriteria | None, accounts: Sequence[str] | None
                     ) -> dict[str, list[Any]]:
    collector = new_collector(context)
    folded: list[str] = []

    def take(account_id: str, pair: Pair | None) -> None:
        folded.append(account_id)
        collector.take([pair])

    for bucket in buckets:
        fold_sorted_table(read_bucket(bucket, context.window.end, accounts), context, criteria,
                          take)
    count, total = accounts_digest(folded)
    return {"collector": [pickle.dumps(collector, protocol=pickle.HIGHEST_PROTOCOL)],
            "digest": [f"{count}:{total}"]}


def spark_pairs_from(export_dir: Path, remote: str | None) -> Callable[..., None]:
    """An engine for `run_backtest` that replays on Spark from an events export.

    Each task summarizes its accounts where it runs; the driver merges the summaries if the
    tasks folded exactly the accounts asked for (their digests add up to the store's). An
    export that holds other accounts (one taken from another store, or before or after this
    one's last accounts) is replayed again an account a row, and the accounts the store does
    not hold are dropped: the figures are the store's accounts', as the local engine's."""

    def engine(context: BacktestContext, account_ids: Sequence[str], workers: int,
               progress: Callable[[int], None] | None, collector: PairCollector) -> None:
        events_path = export_dir / "events"
        buckets = export_buckets(events_path) if events_path.is_dir() else []
        if not buckets:
            raise BacktestError("--input", f"{export_dir} holds no events export "
                                "(write one with: jiefeng export events DIR)")
        wanted = set(account_ids)
        # A sample: only its accounts' rows are read and folded. For every account a filter
        # would drop nothing; the few an export may hold beyond the store are dropped below.
        accounts = sorted(wanted) if context.accounts_sampled else None
        tasks = assign_buckets(buckets, task_count(buckets, workers))
        spark = spark_session(workers, remote)
        numbers = spark.range(0, len(tasks), 1, numPartitions=len(tasks))
        reporter = TaskProgress([sum(b.size_bytes for b in task) for task in tasks],
                                len(wanted), progress or (lambda _: None))

        def run(summarized: bool) -> list[Any]:
            schema = _SUMMARY_SCHEMA if summarized else _RESULT_SCHEMA
            with polled(spark, reporter) if progress else nullcontext():
                return numbers.mapInArrow(_fold_buckets(context, tasks, accounts, summarized),
                                          schema).collect()

        parts = run(summarized=True)
        count = total = 0
        for row in parts:
            part_count, part_total = (int(n) for n in row.digest.split(":"))
            count, total = count + part_count, (total + part_total) % 2**64
        if (count, total) == accounts_digest(wanted):
            for row in parts:
                collector.merge(pickle.loads(row.collector))
            reporter.finish(count)
            return
        del parts
        compared = 0
        for row in run(summarized=False):
            if row.account_id not in wanted:
                continue
            compared += 1
            collector.take([(B.run_from_dict(json.loads(row.baseline)),
                             B.run_from_dict(json.loads(row.candidate))) if row.selected
                            else None])
        reporter.finish(compared)

    return engine

"""The backtest on Spark: the same pure fold, run per partition of accounts.

The events export is already partitioned by account: every event of an account is in one
bucket (`account_bucket=NN/`, a hash of its id). Spark runs one task per worker for a small
export and more for a large one (`spark_tasks.task_count`: the progress bar moves as each
ends, a retry re-reads fewer buckets), each given whole buckets (balanced by their size); a
task reads its buckets one at a time (the columns a fold needs, the window's and the sample's
rows only), sorts each by (account, time, arrival) and hands the accounts one by one to
`compare_account`, through `mapInArrow`. The small, per-account results (two runs as JSON)
come back to the driver and are summarized exactly as a local backtest is, so both engines
write the same `backtest.json`.

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
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jiefeng.batch import backtest as B
from jiefeng.service.backtest import (
    BacktestContext,
    BacktestError,
    Pair,
    collector_paused,
    compare_account,
)
from jiefeng.service.spark_tasks import TaskProgress, polled, task_count

if TYPE_CHECKING:
    from jiefeng.policy.criteria import CompiledCriteria

SPARK_EXTRA_HINT = "the spark engine needs PySpark: pip install 'jiefeng[spark]'"
_RESULT_SCHEMA = "account_id string, selected boolean, baseline string, candidate string"
_RESULT_COLUMNS = ("account_id", "selected", "baseline", "candidate")
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
    schema = pa.schema([EVENT_SCHEMA.field(name) for name in ("account_id", "at_utc", "seq",
                                                               "body")])
    files = ds.dataset(list(bucket.files), format="parquet", schema=schema)
    condition = ds.field("at_utc") <= pa.scalar(until, schema.field("at_utc").type)
    if accounts is not None:
        condition = condition & ds.field("account_id").isin(pa.array(accounts, pa.string()))
    table = files.to_table(columns=schema.names, filter=condition)
    return table.sort_by([("account_id", "ascending"), ("at_utc", "ascending"),
                          ("seq", "ascending")])


def fold_sorted_table(table: Any, context: BacktestContext,
                      criteria: CompiledCriteria | None) -> dict[str, list[Any]]:
    """Each account of a table sorted by account (as `read_bucket` returns it) under both
    policies: the columns of the result batch, one row an account."""
    from jiefeng.service.states import parse_stored

    out: dict[str, list[Any]] = {name: [] for name in _RESULT_COLUMNS}

    def finish(account_id: str | None, events: list[Any]) -> None:
        if account_id is None:
            return
        pair = compare_account(account_id, events, context, criteria)
        out["account_id"].append(account_id)
        out["selected"].append(pair is not None)
        out["baseline"].append(json.dumps(B.run_to_dict(pair[0])) if pair else None)
        out["candidate"].append(json.dumps(B.run_to_dict(pair[1])) if pair else None)

    current: str | None = None
    events: list[Any] = []
    for chunk in table.to_batches(max_chunksize=_ROWS_PER_CHUNK):
        # Only the columns read here become Python objects: the time and arrival columns are
        # there for the sort.
        account_ids = chunk.column("account_id").to_pylist()
        bodies = chunk.column("body").to_pylist()
        with collector_paused():  # as a local chunk: one Arrow chunk at a time
            for account_id, body in zip(account_ids, bodies, strict=True):
                if account_id != current:
                    finish(current, events)
                    current, events = account_id, []
                # Bodies only, as a local backtest reads them: each policy decides purchases
                # anew, the recorded decisions are not read.
                events.append(parse_stored(body, account_id))
    with collector_paused():
        finish(current, events)
    return out


def _fold_buckets(context: BacktestContext, tasks: Sequence[Sequence[Bucket]],
                  accounts: Sequence[str] | None) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function each executor runs: the task numbers in its partition, each task's
    buckets read, sorted and folded one at a time; one result batch a bucket."""

    def fold(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        from jiefeng.policy.criteria import compile_criteria

        schema = pa.schema([(name, pa.bool_() if name == "selected" else pa.string())
                            for name in _RESULT_COLUMNS])
        criteria = compile_criteria(context.criteria) if context.criteria else None
        numbers = [n for batch in batches for n in batch.column(0).to_pylist()]
        for bucket in (bucket for n in numbers for bucket in tasks[n]):
            out = fold_sorted_table(read_bucket(bucket, context.window.end, accounts),
                                    context, criteria)
            if out["account_id"]:
                yield pa.RecordBatch.from_pydict(out, schema=schema)

    return fold


def spark_pairs_from(export_dir: Path, remote: str | None) -> Callable[..., None]:
    """An engine for `run_backtest` that replays on Spark from an events export."""

    def engine(context: BacktestContext, account_ids: Sequence[str], workers: int,
               progress: Callable[[int], None] | None,
               take: Callable[[list[Pair | None]], None]) -> None:
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
        with polled(spark, reporter) if progress else nullcontext():
            results = numbers.mapInArrow(_fold_buckets(context, tasks, accounts),
                                         _RESULT_SCHEMA).collect()
        compared = 0
        for row in results:
            if row.account_id not in wanted:
                continue
            compared += 1
            take([(B.run_from_dict(json.loads(row.baseline)),
                   B.run_from_dict(json.loads(row.candidate))) if row.selected else None])
        reporter.finish(compared)

    return engine

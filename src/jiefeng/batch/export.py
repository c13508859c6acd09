"""`jiefeng export events|features --format parquet DIR`: the store as Parquet, for DuckDB and
Spark.

Account rows are partitioned by a hash of `account_id` (Hive style, `account_bucket=NN/`), so
an engine reads one account's rows from one partition and can fold them there:

    DIR/events/account_bucket=00/part-00000.parquet ...   every account event
    DIR/scope_events/part-00000.parquet                   operator commands without an account
    DIR/features/account_bucket=00/part-00000.parquet ... one row per account, as of --at

The bucket is `int(sha256(account_id)[:8], 16) % buckets`: the same in every language and on
every machine (see `account_bucket`). Rows are streamed: each bucket keeps one open writer and
flushes a row group every ROWS_PER_GROUP rows, so memory does not grow with the history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select

from jiefeng.batch.export_schema import EVENT_SCHEMA
from jiefeng.domain import core
from jiefeng.domain.features import features
from jiefeng.policy.feature_catalog import FEATURES
from jiefeng.service.engine import Engine
from jiefeng.service.states import parse_recorded
from jiefeng.store import schema as t

DEFAULT_BUCKETS = 16
ROWS_PER_GROUP = 50_000


def feature_schema() -> pa.Schema:
    columns = [("account_id", pa.string()), ("as_of_utc", pa.timestamp("us", tz="UTC")),
               ("status", pa.string()), ("hold_codes", pa.list_(pa.string()))]
    for spec in FEATURES.values():
        columns.append((spec.name, pa.string() if spec.kind == "text" else pa.float64()))
    return pa.schema(columns)


def account_bucket(account_id: str, buckets: int) -> int:
    return int(hashlib.sha256(account_id.encode()).hexdigest()[:8], 16) % buckets


class _BucketWriters:
    """One Parquet writer per bucket, opened on first use, a row group per ROWS_PER_GROUP."""

    def __init__(self, directory: Path, schema: pa.Schema, buckets: int | None):
        # A dataset is written whole: files of an earlier export (another bucket count, say)
        # would be read as part of this one.
        if directory.exists():
            shutil.rmtree(directory)
        self.directory = directory
        self.schema = schema
        self.buckets = buckets
        self.rows: dict[int, list[dict[str, Any]]] = {}
        self.writers: dict[int, pq.ParquetWriter] = {}
        self.written = 0

    def add(self, bucket: int, row: dict[str, Any]) -> None:
        rows = self.rows.setdefault(bucket, [])
        rows.append(row)
        if len(rows) >= ROWS_PER_GROUP:
            self._flush(bucket)

    def _flush(self, bucket: int) -> None:
        rows = self.rows.get(bucket)
        if not rows:
            return
        writer = self.writers.get(bucket)
        if writer is None:
            folder = (self.directory if self.buckets is None
                      else self.directory / f"account_bucket={bucket:02d}")
            folder.mkdir(parents=True, exist_ok=True)
            writer = self.writers[bucket] = pq.ParquetWriter(folder / "part-00000.parquet",
                                                             self.schema)
        writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        self.written += len(rows)
        self.rows[bucket] = []

    def close(self) -> int:
        for bucket in sorted(self.rows):
            self._flush(bucket)
        for writer in self.writers.values():
            writer.close()
        return self.written


def _utc(text: str) -> dt.datetime:
    return t.parse_utc_text(text).astimezone(dt.UTC)


def _event_rows(engine: Engine, until: dt.datetime | None) -> Iterator[dict[str, Any]]:
    e = t.events.c
    query = select(e.seq, e.event_id, e.account_id, e.type, e.at_utc, e.actor, e.body,
                   e.outcome).order_by(e.seq).execution_options(yield_per=5_000)
    if until is not None:
        query = query.where(e.at_utc <= t.utc_text(until))
    with engine.store.read() as connection:
        for row in connection.execute(query):
            yield {"seq": row.seq, "event_id": row.event_id, "account_id": row.account_id,
                   "type": row.type, "at_utc": _utc(row.at_utc), "actor": row.actor,
                   "body": row.body, "outcome": row.outcome}


def export_events(engine: Engine, out: Path, *, buckets: int = DEFAULT_BUCKETS,
                  until: dt.datetime | None = None,
                  progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Every stored event (up to `until`), account events by bucket, the others apart."""
    accounts = _BucketWriters(out / "events", EVENT_SCHEMA, buckets)
    scopes = _BucketWriters(out / "scope_events", EVENT_SCHEMA, None)
    for count, row in enumerate(_event_rows(engine, until), start=1):
        if row["account_id"] is None:
            scopes.add(0, row)
        else:
            accounts.add(account_bucket(row["account_id"], buckets), row)
        if progress and count % 10_000 == 0:
            progress(10_000)
    written = {"events": accounts.close(), "scope_events": scopes.close()}
    if progress:
        progress(sum(written.values()) % 10_000)
    return written


def export_features(engine: Engine, out: Path, *, buckets: int = DEFAULT_BUCKETS,
                    at: dt.datetime | None = None,
                    progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """One row per account open at `at` (default: each account as of its own clock): the
    sweep features, the status and the active hold codes."""
    writers = _BucketWriters(out / "features", feature_schema(), buckets)
    scopes = engine.scopes()
    policy = engine.base_policy
    with engine.store.read() as connection:
        account_ids = engine.store.account_ids(connection)
        current: str | None = None
        pending: list[Any] = []

        def finish() -> None:
            if current is None:
                return
            state, _ = core.fold(current, pending, policy, scopes, until=at, decisions=False)
            if state.opened and state.clock is not None:
                as_of = at or state.clock
                holds = core.active_holds(state, as_of, scopes)
                row: dict[str, Any] = {
                    "account_id": current, "as_of_utc": as_of.astimezone(dt.UTC),
                    "status": core.H.derive_status(holds),
                    "hold_codes": sorted({h.code for h in holds}),
                }
                row.update(features(state, as_of, scopes.policy_for(as_of, policy)))
                writers.add(account_bucket(current, buckets), row)
            if progress:
                progress(1)

        for account_id, record in engine.store.iter_all_event_records(connection):
            if account_id != current:
                finish()
                current, pending = account_id, []
            event = parse_recorded(record, account_id)
            if at is None or event.at <= at:
                pending.append(event)
        finish()
    return {"accounts": len(account_ids), "features": writers.close()}

"""The `account_features` table (see jiefeng.service.feature_table) and its SQL: written with
the account rows, read by sweep dry runs and cohort counts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    case,
    cast,
    delete,
    literal,
    or_,
    select,
    text,
)

from jiefeng.policy.criteria import FEATURES
from jiefeng.store.schema import ID, TIME, metadata, utc_text

TIME_ONLY = ("account_age_days", "days_past_due")


def _feature_columns() -> list[Column]:
    # Numbers as doubles: criteria divide with `/`, which SQLite would truncate on integers.
    return [Column(spec.name, ID if spec.kind == "text" else Float, nullable=True)
            for spec in FEATURES.values() if spec.name not in TIME_ONLY]


account_features = Table(
    "account_features",
    metadata,
    Column("account_id", ID, primary_key=True),
    Column("clock_utc", TIME, nullable=False),
    Column("stable_until_utc", TIME, nullable=True),  # NULL: time alone changes nothing
    Column("own_status", String(16), nullable=False),
    Column("hold_codes", String(400), nullable=False),
    Column("opened_ordinal", Integer, nullable=True),
    Column("past_due_ordinal", Integer, nullable=True),
    *_feature_columns(),
)
Index("ix_account_features_stable", account_features.c.stable_until_utc)


def write_feature_rows(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Replace the rows of these accounts (in the caller's transaction)."""
    if not rows:
        return
    ids = [row["account_id"] for row in rows]
    for start in range(0, len(ids), 500):
        connection.execute(delete(account_features).where(
            account_features.c.account_id.in_(ids[start : start + 500])))
    connection.execute(account_features.insert(), list(rows))


def clear_feature_rows(connection: Connection) -> None:
    connection.execute(delete(account_features))


def fresh_features(at: dt.datetime, today: dt.date):
    """A subquery: the rows exact at `at`, with every feature, the time-only ones computed
    for the local day `today`."""
    f = account_features.c
    instant = utc_text(at)
    day = literal(today.toordinal(), Integer)
    age = case((f.opened_ordinal.is_(None), literal(0.0, Float)),
               else_=cast(day - f.opened_ordinal, Float))
    past_due = case((f.past_due_ordinal.is_(None), literal(0.0, Float)),
                    (day - f.past_due_ordinal > 0, cast(day - f.past_due_ordinal, Float)),
                    else_=literal(0.0, Float))
    columns = [f.account_id, f.own_status, f.hold_codes,
               *(f[name] for name in FEATURES if name not in TIME_ONLY),
               age.label("account_age_days"), past_due.label("days_past_due")]
    return (select(*columns)
            .where(f.clock_utc <= instant)
            .where(or_(f.stable_until_utc.is_(None), f.stable_until_utc > instant))
            .subquery("f"))


def matching_rows(connection: Connection, at: dt.datetime, today: dt.date,
                  where_sql: str, columns: Sequence[str]) -> tuple[list[Any], list[Any]]:
    """(account_id and hold_codes of every fresh row, the fresh rows that meet `where_sql`:
    account_id, own_status, hold_codes, segment and `columns`)."""
    subquery = fresh_features(at, today)
    fresh = list(connection.execute(select(subquery.c.account_id, subquery.c.hold_codes)))
    wanted = ["account_id", "own_status", "hold_codes", "segment",
              *(c for c in columns if c not in ("account_id", "segment"))]
    query = (select(*(subquery.c[name] for name in wanted))
             .where(text(where_sql)).order_by(subquery.c.account_id))
    return fresh, list(connection.execute(query))

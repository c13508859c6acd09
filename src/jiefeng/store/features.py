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
    func,
    literal,
    or_,
    select,
    text,
)

from jiefeng.policy.feature_catalog import FEATURES
from jiefeng.store.schema import ID, TIME, accounts, metadata, utc_text

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


# A row as the writers carry it: a tuple in this order (a batch that advances every account
# for a sweep carries one per account; as dicts they were the largest part of its write set).
FEATURE_ROW_COLUMNS = tuple(column.name for column in account_features.columns)


def write_feature_rows(connection: Connection, rows: Sequence[tuple]) -> None:
    """Replace the rows of these accounts (in the caller's transaction); each row is a tuple
    in FEATURE_ROW_COLUMNS order."""
    if not rows:
        return
    ids = [row[0] for row in rows]
    for start in range(0, len(ids), 500):
        connection.execute(delete(account_features).where(
            account_features.c.account_id.in_(ids[start : start + 500])))
    marker = "?" if connection.dialect.name == "sqlite" else "%s"
    # Straight to the driver's executemany: SQLAlchemy's per-row processing would build a
    # second copy of every row.
    connection.exec_driver_sql(
        f"INSERT INTO account_features ({', '.join(FEATURE_ROW_COLUMNS)}) "
        f"VALUES ({', '.join([marker] * len(FEATURE_ROW_COLUMNS))})", list(rows))


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


def _closed_flag(subquery: Any) -> Any:
    """1 where the account is already closed by a sweep (its own `policy_tightening` hold)."""
    codes = literal(",") + subquery.c.hold_codes + literal(",")
    return case((codes.like("%,policy_tightening,%"), 1), else_=0)


def fresh_counts(connection: Connection, at: dt.datetime, today: dt.date) -> tuple[int, int]:
    """(accounts with a row exact at `at`, how many of them a sweep already closed)."""
    subquery = fresh_features(at, today)
    row = connection.execute(select(func.count(), func.coalesce(
        func.sum(_closed_flag(subquery)), 0))).one()
    return int(row[0]), int(row[1])


def stale_account_ids(connection: Connection, at: dt.datetime, today: dt.date) -> list[str]:
    """Accounts whose row is missing or not exact at `at`: the fold answers for them."""
    subquery = fresh_features(at, today)
    query = (select(accounts.c.account_id)
             .outerjoin(subquery, subquery.c.account_id == accounts.c.account_id)
             .where(subquery.c.account_id.is_(None))
             .order_by(accounts.c.account_id))
    return list(connection.execute(query).scalars())


def matched_groups(connection: Connection, at: dt.datetime, today: dt.date,
                   where_sql: str) -> list[Any]:
    """Fresh rows that meet `where_sql` and are not already closed, counted by (own_status,
    segment): the status at `at` adds maintenance by segment, which these groups carry."""
    subquery = fresh_features(at, today)
    query = (select(subquery.c.own_status, subquery.c.segment, func.count())
             .where(text(where_sql)).where(_closed_flag(subquery) == 0)
             .group_by(subquery.c.own_status, subquery.c.segment))
    return list(connection.execute(query))


def matched_rows(connection: Connection, at: dt.datetime, today: dt.date, where_sql: str,
                 columns: Sequence[str], *, own_status: str | None = None,
                 limit: int | None = None) -> list[Any]:
    """Fresh rows that meet `where_sql` and are not already closed, by account id: account_id,
    own_status, segment and `columns`."""
    subquery = fresh_features(at, today)
    wanted = ["account_id", "own_status", "segment",
              *(c for c in columns if c not in ("account_id", "own_status", "segment"))]
    query = (select(*(subquery.c[name] for name in wanted))
             .where(text(where_sql)).where(_closed_flag(subquery) == 0)
             .order_by(subquery.c.account_id))
    if own_status is not None:
        query = query.where(subquery.c.own_status == own_status)
    if limit is not None:
        query = query.limit(limit)
    return list(connection.execute(query))

"""The `backtests` table: backtests requested through the API, their state and result."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Index, String, Table, Text, select, update

from jiefeng.store.schema import ID, TIME, metadata

backtests = Table(
    "backtests",
    metadata,
    Column("backtest_id", ID, primary_key=True),
    Column("status", String(16), nullable=False),  # queued, running, done, failed
    Column("requested_by", ID, nullable=False),
    Column("requested_at_utc", TIME, nullable=False),
    Column("finished_at_utc", TIME, nullable=True),
    Column("params", Text, nullable=False),  # JSON: what was asked
    Column("result", Text, nullable=True),  # backtest.json
    Column("report_html", Text, nullable=True),  # backtest.html
    Column("error", Text, nullable=True),
)
Index("ix_backtests_requested", backtests.c.requested_at_utc)


def insert_backtest(connection: Connection, values: dict[str, Any]) -> None:
    connection.execute(backtests.insert(), values)


def update_backtest(connection: Connection, backtest_id: str, **values: Any) -> None:
    connection.execute(update(backtests).where(backtests.c.backtest_id == backtest_id)
                       .values(**values))


def get_backtest(connection: Connection, backtest_id: str) -> Any | None:
    return connection.execute(
        select(backtests).where(backtests.c.backtest_id == backtest_id)).first()


def list_backtests(connection: Connection, limit: int) -> list[Any]:
    columns = [c for c in backtests.c if c.name not in ("result", "report_html")]
    return list(connection.execute(
        select(*columns).order_by(backtests.c.requested_at_utc.desc()).limit(limit)))

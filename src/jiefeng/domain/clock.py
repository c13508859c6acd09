"""Local calendar arithmetic. Statement days, due days and day counts are local days in the
policy's time zone; instants stay timezone-aware datetimes."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

DAY = dt.timedelta(days=1)


@lru_cache(maxsize=8)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(at: dt.datetime, tz: ZoneInfo) -> dt.date:
    return at.astimezone(tz).date()


@lru_cache(maxsize=4096)
def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The instant the local day begins, in UTC (see events.Timestamp for why UTC)."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(dt.UTC)


@lru_cache(maxsize=4096)
def local_midnight_shifted(day: dt.date, days: int, tz: ZoneInfo) -> dt.datetime:
    """local_midnight(day + days): asked for every event about the same few dates."""
    return local_midnight(day + dt.timedelta(days=days), tz)


def next_day_of_month(after: dt.date, day_of_month: int) -> dt.date:
    """The first date strictly after `after` whose day of month is `day_of_month` (1-28)."""
    assert 1 <= day_of_month <= 28
    candidate = after.replace(day=day_of_month)
    if candidate <= after:
        year, month = (after.year + 1, 1) if after.month == 12 else (after.year, after.month + 1)
        candidate = dt.date(year, month, day_of_month)
    return candidate


def first_statement_date(opened_at: dt.datetime, statement_day: int, tz: ZoneInfo) -> dt.date:
    """The first statement day whose local midnight lies after the opening."""
    opened_local = local_date(opened_at, tz)
    candidate = opened_local.replace(day=statement_day)
    if local_midnight(candidate, tz) > opened_at:
        return candidate
    return (
        next_day_of_month(opened_local, statement_day) if candidate <= opened_local else candidate
    )

"""Holds counted by local day (jiefeng.batch.daily): the demo report's chart and a backtest's
frozen accounts per day give what visiting every day of every hold gives."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from jiefeng.batch.daily import counts_by_day
from jiefeng.batch.timeline import HoldInterval, Timeline

FIRST, LAST = dt.date(2025, 3, 1), dt.date(2025, 11, 20)


def _day_by_day(intervals, first, last, tz):
    days = {first + dt.timedelta(days=n): {} for n in range((last - first).days + 1)}
    for i in intervals:
        day = max(first, i.start.astimezone(tz).date())
        end = last if i.end is None else min(
            last, (i.end - dt.timedelta(microseconds=1)).astimezone(tz).date())
        while day <= end:
            days[day].setdefault(i.code, set()).add(i.account_id)
            day += dt.timedelta(days=1)
    return {day: {code: len(accounts) for code, accounts in sorted(counts.items())}
            for day, counts in days.items()}


_instants = st.datetimes(min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2026, 1, 31),
                         timezones=st.just(dt.UTC))
_holds = st.builds(
    lambda n, code, start, seconds, still_open: HoldInterval(
        f"A{n}", code, start, None if still_open else start + dt.timedelta(seconds=seconds)),
    st.integers(0, 5), st.sampled_from(["overdue", "dormant", "maintenance"]), _instants,
    st.one_of(st.just(0), st.integers(0, 400 * 86_400)), st.booleans())


@given(st.lists(_holds, max_size=30), st.sampled_from(["Asia/Shanghai", "America/New_York"]))
def test_the_demo_chart_counts_each_account_on_each_day_a_hold_touches(holds, timezone):
    tz = ZoneInfo(timezone)
    got = Timeline(holds).active_by_day(FIRST, LAST, tz)
    expected = _day_by_day(holds, FIRST, LAST, tz)
    assert got == expected
    assert all(list(counts) == sorted(counts) for counts in got.values())


def test_spans_outside_the_days_or_reversed_count_nowhere():
    spans = [("A", "a", dt.date(2025, 2, 1), dt.date(2025, 2, 28)),  # before
             ("A", "a", dt.date(2025, 11, 21), dt.date(2025, 12, 1)),  # after
             ("A", "b", dt.date(2025, 5, 2), dt.date(2025, 5, 1)),  # ends before it begins
             ("A", "c", dt.date(2025, 1, 1), dt.date(2025, 3, 1)),  # its last day is the first
             ("B", "c", dt.date(2025, 11, 20), dt.date(2026, 1, 1))]  # first day is the last
    counted = counts_by_day(spans, FIRST, LAST)
    assert len(counted) == (LAST - FIRST).days + 1
    assert counted[0] == {"c": 1} and counted[-1] == {"c": 1}
    assert all(counts == {} for counts in counted[1:-1])
    assert counts_by_day(spans, LAST, FIRST) == []  # no days at all


def test_one_account_counts_once_a_day_under_a_code_however_many_holds():
    day = dt.date(2025, 6, 2)
    spans = [("A", "lock", day, day), ("A", "lock", day, day + dt.timedelta(days=2)),
             ("A", "lock", day + dt.timedelta(days=2), day + dt.timedelta(days=3)),
             ("A", "other", day, day), ("B", "lock", day, day)]
    counted = counts_by_day(spans, day, day + dt.timedelta(days=4))
    assert counted == [{"lock": 2, "other": 1}, {"lock": 1}, {"lock": 1}, {"lock": 1}, {}]

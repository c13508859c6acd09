"""Holds counted by local day, for the charts of the demo report and of a backtest.

A hold counts on every local day it is in force at some moment of (its first day, through the
day of the last instant before its release). Counting it by visiting each of its days costs
the holds times their length, which a portfolio of holds that last months makes minutes;
here each hold adds +1 on its first day and -1 after its last (a difference array per code),
summed once over the days: linear in the holds plus the days.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

_INSTANT = dt.timedelta(microseconds=1)

Span = tuple[str, dt.date, dt.date]  # (code, first day, last day), both days counted


def hold_days(start: dt.datetime, end: dt.datetime | None, first: dt.date, last: dt.date,
              tz: dt.tzinfo) -> tuple[dt.date, dt.date]:
    """The local days from `first` to `last` a hold placed at `start` and released at `end`
    (None: still in force) is in force on; the first after the last if none."""
    start_day = max(first, start.astimezone(tz).date())
    end_day = last if end is None else min(last, (end - _INSTANT).astimezone(tz).date())
    return start_day, end_day


def counts_by_day(spans: Iterable[Span], first: dt.date, last: dt.date
                  ) -> list[dict[str, int]]:
    """For each day from `first` to `last`: {code: how many spans of that code include the
    day}, codes in sorted order, none with a count of zero. A span outside the days, or whose
    first day is after its last, counts nowhere."""
    days = (last - first).days + 1
    changes: dict[str, list[int]] = {}
    for code, start_day, end_day in spans:
        start_day, end_day = max(start_day, first), min(end_day, last)
        if end_day < start_day:
            continue
        deltas = changes.get(code)
        if deltas is None:
            deltas = changes[code] = [0] * (days + 1)
        deltas[(start_day - first).days] += 1
        deltas[(end_day - first).days + 1] -= 1
    codes = sorted(changes)
    in_force = dict.fromkeys(codes, 0)
    counted: list[dict[str, int]] = []
    for offset in range(max(0, days)):
        counts: dict[str, int] = {}
        for code in codes:
            in_force[code] += changes[code][offset]
            if in_force[code]:
                counts[code] = in_force[code]
        counted.append(counts)
    return counted

"""Accounts under each hold code, by local day, for the charts of the demo report and of a
backtest.

An account counts on a day under a code if a hold of that code was in force on it at some
moment of that day (from the hold's first day through the day of the last instant before its
release), once however many such holds it had that day (a lock released and placed again the
same afternoon is one account locked that day, not two).

Counting by visiting each day of each hold costs the holds times their length, which a
portfolio of holds that last months makes minutes. Here one account's spans of one code are
merged where they share a day, then each merged span adds +1 on its first day and -1 after its
last (a difference array per code), summed once over the days: the work grows with the holds
plus the days.

Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable

_INSTANT = dt.timedelta(microseconds=1)

# (account, code, first day, last day), both days counted
Span = tuple[Hashable, str, dt.date, dt.date]


def hold_days(start: dt.datetime, end: dt.datetime | None, first: dt.date, last: dt.date,
              tz: dt.tzinfo) -> tuple[dt.date, dt.date]:
    """The local days from `first` to `last` a hold placed at `start` and released at `end`
    (None: still in force) is in force on; the first after the last if none."""
    start_day = max(first, start.astimezone(tz).date())
    end_day = last if end is None else min(last, (end - _INSTANT).astimezone(tz).date())
    return start_day, end_day


def _merged(spans: Iterable[Span], first: dt.date, last: dt.date
            ) -> Iterable[tuple[str, dt.date, dt.date]]:
    """Each account's spans of each code within the days, merged where they share a day."""
    by_owner: dict[tuple[Hashable, str], list[tuple[dt.date, dt.date]]] = {}
    for owner, code, start_day, end_day in spans:
        start_day, end_day = max(start_day, first), min(end_day, last)
        if start_day <= end_day:
            by_owner.setdefault((owner, code), []).append((start_day, end_day))
    for (_, code), days in by_owner.items():
        days.sort()
        start_day, end_day = days[0]
        for next_start, next_end in days[1:]:
            if next_start <= end_day:  # they share a day: one account that day
                end_day = max(end_day, next_end)
            else:
                yield code, start_day, end_day
                start_day, end_day = next_start, next_end
        yield code, start_day, end_day


class DayCounter:
    """Accounts under each code on each day from `first` to `last`, added an account at a
    time: a backtest adds each account's spans as its runs come back and keeps only the
    difference arrays (one list of days per code), never the spans.

    All of one owner's spans go in one `add` (they are merged there); counters of disjoint
    owners `merge` into the counts they would have had together."""

    def __init__(self, first: dt.date, last: dt.date):
        self.first, self.last = first, last
        self.days = max(0, (last - first).days + 1)
        self.changes: dict[str, list[int]] = {}  # code -> +1/-1 per day, and one past the end

    def add(self, spans: Iterable[Span]) -> None:
        first = self.first
        for code, start_day, end_day in _merged(spans, first, self.last):
            deltas = self.changes.get(code)
            if deltas is None:
                deltas = self.changes[code] = [0] * (self.days + 1)
            deltas[(start_day - first).days] += 1
            deltas[(end_day - first).days + 1] -= 1

    def merge(self, other: DayCounter) -> None:
        if (other.first, other.last) != (self.first, self.last):
            raise ValueError("day counters of different days do not merge")
        for code, theirs in other.changes.items():
            mine = self.changes.setdefault(code, [0] * (self.days + 1))
            for offset, delta in enumerate(theirs):
                mine[offset] += delta

    def counts(self) -> list[dict[str, int]]:
        """For each day: {code: accounts with a span of that code on the day}, codes in
        sorted order, none with a count of zero."""
        codes = sorted(self.changes)
        in_force = dict.fromkeys(codes, 0)
        counted: list[dict[str, int]] = []
        for offset in range(self.days):
            counts: dict[str, int] = {}
            for code in codes:
                in_force[code] += self.changes[code][offset]
                if in_force[code]:
                    counts[code] = in_force[code]
            counted.append(counts)
        return counted


def counts_by_day(spans: Iterable[Span], first: dt.date, last: dt.date
                  ) -> list[dict[str, int]]:
    """For each day from `first` to `last`: {code: accounts with a span of that code on the
    day}, codes in sorted order, none with a count of zero. A span outside the days, or whose
    first day is after its last, counts nowhere."""
    counter = DayCounter(first, last)
    counter.add(spans)
    return counter.counts()

"""Portfolio timeline: every hold's interval, counted by code and by day.

Account holds come from the stored effects (placed / released); scoped holds (maintenance,
migration) are derived once from the scopes and the accounts they cover, as they are stored.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from jiefeng.batch.daily import counts_by_day, hold_days
from jiefeng.domain import holds as H
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.store.schema import parse_utc_text


@dataclass(frozen=True)
class HoldInterval:
    account_id: str
    code: str
    start: dt.datetime
    end: dt.datetime | None  # None: still active at the horizon


@dataclass
class Timeline:
    intervals: list[HoldInterval] = field(default_factory=list)

    def placed_by_code(self) -> dict[str, int]:
        return dict(Counter(i.code for i in self.intervals))

    def released_by_code(self, horizon: dt.datetime) -> dict[str, int]:
        return dict(Counter(i.code for i in self.intervals if i.end is not None
                            and i.end <= horizon))

    def active_by_day(self, first: dt.date, last: dt.date,
                      tz: dt.tzinfo) -> dict[dt.date, dict[str, int]]:
        """Accounts under a hold of each code at some moment of each local day (see
        jiefeng.batch.daily)."""
        spans = ((i.account_id, i.code, *hold_days(i.start, i.end, first, last, tz))
                 for i in self.intervals)
        return {first + dt.timedelta(days=offset): counts
                for offset, counts in enumerate(counts_by_day(spans, first, last))}

    def first_of_each_code(self) -> dict[str, HoldInterval]:
        first: dict[str, HoldInterval] = {}
        for interval in sorted(self.intervals, key=lambda i: (i.start, i.account_id)):
            first.setdefault(interval.code, interval)
        return first


def account_intervals(effect_rows: list[tuple[str, str, str, str]]) -> list[HoldInterval]:
    """Pair (account_id, kind, code, at_utc) effects into intervals, in time order."""
    open_since: dict[tuple[str, str], dt.datetime] = {}
    intervals: list[HoldInterval] = []
    for account_id, kind, code, at_text in effect_rows:
        key = (account_id, code)
        at = parse_utc_text(at_text)
        if kind == "hold_placed":
            open_since.setdefault(key, at)
        elif kind == "hold_released" and key in open_since:
            intervals.append(HoldInterval(account_id, code, open_since.pop(key), at))
    intervals.extend(HoldInterval(a, c, start, None) for (a, c), start in open_since.items())
    return intervals


def scoped_intervals(scopes: Scopes, accounts: dict[str, AccountState],
                     horizon: dt.datetime) -> list[HoldInterval]:
    intervals: list[HoldInterval] = []
    by_segment: dict[str | None, list[AccountState]] = defaultdict(list)
    for state in accounts.values():
        by_segment[state.segment].append(state)
    for window in scopes.windows.values():
        start = max(window.start, window.known_at)
        end = window.end if window.cancelled_at is None else min(window.end, window.cancelled_at)
        if end <= start:
            continue  # cancelled before it began
        covered = (accounts.values() if window.segment is None
                   else by_segment.get(window.segment, []))
        for state in covered:
            if state.opened_at is not None and state.opened_at <= start:
                intervals.append(HoldInterval(state.account_id, H.MAINTENANCE, start, end))
    for campaign in scopes.campaigns.values():
        members = (campaign.account_ids if campaign.account_ids is not None else
                   [s.account_id for s in by_segment.get(campaign.segment, [])])
        for account_id in members:
            if account_id not in accounts:
                continue
            done = campaign.completed_at(account_id)
            end = done if done is not None and done <= horizon else None
            intervals.append(HoldInterval(account_id, H.MIGRATION, campaign.started_at, end))
    return intervals

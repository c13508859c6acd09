"""The backtest's summary (backtest.json), built one account at a time.

An engine hands each account's pair of runs to `Tally.add` as they come back and keeps nothing
else of them: the figures are counts, exact sums, the days of each hold (as difference arrays,
see jiefeng.batch.daily) and the hours to each release. A backtest's memory therefore grows
with the holds released, not with the accounts compared: every run kept to the end was about
0.75 KB an account (7.5 GB for ten million accounts). Tallies of disjoint accounts `merge`:
the figures do not depend on the order the accounts come in nor on how they were split.

Pure: no I/O, no wall clock.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jiefeng.batch.daily import DayCounter, hold_days
from jiefeng.batch.policy_reach import PolicyWatch
from jiefeng.domain import holds as H
from jiefeng.domain.clock import local_date, zone

if TYPE_CHECKING:
    from jiefeng.batch.backtest import AccountRun, Interval, Window
    from jiefeng.policy.schema import Policy

BACKTEST_FORMAT = 1  # bumped when a key of backtest.json changes meaning
RELEASE_KINDS = (H.RELEASE_TIME, H.RELEASE_CONDITION, H.RELEASE_EVENT, H.RELEASE_REVIEW)
SUPERSEDED = "superseded"  # cure probation cut short by a new overdue: not a release by the way out
STATUSES = ("active", "frozen", "closed")
_MICROSECONDS_PER_DAY = 86_400 * 1_000_000
_MICROSECOND = dt.timedelta(microseconds=1)


def overlaps(interval: Interval, window: Window) -> bool:
    return interval.start <= window.end and (interval.end is None or interval.end > window.start)


def _frozen_microseconds(interval: Interval, window: Window) -> int:
    # Whole microseconds: summed exactly, the total is the same in any order of the accounts
    # (a sum of floats is not), so a split backtest writes the same figures.
    start = max(interval.start, window.start)
    end = window.end if interval.end is None else min(interval.end, window.end)
    return max(0, (end - start) // _MICROSECOND)


def _hours(interval: Interval) -> float:
    assert interval.end is not None
    return (interval.end - interval.start).total_seconds() / 3600


def quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile: deterministic and always one of the values."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 1))  # ceil(n * q), at least 1
    return sorted_values[int(rank) - 1]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def codes_in_order(codes: Iterable[str]) -> list[str]:
    """Hold codes in the catalog's order, unknown ones after it."""
    known = set(codes)
    return [c for c in H.HOLD_CODES if c in known] + sorted(known - set(H.HOLD_CODES))


class SideTally:
    """One policy's figures over the runs added so far."""

    def __init__(self, window: Window, timezone: str):
        self.window = window
        self.tz = zone(timezone)
        self.first_day = local_date(window.start, self.tz)
        self.days = DayCounter(self.first_day, local_date(window.end, self.tz))
        self.accounts: Counter[str] = Counter()  # accounts with a hold of the code in the window
        self.placed: Counter[str] = Counter()
        self.released: Counter[str] = Counter()
        self.released_by: dict[str, Counter[str]] = defaultdict(Counter)
        self.frozen_microseconds: Counter[str] = Counter()
        self.hours_to_release: dict[str, list[float]] = defaultdict(list)
        # Every release within the window, rounded, whether or not its hold overlaps the
        # window (one released at its very start): the distribution chart's data.
        self.release_hours: list[float] = []
        self.status_at_end: Counter[str] = Counter()
        self.bureau_reports = 0

    def add(self, run: AccountRun) -> None:
        window = self.window
        self.status_at_end[run.status_end] += 1
        self.bureau_reports += run.bureau_reports
        if not run.intervals:  # most accounts: nothing else to count
            return
        codes: set[str] = set()
        spans = []
        for interval in run.intervals:
            released_in_window = (interval.end is not None
                                  and window.start <= interval.end <= window.end)
            if released_in_window:
                self.release_hours.append(round(_hours(interval), 2))
            if not overlaps(interval, window):
                continue
            code = interval.code
            codes.add(code)
            self.frozen_microseconds[code] += _frozen_microseconds(interval, window)
            if window.start <= interval.start <= window.end:
                self.placed[code] += 1
            if released_in_window:
                self.released[code] += 1
                self.released_by[code][interval.release_kind or H.RELEASE_TIME] += 1
                self.hours_to_release[code].append(_hours(interval))
            spans.append((0, code, *hold_days(interval.start, interval.end, self.days.first,
                                              self.days.last, self.tz)))
        self.accounts.update(codes)
        self.days.add(spans)

    def merge(self, other: SideTally) -> None:
        self.days.merge(other.days)
        for mine, theirs in ((self.accounts, other.accounts), (self.placed, other.placed),
                             (self.released, other.released),
                             (self.frozen_microseconds, other.frozen_microseconds),
                             (self.status_at_end, other.status_at_end)):
            mine.update(theirs)
        for code, kinds in other.released_by.items():
            self.released_by[code].update(kinds)
        for code, hours in other.hours_to_release.items():
            self.hours_to_release[code].extend(hours)
        self.release_hours.extend(other.release_hours)
        self.bureau_reports += other.bureau_reports

    def code_figures(self) -> dict[str, dict[str, Any]]:
        figures: dict[str, dict[str, Any]] = {}
        for code in codes_in_order(self.accounts):
            hours = sorted(self.hours_to_release.get(code, ()))
            total = self.released[code]
            kinds = self.released_by.get(code, Counter())
            figures[code] = {
                "accounts": self.accounts[code],
                "holds_placed": self.placed[code],
                "holds_released": total,
                "account_days_frozen": _round(self.frozen_microseconds[code]
                                              / _MICROSECONDS_PER_DAY),
                "median_hours_to_release": _round(quantile(hours, 0.5)),
                "p90_hours_to_release": _round(quantile(hours, 0.9)),
                "released_by": {kind: _round(kinds[kind] / total) if total else None
                                for kind in (*RELEASE_KINDS, SUPERSEDED)},
            }
        return figures

    def frozen_by_day(self) -> dict[str, dict[str, int]]:
        return {(self.first_day + dt.timedelta(days=offset)).isoformat(): counts
                for offset, counts in enumerate(self.days.counts())}


def empty_code_figures() -> dict[str, Any]:
    return {
        "accounts": 0, "holds_placed": 0, "holds_released": 0, "account_days_frozen": 0.0,
        "median_hours_to_release": None, "p90_hours_to_release": None,
        "released_by": {kind: None for kind in (*RELEASE_KINDS, SUPERSEDED)},
    }


class Tally:
    """Both policies' figures and their comparison over the accounts added so far.

    Keeps the `sample_size` differing accounts first in `sample_order` (the side-by-side
    sample): a caller of `sample_order` passes it in, this module has no hash of its own."""

    def __init__(self, window: Window, baseline_policy: Policy, candidate_policy: Policy,
                 sample_key: Any, sample_size: int):
        self.window = window
        self.baseline_policy, self.candidate_policy = baseline_policy, candidate_policy
        self.baseline = SideTally(window, baseline_policy.timezone)
        self.candidate = SideTally(window, candidate_policy.timezone)
        self.compared = 0
        self.differing = 0
        self.reached_by_changes = 0
        self.frozen_only_baseline: Counter[str] = Counter()
        self.frozen_only_candidate: Counter[str] = Counter()
        self._sample_key = sample_key
        self._sample_size = sample_size
        self._first_differing: list[tuple[str, str]] = []  # (sample key, account), sorted

    def add(self, baseline: AccountRun, candidate: AccountRun) -> None:
        """One account's runs (each account once)."""
        window = self.window
        self.compared += 1
        self.reached_by_changes += baseline.reads_changed_settings
        self.baseline.add(baseline)
        self.candidate.add(candidate)
        if candidate is baseline:  # a run reused for an account the candidate cannot reach
            return
        mine, theirs = baseline.codes_in_window(window), candidate.codes_in_window(window)
        self.frozen_only_baseline.update(mine - theirs)
        self.frozen_only_candidate.update(theirs - mine)
        if baseline.signature(window) != candidate.signature(window):
            self.differing += 1
            self._note_differing(baseline.account_id)

    def _note_differing(self, account_id: str) -> None:
        entry = (self._sample_key(account_id), account_id)
        first = self._first_differing
        if len(first) < self._sample_size or (first and entry < first[-1]):
            bisect.insort(first, entry)
            del first[self._sample_size:]

    def merge(self, other: Tally) -> None:
        """Add a tally of other accounts."""
        self.baseline.merge(other.baseline)
        self.candidate.merge(other.candidate)
        self.compared += other.compared
        self.differing += other.differing
        self.reached_by_changes += other.reached_by_changes
        self.frozen_only_baseline.update(other.frozen_only_baseline)
        self.frozen_only_candidate.update(other.frozen_only_candidate)
        for _, account_id in other._first_differing:
            self._note_differing(account_id)

    def differing_sample_ids(self) -> list[str]:
        """The sample of differing accounts, in account order."""
        return sorted(account_id for _, account_id in self._first_differing)

    def result(self, selection: Mapping[str, Any],
               differing_sample: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """backtest.json's content. The same accounts give the same dictionary."""
        sides = (("baseline", self.baseline), ("candidate", self.candidate))
        figures = {side: tally.code_figures() for side, tally in sides}
        by_code = {
            code: {
                "baseline": figures["baseline"].get(code, empty_code_figures()),
                "candidate": figures["candidate"].get(code, empty_code_figures()),
                "accounts_frozen_only_baseline": self.frozen_only_baseline[code],
                "accounts_frozen_only_candidate": self.frozen_only_candidate[code],
            }
            for code in codes_in_order({*figures["baseline"], *figures["candidate"]})
        }
        window = self.window
        return {
            "format": BACKTEST_FORMAT,
            "window": {"from": window.start.isoformat(), "to": window.end.isoformat()},
            "policies": {
                "baseline": {"version": self.baseline_policy.version},
                "candidate": {"version": self.candidate_policy.version},
                "changed_settings": list(PolicyWatch(self.baseline_policy,
                                                     self.candidate_policy).settings),
            },
            "accounts": {**selection, "compared": self.compared, "differing": self.differing,
                         "reached_by_changes": self.reached_by_changes},
            "by_code": by_code,
            "by_status_at_end": {side: {s: tally.status_at_end[s] for s in STATUSES}
                                 for side, tally in sides},
            "bureau_reports": {side: tally.bureau_reports for side, tally in sides},
            "frozen_by_day": {side: tally.frozen_by_day() for side, tally in sides},
            "hours_to_release": {side: sorted(tally.release_hours) for side, tally in sides},
            "differing_sample": list(differing_sample),
        }

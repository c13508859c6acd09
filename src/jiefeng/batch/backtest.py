"""Stateful backtests: one account's history folded under a policy, and the portfolio summary.

Pure: no I/O, no wall clock. `run_account` folds one account's events (already in time order)
under one policy and keeps what a backtest compares: every hold's interval with how it was
released, the bureau reports, the status at the window's end. `summarize` turns the runs of
both policies into the stable dictionary written as `backtest.json` (see docs/backtest.md).

Purchases are decided again under each policy: a backtest asks what the candidate would have
done, so the decisions recorded when the events were first ingested are not reused (an
issuer's own authorization still stands, as it does live).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jiefeng.batch.daily import counts_by_day, hold_days
from jiefeng.batch.policy_reach import PolicyWatch
from jiefeng.domain import core
from jiefeng.domain import holds as H
from jiefeng.domain.clock import local_date, zone
from jiefeng.domain.effects import BUREAU_REPORTED, HOLD_PLACED, HOLD_RELEASED, Effect
from jiefeng.domain.features import features
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy

if TYPE_CHECKING:  # sqlglot, imported by the criteria, is needed only where some are compiled
    from jiefeng.policy.criteria import CompiledCriteria

BACKTEST_FORMAT = 1  # bumped when a key of backtest.json changes meaning
RELEASE_KINDS = (H.RELEASE_TIME, H.RELEASE_CONDITION, H.RELEASE_EVENT, H.RELEASE_REVIEW)
SUPERSEDED = "superseded"  # cure probation cut short by a new overdue: not a release by the way out
SECONDS_PER_DAY = 86_400
_RUN_KINDS = frozenset({HOLD_PLACED, HOLD_RELEASED, BUREAU_REPORTED})  # what a run keeps


@dataclass(frozen=True)
class Window:
    """The period the figures cover: [start, end], both instants."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("--to: must not be before --from")


@dataclass(frozen=True)
class Interval:
    """One hold on one account: placed at `start`, released at `end` (None: still active at
    the window's end) by a `release_kind` of RELEASE_KINDS or SUPERSEDED."""

    code: str
    start: dt.datetime
    end: dt.datetime | None
    release_kind: str | None


@dataclass
class AccountRun:
    """What one policy did to one account, as far as a backtest compares it."""

    account_id: str
    intervals: list[Interval] = field(default_factory=list)
    bureau_reports: int = 0  # reports made within the window
    status_end: str = "unknown"
    codes_end: tuple[str, ...] = ()
    # The fold read a setting the other policy changes (see jiefeng.batch.policy_reach): the
    # other policy could have done otherwise here. True where it was not watched.
    reads_changed_settings: bool = True

    def codes_in_window(self, window: Window) -> frozenset[str]:
        return frozenset(i.code for i in self.intervals if _overlaps(i, window))

    def signature(self, window: Window) -> tuple[Any, ...]:
        """What differs between two policies' runs when the outcome differs."""
        return (self.status_end, self.codes_end, sorted(self.codes_in_window(window)),
                self.bureau_reports)


def run_to_dict(run: AccountRun) -> dict[str, Any]:
    """A run as plain data (for engines that ship results between processes)."""
    return {
        "account_id": run.account_id,
        "intervals": [[i.code, i.start.isoformat(), i.end.isoformat() if i.end else None,
                       i.release_kind] for i in run.intervals],
        "bureau_reports": run.bureau_reports,
        "status_end": run.status_end,
        "codes_end": list(run.codes_end),
        "reads_changed_settings": run.reads_changed_settings,
    }


def run_from_dict(data: Mapping[str, Any]) -> AccountRun:
    return AccountRun(
        data["account_id"],
        [Interval(code, dt.datetime.fromisoformat(start),
                  dt.datetime.fromisoformat(end) if end else None, kind)
         for code, start, end, kind in data["intervals"]],
        data["bureau_reports"],
        data["status_end"],
        tuple(data["codes_end"]),
        data.get("reads_changed_settings", True),
    )


def release_kind(code: str, why: str) -> str:
    """time / condition / event / review, from the reason a release effect names."""
    if why == "appeal_approved":
        return H.RELEASE_REVIEW
    if why == "expired":
        return H.RELEASE_TIME
    if why == "superseded_by_overdue":
        return SUPERSEDED
    # Every other release is the hold's own way out: the one path that is neither time nor
    # review (each code has exactly one; see holds.RELEASE_PATHS).
    own = [p for p in H.RELEASE_PATHS[code] if p not in (H.RELEASE_TIME, H.RELEASE_REVIEW)]
    return own[0] if own else H.RELEASE_TIME


def selected(account_id: str, events: Sequence[Any], policy: Policy, scopes: Scopes,
             criteria: CompiledCriteria, at: dt.datetime) -> bool | None:
    """Do the account's features as of `at` (folded under `policy`) meet `criteria`?

    None when they cannot be evaluated (the account is not open at `at`, or the criteria
    fail on its values): such an account is left out, and counted as such."""
    state = core.new_account(account_id)
    effects: list[Effect] = []
    for event in events:
        if event.at > at:
            break
        core.apply_event(state, event, policy, scopes, effects)
    if not state.opened:
        return None
    core.advance_to(state, at, policy, scopes, effects)
    try:
        return criteria.matches(features(state, at, scopes.policy_for(at, policy)))
    except (ArithmeticError, TypeError, ValueError):
        return None


def run_account(account_id: str, events: Sequence[Any], policy: Policy, scopes: Scopes,
                window: Window) -> tuple[AccountRun, AccountState]:
    """Fold the account's events (in time order) up to the window's end under `policy`."""
    end = window.end
    if events and events[-1].at > end:  # engines read up to the end already: rarely copied
        events = [e for e in events if e.at <= end]
    state, effects = core.fold(account_id, events, policy, scopes, until=end)
    run = AccountRun(account_id)
    open_since: dict[str, dt.datetime] = {}
    for effect in effects:
        kind = effect.kind
        if kind not in _RUN_KINDS:  # most effects: decisions, traces, statements
            continue
        if kind == HOLD_PLACED and effect.code is not None:
            open_since.setdefault(effect.code, effect.at)
        elif kind == HOLD_RELEASED and effect.code is not None:
            since = open_since.pop(effect.code, None)
            if since is None:
                continue  # released without a placement in this fold: cannot happen, skip
            run.intervals.append(Interval(effect.code, since, effect.at,
                                          release_kind(effect.code, effect.data.get("path", ""))))
        elif kind == BUREAU_REPORTED and window.start <= effect.at <= end:
            run.bureau_reports += 1
    for code, since in open_since.items():
        run.intervals.append(Interval(code, since, None, None))
    run.intervals.sort(key=lambda i: (i.start, i.code))
    if state.opened:
        holds = core.active_holds(state, end, scopes)
        run.status_end = H.derive_status(holds)
        run.codes_end = tuple(sorted({h.code for h in holds}))
    return run, state


# --- the summary --------------------------------------------------------------------------------


def _overlaps(interval: Interval, window: Window) -> bool:
    return interval.start <= window.end and (interval.end is None or interval.end > window.start)


def _frozen_seconds(interval: Interval, window: Window) -> float:
    start = max(interval.start, window.start)
    end = window.end if interval.end is None else min(interval.end, window.end)
    return max(0.0, (end - start).total_seconds())


def _quantile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile: deterministic and always one of the values."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * q // 1))  # ceil(n * q), at least 1
    return sorted_values[int(rank) - 1]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _code_figures(runs: Sequence[AccountRun], window: Window) -> dict[str, dict[str, Any]]:
    placed: Counter[str] = Counter()
    released: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    frozen_seconds: Counter[str] = Counter()
    hours_to_release: dict[str, list[float]] = defaultdict(list)
    accounts: dict[str, set[str]] = defaultdict(set)
    for run in runs:
        for interval in run.intervals:
            if not _overlaps(interval, window):
                continue
            code = interval.code
            accounts[code].add(run.account_id)
            frozen_seconds[code] += _frozen_seconds(interval, window)
            if window.start <= interval.start <= window.end:
                placed[code] += 1
            if interval.end is not None and window.start <= interval.end <= window.end:
                released[code] += 1
                by_kind[code][interval.release_kind or H.RELEASE_TIME] += 1
                hours_to_release[code].append(
                    (interval.end - interval.start).total_seconds() / 3600)
    figures: dict[str, dict[str, Any]] = {}
    for code in _codes(accounts):
        hours = sorted(hours_to_release[code])
        total = released[code]
        shares = {kind: _round(by_kind[code][kind] / total) if total else None
                  for kind in (*RELEASE_KINDS, SUPERSEDED)}
        figures[code] = {
            "accounts": len(accounts[code]),
            "holds_placed": placed[code],
            "holds_released": total,
            "account_days_frozen": _round(frozen_seconds[code] / SECONDS_PER_DAY),
            "median_hours_to_release": _round(_quantile(hours, 0.5)),
            "p90_hours_to_release": _round(_quantile(hours, 0.9)),
            "released_by": shares,
        }
    return figures


def _codes(codes: Iterable[str]) -> list[str]:
    """Hold codes in the catalog's order, unknown ones after it."""
    known = set(codes)
    return [c for c in H.HOLD_CODES if c in known] + sorted(known - set(H.HOLD_CODES))


def frozen_by_day(runs: Sequence[AccountRun], window: Window, timezone: str
                  ) -> dict[str, dict[str, int]]:
    """{local day: {code: accounts under a hold of that code at some moment of that day}},
    every day of the window (see jiefeng.batch.daily)."""
    tz = zone(timezone)
    first, last = local_date(window.start, tz), local_date(window.end, tz)
    spans = ((index, interval.code, *hold_days(interval.start, interval.end, first, last, tz))
             for index, run in enumerate(runs) for interval in run.intervals
             if _overlaps(interval, window))
    return {(first + dt.timedelta(days=offset)).isoformat(): counts
            for offset, counts in enumerate(counts_by_day(spans, first, last))}


def sample_order(account_id: str) -> str:
    """A deterministic, well-mixed order of accounts (for --sample and the differing sample)."""
    return hashlib.sha256(account_id.encode()).hexdigest()


def summarize(
    baseline: Sequence[AccountRun],
    candidate: Sequence[AccountRun],
    window: Window,
    *,
    baseline_policy: Policy,
    candidate_policy: Policy,
    selection: Mapping[str, Any],
    differing_sample: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The backtest's result (backtest.json). Same inputs, same dictionary."""
    by_id_candidate = {run.account_id: run for run in candidate}
    frozen_only_baseline: Counter[str] = Counter()
    frozen_only_candidate: Counter[str] = Counter()
    differing = 0
    for run in baseline:
        other = by_id_candidate[run.account_id]
        mine, theirs = run.codes_in_window(window), other.codes_in_window(window)
        for code in mine - theirs:
            frozen_only_baseline[code] += 1
        for code in theirs - mine:
            frozen_only_candidate[code] += 1
        if run.signature(window) != other.signature(window):
            differing += 1
    figures = {"baseline": _code_figures(baseline, window),
               "candidate": _code_figures(candidate, window)}
    codes = _codes({*figures["baseline"], *figures["candidate"]})
    by_code = {
        code: {
            "baseline": figures["baseline"].get(code, _empty_code_figures()),
            "candidate": figures["candidate"].get(code, _empty_code_figures()),
            "accounts_frozen_only_baseline": frozen_only_baseline[code],
            "accounts_frozen_only_candidate": frozen_only_candidate[code],
        }
        for code in codes
    }
    statuses = ("active", "frozen", "closed")
    return {
        "format": BACKTEST_FORMAT,
        "window": {"from": window.start.isoformat(), "to": window.end.isoformat()},
        "policies": {
            "baseline": {"version": baseline_policy.version},
            "candidate": {"version": candidate_policy.version},
            "changed_settings": list(PolicyWatch(baseline_policy, candidate_policy).settings),
        },
        "accounts": {**selection, "compared": len(baseline), "differing": differing,
                     "reached_by_changes": sum(r.reads_changed_settings for r in baseline)},
        "by_code": by_code,
        "by_status_at_end": {
            side: {s: sum(1 for r in runs if r.status_end == s) for s in statuses}
            for side, runs in (("baseline", baseline), ("candidate", candidate))
        },
        "bureau_reports": {"baseline": sum(r.bureau_reports for r in baseline),
                           "candidate": sum(r.bureau_reports for r in candidate)},
        "frozen_by_day": {
            "baseline": frozen_by_day(baseline, window, baseline_policy.timezone),
            "candidate": frozen_by_day(candidate, window, candidate_policy.timezone),
        },
        "hours_to_release": {
            side: sorted(round((i.end - i.start).total_seconds() / 3600, 2)
                         for r in runs for i in r.intervals
                         if i.end is not None and window.start <= i.end <= window.end)
            for side, runs in (("baseline", baseline), ("candidate", candidate))
        },
        "differing_sample": list(differing_sample),
    }


def _empty_code_figures() -> dict[str, Any]:
    return {
        "accounts": 0, "holds_placed": 0, "holds_released": 0, "account_days_frozen": 0.0,
        "median_hours_to_release": None, "p90_hours_to_release": None,
        "released_by": {kind: None for kind in (*RELEASE_KINDS, SUPERSEDED)},
    }

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jiefeng.batch.backtest_summary import SUPERSEDED, SideTally, Tally
from jiefeng.batch.backtest_summary import overlaps as _overlaps
from jiefeng.domain import core
from jiefeng.domain import holds as H
from jiefeng.domain.effects import BUREAU_REPORTED, HOLD_PLACED, HOLD_RELEASED, Effect
from jiefeng.domain.features import features
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy

if TYPE_CHECKING:  # sqlglot, imported by the criteria, is needed only where some are compiled
    from jiefeng.policy.criteria import CompiledCriteria

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
    the window's end) by a `release_kind` of backtest_summary.RELEASE_KINDS or SUPERSEDED."""

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
    state.omits_decisions = True  # only the features are read
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
    # A run reads holds and bureau reports, never purchase decisions: none is built.
    state, effects = core.fold(account_id, events, policy, scopes, until=end, decisions=False)
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


# --- the summary (jiefeng.batch.backtest_summary) -----------------------------------------------


def sample_order(account_id: str) -> str:
    """A deterministic, well-mixed order of accounts (for --sample and the differing sample)."""
    return hashlib.sha256(account_id.encode()).hexdigest()


def new_tally(window: Window, baseline_policy: Policy, candidate_policy: Policy,
              sample_size: int) -> Tally:
    """An empty summary that keeps the `sample_size` differing accounts first in
    `sample_order`."""
    return Tally(window, baseline_policy, candidate_policy, sample_order, sample_size)


def frozen_by_day(runs: Sequence[AccountRun], window: Window, timezone: str
                  ) -> dict[str, dict[str, int]]:
    """{local day: {code: accounts under a hold of that code at some moment of that day}},
    every day of the window (see jiefeng.batch.daily)."""
    side = SideTally(window, timezone)
    for run in runs:
        side.add(run)
    return side.frozen_by_day()


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
    """The backtest's result (backtest.json) of these runs, the candidate's matched to the
    baseline's by account. Same inputs, same dictionary."""
    tally = new_tally(window, baseline_policy, candidate_policy, 0)
    by_id_candidate = {run.account_id: run for run in candidate}
    for run in baseline:
        tally.add(run, by_id_candidate[run.account_id])
    return tally.result(selection, differing_sample)

"""The rules engine: how an event or a deadline reaches the causes (`jiefeng.domain.causes`).

Nothing here knows a hold code: every table is derived from the causes' declarations.

- An event: the account's own bookkeeping first (`account.BEFORE`; it may refuse the event),
  then every cause that listens to its type, in the documented fan-out order, then
  `account.AFTER` (a purchase is decided once the signals it completes are in).
- A deadline (`next_deadline`: the minimum over the ledger's next statement, every hold's
  `releases_at` and each cause's own deadline): the ledger bills and accrues, the causes of
  phase `before_expiry` run, holds whose time ran out are released (their cause forgets what it
  declared it forgets), then the other causes run.
- After every applied event, the `after_change` checks of the causes holding the account
  (criteria any event may move).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jiefeng.domain import account, billing, causes
from jiefeng.domain.effects import Effect
from jiefeng.domain.features import features  # noqa: F401 (where callers have found it)
from jiefeng.domain.holdbook import ignored, release
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy

accrue = billing.accrue
blocking_codes = account.blocking_codes
__all__ = ["DISPATCH", "accrue", "after_change", "blocking_codes", "features", "ignored",
           "next_deadline", "on_time"]

# Derived from the causes' tables, rebuilt when they change (causes.on_change): plain globals,
# since the fold reads them for every event.
DISPATCH: dict[type, tuple[Any, tuple, Any]] = {}  # type -> (before, causes' handlers, after)
_DEADLINES: tuple = ()
_AFTER_CHANGE: tuple = ()
_BEFORE_EXPIRY: tuple = ()
_AFTER_EXPIRY: tuple = ()
_KINDS: dict = {}


def _rebuild(tables: Any) -> None:
    global DISPATCH, _DEADLINES, _AFTER_CHANGE, _BEFORE_EXPIRY, _AFTER_EXPIRY, _KINDS
    types = set(account.BEFORE) | set(account.AFTER) | set(tables.listeners)
    DISPATCH = {t: (account.BEFORE.get(t), tables.listeners.get(t, ()), account.AFTER.get(t))
                for t in types}
    _DEADLINES = tables.deadlines
    _AFTER_CHANGE = tables.after_change
    _BEFORE_EXPIRY = tables.time_before_expiry
    _AFTER_EXPIRY = tables.time_after_expiry
    _KINDS = tables.kinds


causes.on_change(_rebuild)


def after_change(
    state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes, effects: list[Effect]
) -> None:
    """Checks that depend on features any event may move, for the causes holding the account
    (the core calls it after every event while the account holds something)."""
    holds = state.holds
    for codes, check in _AFTER_CHANGE:
        if not codes.isdisjoint(holds):
            check(state, at, policy, scopes, effects)


def next_deadline(state: AccountState, policy: Policy, scopes: Scopes) -> dt.datetime | None:
    """The next instant after the state's clock at which time alone changes something.

    Runs before every event, so it keeps a running minimum instead of building a list.
    Deadlines at or before the clock are skipped: the only ones are notices whose moment
    passed before the account existed.
    """
    clock = state.clock
    assert clock is not None
    best = billing.next_statement_at(state, policy)  # the ledger's own deadline
    for hold in state.holds.values():
        t = hold.releases_at
        if t is not None and t > clock and (best is None or t < best):
            best = t
    for deadline in _DEADLINES:
        t = deadline(state, policy, scopes)
        if t is not None and (best is None or t < best):
            best = t
    return best


def on_time(
    state: AccountState,
    at: dt.datetime,
    policy: Policy,
    scopes: Scopes,
    effects: list[Effect],
) -> None:
    """Everything that falls due at `at` (the state's clock is already `at`)."""
    billing.on_time(state, at, policy, effects)
    for step in _BEFORE_EXPIRY:
        step(state, at, policy, scopes, effects)
    for code, hold in list(state.holds.items()):
        if hold.releases_at is not None and hold.releases_at <= at:
            release(state, effects, code, at, f"clock:{code}", "expired")
            tidy = _KINDS[code].on_expiry
            if tidy is not None:
                tidy(state, at)
    for step in _AFTER_EXPIRY:
        step(state, at, policy, scopes, effects)

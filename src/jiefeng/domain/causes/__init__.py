"""The freeze causes, one module each, and the tables the core derives from them.

`CAUSES` is the documented fan-out order: when an event comes, the causes that listen to it
react in this order (after the account's own bookkeeping, see `jiefeng.domain.account`); at a
deadline, the ledger bills, causes of phase `before_expiry` run, holds whose time ran out are
released, then the other causes run, in this order. Hold codes are listed, and purchases
declined, in descending `precedence` (docs/reason-codes.md), which is independent of this order.

A new cause is one new module declaring a `Cause`, added here (or with `register`, as the test
suite's toy cause does), plus its catalog keys and policy section.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from jiefeng.domain import holds as H
from jiefeng.domain.causes import (
    account_security,
    cash_out,
    dormancy,
    external_overdue,
    id_expiry,
    maintenance,
    manual_review,
    migration,
    overdue,
    password,
    policy_tightening,
    score,
)
from jiefeng.domain.causes.base import AFTER_EXPIRY, BEFORE_EXPIRY, Cause, HoldKind

CAUSES: tuple[Cause, ...] = (
    cash_out.CAUSE,  # reacts to a purchase, refund or repayment before the ledger's rules do
    password.CAUSE,
    overdue.CAUSE,
    external_overdue.CAUSE,
    score.CAUSE,
    dormancy.CAUSE,
    account_security.CAUSE,
    id_expiry.CAUSE,
    policy_tightening.CAUSE,
    manual_review.CAUSE,
    maintenance.CAUSE,
    migration.CAUSE,
)


@dataclass(frozen=True)
class Tables:
    """What the core reads, derived from the causes' declarations."""

    causes: tuple[Cause, ...]
    kinds: dict[str, HoldKind]  # hold code -> its kind, in descending precedence
    hold_codes: tuple[str, ...]
    release_paths: dict[str, tuple[str, ...]]
    line_closing: frozenset[str]
    confidential: frozenset[str]
    scoped: frozenset[str]
    listeners: dict[type, tuple]  # event type -> the causes' handlers, in fan-out order
    deadlines: tuple
    time_before_expiry: tuple
    time_after_expiry: tuple
    after_change: tuple  # (the cause's hold codes, its check), run while one is held
    scope_blocks: tuple  # (code, blocks(state, at, scopes)) of scoped causes
    scoped_holds: tuple
    admissions: dict[type, tuple]  # event type -> the causes' admission checks, in order


def derive(causes: tuple[Cause, ...]) -> Tables:
    """The tables, or ValueError naming what two declarations contradict."""
    names = [cause.name for cause in causes]
    if len(set(names)) != len(names):
        raise ValueError("two causes with one name")
    kinds_list = [kind for cause in causes for kind in cause.holds]
    codes = [kind.code for kind in kinds_list]
    duplicated = sorted({code for code in codes if codes.count(code) > 1})
    if duplicated:
        raise ValueError(f"hold codes declared by two causes: {duplicated}")
    for kind in kinds_list:
        if not kind.release_paths:
            raise ValueError(f"hold {kind.code}: no release path")
    kinds = {kind.code: kind for kind in sorted(kinds_list, key=lambda k: (k.precedence, k.code))}
    listeners: dict[type, list] = {}
    for cause in causes:
        for event_type, handler in cause.listens.items():
            listeners.setdefault(event_type, []).append(handler)
    admissions: dict[type, list] = {}
    for cause in causes:
        for event_type, admit in cause.admits.items():
            admissions.setdefault(event_type, []).append(admit)
    for cause in causes:
        if cause.on_time is not None and cause.time_phase not in (BEFORE_EXPIRY, AFTER_EXPIRY):
            raise ValueError(f"cause {cause.name}: unknown time phase {cause.time_phase!r}")
    return Tables(
        causes=causes,
        kinds=kinds,
        hold_codes=tuple(kinds),
        release_paths={code: kind.release_paths for code, kind in kinds.items()},
        line_closing=frozenset(code for code, kind in kinds.items() if kind.closes_line),
        confidential=frozenset(code for code, kind in kinds.items() if kind.confidential),
        scoped=frozenset(code for code, kind in kinds.items() if kind.scoped),
        listeners={event_type: tuple(handlers) for event_type, handlers in listeners.items()},
        deadlines=tuple(c.deadline for c in causes if c.deadline is not None),
        time_before_expiry=tuple(c.on_time for c in causes
                                 if c.on_time is not None and c.time_phase == BEFORE_EXPIRY),
        time_after_expiry=tuple(c.on_time for c in causes
                                if c.on_time is not None and c.time_phase == AFTER_EXPIRY),
        after_change=tuple((frozenset(kind.code for kind in c.holds), c.after_change)
                           for c in causes if c.after_change is not None),
        scope_blocks=tuple((c.holds[0].code, c.scope_blocks) for c in causes
                           if c.scope_blocks is not None),
        scoped_holds=tuple(c.scoped_holds for c in causes if c.scoped_holds is not None),
        admissions={event_type: tuple(checks) for event_type, checks in admissions.items()},
    )


_tables = derive(CAUSES)
H.KINDS = _tables.kinds
# Modules that keep tables of their own derived from these (the dispatcher, the precedence):
# called with the new tables whenever they change, so the fold reads plain module globals.
_listeners: list[Callable[[Tables], None]] = []


def tables() -> Tables:
    return _tables


def on_change(rebuild: Callable[[Tables], None]) -> None:
    """Call `rebuild(tables)` now and whenever the tables change."""
    _listeners.append(rebuild)
    rebuild(_tables)


def _install(new: Tables) -> None:
    global _tables
    _tables = new
    H.KINDS = new.kinds
    for rebuild in _listeners:
        rebuild(new)


@contextmanager
def registered(*extra: Cause) -> Iterator[Tables]:
    """Fold with extra causes for the duration (a cause under development, or a test's toy
    cause), appended to the fan-out order; the built-in tables come back afterwards."""
    before = _tables
    _install(derive(before.causes + extra))
    try:
        yield _tables
    finally:
        _install(before)

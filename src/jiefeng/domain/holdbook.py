"""Hold bookkeeping every cause shares: place or refresh a hold, release one (lapsing the
appeals against it), trim a sliding window, record an event the fold could not apply.

Each helper mutates the working state it is given and appends effects; none reads a clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jiefeng.domain import holds as H
from jiefeng.domain.effects import (
    APPEAL_DECIDED,
    EVENT_IGNORED,
    HOLD_PLACED,
    HOLD_RELEASED,
    HOLD_UPDATED,
    Effect,
)
from jiefeng.domain.state import MAX_WINDOW_ITEMS, AccountState, Appeal
from jiefeng.domain.trace import Trace

MAX_EVIDENCE_ITEMS = 4  # the principal reasons shown to a customer


def place(
    state: AccountState,
    effects: list[Effect],
    code: str,
    at: dt.datetime,
    cause: str,
    evidence: dict[str, Any],
    releases_at: dt.datetime | None = None,
    actor: str | None = None,
    trace: Trace | None = None,
) -> None:
    """Place a hold, or refresh the evidence of one already active (keeping its `since`).
    `trace`: the decision (rule, policy version, parameters, facts); a refresh without one
    keeps the hold's."""
    current = state.holds.get(code)
    state.deadline_floor = None  # the hold's own lifting, or its cause's next step
    if current is None:
        state.holds[code] = H.Hold(code, at, cause, evidence, releases_at, actor, trace)
        effects.append(
            Effect(
                HOLD_PLACED,
                at,
                state.account_id,
                code,
                cause,
                {"releases_at": releases_at.isoformat() if releases_at else None,
                 # Which rule placed it, under which policy: the timeline's trace.
                 **({"rule": trace.rule, "policy_version": trace.policy_version}
                    if trace is not None else {})},
            )
        )
        return
    state.holds[code] = H.Hold(
        code,
        current.since,
        current.placed_by,
        evidence,
        releases_at,
        current.placed_by_actor if actor is None else actor,
        current.trace if trace is None else trace,
    )
    effects.append(Effect(HOLD_UPDATED, at, state.account_id, code, cause, {}))


def release(
    state: AccountState, effects: list[Effect], code: str, at: dt.datetime, cause: str, why: str
) -> bool:
    hold = state.holds.pop(code, None)
    if hold is None:
        return False
    state.deadline_floor = None  # a cause may start counting again (dormancy, ...)
    effects.append(
        Effect(
            HOLD_RELEASED,
            at,
            state.account_id,
            code,
            cause,
            {"since": hold.since.isoformat(), "path": why},
        )
    )
    # An appeal against a hold that lifted another way has nothing left to decide; left
    # pending it would block an appeal against a later hold of the same code.
    for appeal in list(state.appeals.values()):
        if appeal.hold_code == code and appeal.status == "pending":
            state.appeals[appeal.appeal_id] = Appeal(
                appeal.appeal_id,
                appeal.hold_code,
                appeal.submitted_at,
                appeal.statement,
                appeal.purchase_event_ids,
                "lapsed",
                at,
                None,
                why,
            )
            effects.append(
                Effect(
                    APPEAL_DECIDED,
                    at,
                    state.account_id,
                    code,
                    cause,
                    {"appeal_id": appeal.appeal_id, "decision": "lapsed"},
                )
            )
    return True


def trim(window: list, before: dt.datetime) -> None:
    """Drop items older than `before` (items are datetimes or tuples starting with one), and
    the oldest beyond MAX_WINDOW_ITEMS. Windows are in time order, so what goes is a prefix."""
    drop = 0
    size = len(window)
    while drop < size and (window[drop][0] if isinstance(window[drop], tuple)
                           else window[drop]) < before:
        drop += 1
    drop = max(drop, size - MAX_WINDOW_ITEMS)
    if drop:
        del window[:drop]


def ignored(state: AccountState, event: Any, reason: str) -> Effect:
    """An event the fold could not apply; the store refuses most of these before they come."""
    return Effect(EVENT_IGNORED, event.at, state.account_id, None, event.event_id,
                  {"reason": reason})

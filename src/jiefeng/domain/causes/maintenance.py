"""系统维护: a maintenance window (portfolio-wide or for one segment).

Scoped: the window lives once in the portfolio's scopes, not in each account's state; an
account is held while a window that covers it is open, and it lifts when the window ends.
"""

from __future__ import annotations

import datetime as dt

from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import Trace


def scoped_holds(state: AccountState, at: dt.datetime, scopes: Scopes) -> list[H.Hold]:
    return [
        H.Hold(
            H.MAINTENANCE,
            max(window.start, window.known_at),
            window.event_id,
            {"window_id": window.window_id, "start": window.start, "end": window.end,
             "segment": window.segment},
            releases_at=window.end,
            placed_by_actor=window.actor,
            trace=Trace("maintenance.window", "", window.known_at, {}, {
                "window_id": window.window_id, "start": window.start, "end": window.end,
                "segment": window.segment, "scheduled_by": window.actor}),
        )
        for window in scopes.maintenance_at(at, state.segment)
    ]


def scope_blocks(state: AccountState, at: dt.datetime, scopes: Scopes) -> bool:
    return bool(scopes.windows) and scopes.in_maintenance(at, state.segment)


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"fact": "maintenance_window", "value": iso(hold.evidence["start"]),
             "end": iso(hold.evidence["end"])}]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_TIME, "condition": "maintenance_ends",
             "at": iso(hold.releases_at)}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "wait_until", "at": iso(hold.releases_at)}]


CAUSE = Cause(
    name="maintenance",
    holds=(
        HoldKind(H.MAINTENANCE, 900, (H.RELEASE_TIME,), Explanation(_evidence, _release, _steps),
                 scoped=True),
    ),
    policy_sections=(),
    scoped_holds=scoped_holds,
    scope_blocks=scope_blocks,
)

"""The unfreeze plan: the earliest time the account can be active again, and what gets it there.

The core is pure, so it can simulate the future. For the account as it stands, the plan takes
the customer's actions that lift their holds (repay the past-due minimum now, reset the
password, verify identity, upload a valid ID, use wallet services, settle the product reported
overdue), folds them forward as hypothetical events under the current policy, then lets time
pass (deadline by deadline, paying each new statement's minimum when it comes, as a customer
keeping to the plan would) until no hold is left. What no customer action can lift (a score
the bureau must report, a review, a campaign, a portfolio reopening rule) is listed as
awaited, and then there is no earliest date.

The plan is computed, not assembled from hold texts: a test folds the suggested events and
finds the account active at `earliest_active_at` and not before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from jiefeng.domain import causes, core, rules
from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.money import format_fen
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy

HORIZON = dt.timedelta(days=800)  # longer than any time-based hold in a sane policy
MAX_STEPS = 5_000  # deadlines visited at most; a fold that does not settle is "no date"

@dataclass
class Plan:
    earliest_active_at: dt.datetime | None
    actions: list[dict[str, Any]] = field(default_factory=list)  # what the customer does now
    events: list[Any] = field(default_factory=list)  # the same, as the events folded
    awaiting: list[dict[str, Any]] = field(default_factory=list)  # what no action lifts
    waits: list[str] = field(default_factory=list)  # holds that lift with time alone
    pays_each_minimum: bool = False  # the fold paid minimums of statements still to come

    def to_dict(self) -> dict[str, Any]:
        return {
            "earliest_active_at": (self.earliest_active_at.isoformat()
                                   if self.earliest_active_at else None),
            "actions": self.actions,
            "awaiting": self.awaiting,
            "waits_for": self.waits,
            "then_pay_each_minimum_on_time": self.pays_each_minimum,
        }


def _event(kind: str, at: dt.datetime, account_id: str, n: int, **fields: Any) -> Any:
    return ev.parse_event({"event_id": f"plan-{n}", "type": kind, "at": at.isoformat(),
                           "account_id": account_id, **fields})


def _actions(state: AccountState, holds: list[H.Hold], at: dt.datetime,
             policy: Policy
             ) -> tuple[list[dict[str, Any]], list[Any], list[dict[str, Any]], set[str]]:
    """(actions, their events, what is awaited, the codes an event acts on) for the holds
    active at `at`, as each hold's cause declares (`HoldKind.plan`); a hold without one lifts
    with time alone, and so does one whose advice comes with no event."""
    actions: list[dict[str, Any]] = []
    events: list[Any] = []
    awaiting: list[dict[str, Any]] = []
    acted: set[str] = set()
    kinds = causes.tables().kinds
    for hold in holds:
        planner = kinds[hold.code].plan
        step = planner(state, hold, at, policy) if planner is not None else None
        if step is None:
            continue
        if step.action is not None:
            actions.append(step.action)
        for fields in step.events:
            acted.add(hold.code)
            fields = dict(fields)
            events.append(_event(fields.pop("type"), at, state.account_id, len(events),
                                 **fields))
        if step.awaited is not None:
            awaiting.append({"awaiting": step.awaited, "code": hold.code})
    return actions, events, awaiting, acted


def _awaited(state: AccountState, holds: list[H.Hold], at: dt.datetime,
             policy: Policy) -> list[dict[str, Any]]:
    return _actions(state, holds, at, policy)[2]


def _pay_open_minimums(working: AccountState, n: int) -> tuple[list[Any], int]:
    """Repayments, now, of what is unpaid of each statement not yet judged."""
    payments = []
    for statement in working.ledger.statements:
        if statement.judged:
            continue
        unpaid = working.ledger.unpaid_minimum_fen(statement)
        if unpaid > 0:
            payments.append(_event("repayment", working.clock, working.account_id, n,
                                   amount=format_fen(unpaid)))
            n += 1
    return payments, n


def unfreeze_plan(state: AccountState, at: dt.datetime, policy: Policy,
                  scopes: Scopes) -> Plan | None:
    """The plan for an account advanced to `at`; None when nothing holds it."""
    holds = core.active_holds(state, at, scopes)
    if not holds:
        return None
    policy_now = scopes.policy_for(at, policy)
    actions, events, awaiting, acted = _actions(state, holds, at, policy_now)
    plan = Plan(None, actions, events, awaiting)
    if awaiting:
        return plan  # no date can be promised while something outside is awaited
    working = state.clone()
    discarded: list[Any] = []
    for event in events:
        core.apply_event(working, event, policy, scopes, discarded)
    n = len(events)
    until = at + HORIZON
    for _ in range(MAX_STEPS):
        payments, n = _pay_open_minimums(working, n)
        for payment in payments:
            plan.pays_each_minimum = True
            core.apply_event(working, payment, policy, scopes, discarded)
        now = working.clock
        left = core.active_holds(working, now, scopes)
        if not left:
            plan.earliest_active_at = now
            break
        still_awaited = _awaited(working, left, now, scopes.policy_for(now, policy))
        if still_awaited:
            plan.awaiting = still_awaited
            break
        candidates = [h.releases_at for h in left if h.releases_at and h.releases_at > now]
        deadline = rules.next_deadline(working, scopes.policy_for(now, policy), scopes)
        if deadline is not None:
            candidates.append(deadline)
        if not candidates or min(candidates) > until:
            break
        core.advance_to(working, min(candidates), policy, scopes, discarded)
    plan.waits = sorted({h.code for h in holds
                         if H.RELEASE_TIME in h.release_paths and h.code not in acted})
    return plan

"""The pure core: fold events and the passage of time into account state.

    decide(state, event, policy, scopes)  -> (new_state, effects)
    advance(state, now, policy, scopes)   -> (new_state, effects)

Both are pure: the input state is never touched, no I/O, no wall clock. They are thin wrappers
around in-place versions (`apply_event`, `advance_to`) that work on a private copy; a fold over
many events (`fold`) uses the in-place versions on one working copy, since intermediate states
are never observed, which is what makes a replay fast.

Time is an input. Before an event at time t is applied, the account is advanced to t, which
issues statements, ages overdue, and releases what expired on the way, in time order.

Decisions are facts: a purchase handed in as `Decided(event, outcome)` (see `outcomes`) is
folded with the outcome recorded when it was first decided, not decided again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from jiefeng.domain import causes, invariants, rules
from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.effects import Effect
from jiefeng.domain.outcomes import Decided
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy

EMPTY_SCOPES = Scopes()
MAX_DEADLINES_PER_ADVANCE = 100_000  # a bound: 18 months of daily deadlines is ~600

# Events that never bring a deadline earlier other than by placing or releasing a hold (which
# resets the state's deadline floor itself, `holdbook`): after one of them the floor computed
# before it still holds, and the next advance skips computing the deadline. They are most of
# a portfolio's events. Any other type resets the floor. The invariants check the floor after
# every event under the tests (`invariants.check_deadline_floor`).
KEEPS_DEADLINE_FLOOR = frozenset({
    ev.Purchase, ev.Refund, ev.Repayment, ev.Login, ev.Activity, ev.ScoreUpdate,
    ev.AssetUpdate, ev.PasswordAttempt,
})


def new_account(account_id: str) -> AccountState:
    return AccountState(account_id=account_id)


def decide(
    state: AccountState, event: Any, policy: Policy, scopes: Scopes = EMPTY_SCOPES
) -> tuple[AccountState, list[Effect]]:
    """Fold one event into a copy of `state`; the event must not be older than `state.clock`."""
    working = state.clone()
    effects: list[Effect] = []
    apply_event(working, event, policy, scopes, effects)
    return working, effects


def advance(
    state: AccountState, now: dt.datetime, policy: Policy, scopes: Scopes = EMPTY_SCOPES
) -> tuple[AccountState, list[Effect]]:
    """Let time pass to `now` on a copy of `state`: expiries, statements, overdue, dormancy."""
    working = state.clone()
    effects: list[Effect] = []
    advance_to(working, now, policy, scopes, effects)
    return working, effects


def fold(
    account_id: str,
    events: Iterable[Any],
    policy: Policy,
    scopes: Scopes = EMPTY_SCOPES,
    until: dt.datetime | None = None,
    state: AccountState | None = None,
    decisions: bool = True,
) -> tuple[AccountState, list[Effect]]:
    """Replay events (already in time order) into a fresh state, then advance to `until`.

    `decisions=False`: for a caller that never reads purchase decisions, whose
    PURCHASE_DECIDED effects are then not built (the same state, the same other effects)."""
    working = state.clone() if state is not None else new_account(account_id)
    working.omits_decisions = not decisions
    effects: list[Effect] = []
    for event in events:
        apply_event(working, event, policy, scopes, effects)
    if until is not None:
        advance_to(working, until, policy, scopes, effects)
    working.omits_decisions = False  # the returned state, folded further, decides as usual
    return working, effects


# --- in place ---------------------------------------------------------------------------------


def apply_event(
    state: AccountState, event: Any, policy: Policy, scopes: Scopes, effects: list[Effect]
) -> None:
    recorded = None
    if type(event) is Decided:  # decided when first ingested: the decision is reused, not redone
        event, recorded = event.event, event.outcome
    at = event.at
    if scopes.policy_activations:
        policy = scopes.policy_for(at, policy)  # the version active when the event happened
    if state.clock is not None and at < state.clock:
        # The service replays from the log when an event arrives late; here it is a bug.
        raise ValueError(
            f"event {event.event_id} at {at.isoformat()} is older than the state "
            f"({state.clock.isoformat()}); replay the account in time order"
        )
    # Every event handed to the fold counts, applied or ignored: the store relies on it to
    # know how many of an account's logged events a snapshot already contains.
    state.events_applied += 1
    if not state.opened and not isinstance(event, ev.AccountOpened):
        effects.append(rules.ignored(state, event, "account not opened"))
        return
    if state.opened and state.clock != at:
        advance_to(state, at, policy, scopes, effects)
    # The event's handlers (jiefeng.domain.rules): the account's bookkeeping, which may refuse
    # it; the causes that listen, in the documented order; then the purchase decision.
    entry = rules.DISPATCH.get(type(event))
    if entry is None:
        effects.append(rules.ignored(state, event, f"{event.type} does not apply to one account"))
        state.clock = max(state.clock or at, at)
        return
    before, reactions, after = entry
    if before is None or not before(state, event, policy, scopes, effects):
        for react in reactions:
            react(state, event, policy, scopes, effects)
        if after is not None:
            after(state, event, policy, scopes, effects, recorded)
    state.clock = at
    state.last_event_id = event.event_id
    if type(event) not in KEEPS_DEADLINE_FLOOR:
        state.deadline_floor = None
    if state.holds:
        rules.after_change(state, at, policy, scopes, effects)
    if invariants.ENABLED:
        invariants.check_invariants(state)


def advance_to(
    state: AccountState, now: dt.datetime, policy: Policy, scopes: Scopes, effects: list[Effect]
) -> None:
    if not state.opened:
        return
    assert state.clock is not None
    if now < state.clock:
        return  # time never runs backwards; an older `now` is a no-op
    # Without policy activations every instant is under `policy`: no lookup per step (this runs
    # before every event).
    policy_for = scopes.policy_for if scopes.policy_activations else None
    floor = state.deadline_floor
    if (floor is None or floor[1] is not policy or floor[2] is not scopes
            or (floor[0] is not None and now >= floor[0])):
        _run_deadlines(state, now, policy, scopes, effects, policy_for)
    # else nothing falls due up to `now`: known without asking every cause again
    rules.accrue(state, now, policy_for(now, policy) if policy_for else policy)
    state.clock = now
    if invariants.ENABLED:
        invariants.check_invariants(state)


def _run_deadlines(state: AccountState, now: dt.datetime, policy: Policy, scopes: Scopes,
                   effects: list[Effect], policy_for: Any) -> None:
    """Everything that falls due up to `now`, in time order; then the next deadline after it
    is the state's deadline floor (not with policy activations: the policy itself changes at
    instants no deadline knows of)."""
    next_deadline = rules.next_deadline
    for _ in range(MAX_DEADLINES_PER_ADVANCE):
        deadline = next_deadline(state, policy_for(state.clock, policy) if policy_for else policy,
                                 scopes)
        if deadline is None or deadline > now:
            break
        state.clock = deadline
        rules.on_time(state, deadline, policy_for(deadline, policy) if policy_for else policy,
                      scopes, effects)
    else:  # pragma: no cover - an invariant, not a path
        raise AssertionError("advance did not converge: a deadline failed to move forward")
    state.deadline_floor = None if policy_for else (deadline, policy, scopes)


# --- queries ----------------------------------------------------------------------------------


def scoped_holds(state: AccountState, at: dt.datetime, scopes: Scopes) -> list[H.Hold]:
    """Holds the portfolio's scopes place on this account at `at` (maintenance, migration):
    derived, not stored."""
    result: list[H.Hold] = []
    for holds_at in causes.tables().scoped_holds:
        result.extend(holds_at(state, at, scopes))
    return result


def active_holds(state: AccountState, at: dt.datetime, scopes: Scopes) -> list[H.Hold]:
    """All holds at `at`: the account's own and the scoped ones. `state` must be advanced to at."""
    own = list(state.holds.values())
    return sorted(own + scoped_holds(state, at, scopes), key=lambda h: (h.since, h.code))


def status_at(state: AccountState, at: dt.datetime, scopes: Scopes) -> str:
    if not state.opened:
        return "unknown"
    return H.derive_status(active_holds(state, at, scopes))

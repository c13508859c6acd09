"""What a freeze cause declares. The core derives its tables from these declarations (see
`jiefeng.domain.causes`): which handlers an event fans out to, the next deadline, what a hold
blocks and how it is released, and how it is explained. No hold code is special-cased anywhere
else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jiefeng.domain.causes.explaining import ExplainContext
    from jiefeng.domain.effects import Effect
    from jiefeng.domain.holds import Hold
    from jiefeng.domain.scopes import Scopes
    from jiefeng.domain.state import AccountState
    from jiefeng.policy.schema import Policy

Item = dict[str, Any]
# handler(state, event, policy, scopes, effects): mutates the working state, appends effects.
Handler = Callable[["AccountState", Any, "Policy", "Scopes", "list[Effect]"], None]
# step(state, at, policy, scopes, effects): what falls due at `at`.
TimeStep = Callable[["AccountState", dt.datetime, "Policy", "Scopes", "list[Effect]"], None]
# deadline(state, policy, scopes): the next instant after the state's clock at which time alone
# changes something for this cause, or None.
Deadline = Callable[["AccountState", "Policy", "Scopes"], "dt.datetime | None"]
SpecPart = Callable[["Hold", "ExplainContext"], Any]

# The two phases of a deadline: causes that judge what the ledger billed run before holds whose
# time ran out are released (a cure probation superseded by a new overdue is not "expired"); the
# others after.
BEFORE_EXPIRY = "before_expiry"
AFTER_EXPIRY = "after_expiry"


def _none(hold: Hold, ctx: ExplainContext) -> Any:
    return None


@dataclass(frozen=True, slots=True)
class Explanation:
    """How a hold is explained: structured items, never prose (the catalogs render them).

    evidence: the facts that placed it; release: the ways out, each with its `path`; steps:
    what the customer does, in order; counterfactual: "if X, then the hold lifts" (never shown
    for confidential holds); bureau: what the credit bureau has or will have on file.
    """

    evidence: SpecPart
    release: SpecPart
    steps: SpecPart
    counterfactual: SpecPart = _none
    bureau: SpecPart = _none
    appeal_step: str = "submit_appeal"


@dataclass(frozen=True, slots=True)
class PlanStep:
    """What the unfreeze plan does about a hold: the customer's `action` (a dict shown as is)
    with the `events` that fold it forward, or what is `awaited` when no action lifts it."""

    action: dict[str, Any] | None = None
    events: tuple[dict[str, Any], ...] = ()
    awaited: str | None = None


# admit(state advanced to the event, event, policy, scopes): raises DomainRejected or returns.
Admission = Callable[["AccountState", Any, "Policy", "Scopes"], None]
# plan(state, hold, at, policy) -> PlanStep | None
Planner = Callable[["AccountState", "Hold", dt.datetime, "Policy"], "PlanStep | None"]
# tidy(state, at): forget the cause's signals once its hold is gone (expiry, approved appeal).
Tidy = Callable[["AccountState", dt.datetime], None]


@dataclass(frozen=True, slots=True)
class HoldKind:
    """One hold code and everything about it that is not a rule.

    `precedence`: the documented order of hold and decline codes (lower first: what a customer
    must clear before anything else helps). `release_paths`: every way it can lift (see
    `holds.RELEASE_*`). `closes_line`: the limit is reclaimed (status `closed`), not frozen.
    `confidential`: its detection thresholds never reach the customer. `scoped`: it lives once
    in the portfolio's scopes, not in each account. `on_expiry` / `on_appeal_approved`: what
    the cause forgets when the hold lifts that way. `keeps_terms`: see below.
    """

    code: str
    precedence: int
    release_paths: tuple[str, ...]
    explanation: Explanation
    closes_line: bool = False
    confidential: bool = False
    scoped: bool = False
    on_expiry: Tidy | None = None
    on_appeal_approved: Tidy | None = None
    plan: Planner | None = None
    blocks: tuple[str, ...] = ("purchase",)  # repayment is never blocked
    # Released under the terms it was placed under (its trace), whatever policy is active
    # later; otherwise a condition or event releases it under the policy in effect then.
    keeps_terms: bool = False
    # The trace's parameters and facts may reach the customer (not for confidential holds, nor
    # for a trace that carries an operator's internal note).
    trace_for_customer: bool = True


@dataclass(frozen=True, slots=True)
class Cause:
    """A freeze cause: its holds, the policy sections it reads (and nothing else), the events
    it listens to, its deadline, its time step and its checks after any event."""

    name: str
    holds: tuple[HoldKind, ...]
    policy_sections: tuple[str, ...]
    listens: Mapping[type, Handler] = field(default_factory=lambda: MappingProxyType({}))
    deadline: Deadline | None = None
    on_time: TimeStep | None = None
    time_phase: str = AFTER_EXPIRY
    # After every applied event while one of the cause's holds is active (a condition on
    # features any event may move, such as reopen criteria).
    after_change: TimeStep | None = None
    # Holds derived from the portfolio's scopes at an instant (scoped causes only), and whether
    # one blocks a purchase at that instant (the cheap form the purchase decision uses).
    scoped_holds: Callable[[AccountState, dt.datetime, Scopes], list[Hold]] | None = None
    scope_blocks: Callable[[AccountState, dt.datetime, Scopes], bool] | None = None
    # What the store refuses before logging an event of these types, for this cause:
    # admit(state, event, policy, scopes) raises DomainRejected naming the field and why.
    admits: Mapping[type, Admission] = field(default_factory=lambda: MappingProxyType({}))

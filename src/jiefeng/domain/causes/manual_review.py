"""人工审核: a hold an operator places by hand, with an internal note the customer never sees;
an operator releases it, or an approved appeal does.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, ts
from jiefeng.domain.effects import Effect
from jiefeng.domain.holdbook import place, release
from jiefeng.domain.rejections import DomainRejected
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import decided
from jiefeng.policy.schema import Policy


def on_placed(state: AccountState, event: ev.ManualHoldPlaced, policy: Policy, scopes: Scopes,
              effects: list[Effect]) -> None:
    place(state, effects, H.MANUAL_REVIEW, event.at, event.event_id, {"reason": event.reason},
          actor=event.actor, trace=decided("manual_review.operator", policy, event.at, {},
                                           {"actor": event.actor, "reason": event.reason}))


def on_released(state: AccountState, event: ev.ManualHoldReleased, policy: Policy,
                scopes: Scopes, effects: list[Effect]) -> None:
    release(state, effects, H.MANUAL_REVIEW, event.at, event.event_id, "operator_released")


def admit_release(state: AccountState, event: ev.ManualHoldReleased, policy: Policy,
                  scopes: Scopes) -> None:
    if H.MANUAL_REVIEW not in state.holds:
        raise DomainRejected("account_id", "the account has no manual hold")


# --- explanation (the operator's note is internal: it is not shown) -------------------------------


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"fact": "manual_review", "value": ts(hold.since)}]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "operator_release"}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "contact_support", "phone": ctx.policy.support.phone}]


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    return PlanStep(awaited="review")


CAUSE = Cause(
    name="manual_review",
    holds=(
        HoldKind(H.MANUAL_REVIEW, 1300, (H.RELEASE_EVENT, H.RELEASE_REVIEW),
                 Explanation(_evidence, _release, _steps), plan=_plan,
                 trace_for_customer=False),
    ),
    policy_sections=("support",),
    listens=MappingProxyType({
        ev.ManualHoldPlaced: on_placed,
        ev.ManualHoldReleased: on_released,
    }),
    admits=MappingProxyType({ev.ManualHoldReleased: admit_release}),
)

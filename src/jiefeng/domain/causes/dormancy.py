"""长期未使用: a line never used closes (the limit is reclaimed).

`dormancy.days_since_open` days after opening (or after the line was last reopened) without a
purchase, the line closes; a notice goes out `dormancy.notice_days` before. It reopens after
`dormancy.reopen_activity_count` activities within `dormancy.reopen_window_days` (the numbers
in force when it closed, kept by the hold whatever policy is active later), or on an approved
appeal; either way the dormancy clock starts again.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso
from jiefeng.domain.clock import DAY
from jiefeng.domain.effects import NOTICE, Effect
from jiefeng.domain.holdbook import place, release, trim
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import decided, read
from jiefeng.policy.schema import Policy


def _unused_since(state: AccountState) -> dt.datetime | None:
    """The anchor the dormancy clock runs from, if no purchase came after it (else None)."""
    anchor = state.dormancy_anchor
    if anchor is None or H.DORMANT in state.holds:
        return None
    if state.last_purchase_at is not None and state.last_purchase_at >= anchor:
        return None
    return anchor


def restart_clock(state: AccountState, at: dt.datetime) -> None:
    """Reopening restarts the dormancy clock (and its notice)."""
    state.dormancy_anchor = at
    state.dormancy_notice_sent = False


def on_account_opened(state: AccountState, event: ev.AccountOpened, policy: Policy,
                      scopes: Scopes, effects: list[Effect]) -> None:
    state.dormancy_anchor = event.at  # the clock runs from the opening


def reopen_terms(hold: H.Hold | None, policy: Policy) -> tuple[int, int]:
    """(activities required, within days) to reopen: those the closed line was decided under
    (its evidence), whatever policy is active later; else the policy's."""
    if hold is not None and "activity_required" in hold.evidence:
        return hold.evidence["activity_required"], hold.evidence["window_days"]
    return policy.dormancy.reopen_activity_count, policy.dormancy.reopen_window_days


def on_activity(state: AccountState, event: ev.Activity, policy: Policy, scopes: Scopes,
                effects: list[Effect]) -> None:
    hold = state.holds.get(H.DORMANT)
    required, window_days = reopen_terms(hold, policy)
    state.activities.append((event.at, event.category.value))
    trim(state.activities,
         event.at - DAY * max(window_days, policy.dormancy.reopen_window_days))
    if hold is None:
        return
    start = event.at - DAY * window_days
    if sum(1 for when, _ in state.activities if when >= start) >= required:
        release(state, effects, H.DORMANT, event.at, event.event_id, "reactivated")
        restart_clock(state, event.at)


def on_time(state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes,
            effects: list[Effect]) -> None:
    anchor = _unused_since(state)
    if anchor is None:
        return
    rules = policy.dormancy
    dormant_at = anchor + DAY * rules.days_since_open
    if at >= dormant_at:
        place(state, effects, H.DORMANT, at, "clock:dormancy", {
            "since_anchor": anchor,
            "days_without_purchase": rules.days_since_open,
            "activity_required": rules.reopen_activity_count,
            "window_days": rules.reopen_window_days,
        }, trace=decided("dormancy.no_purchase", policy, at, read(
            policy, "dormancy.days_since_open", "dormancy.notice_days",
            "dormancy.reopen_activity_count", "dormancy.reopen_window_days"), {
            "anchor": anchor, "last_purchase_at": state.last_purchase_at,
            "closes_at": dormant_at}))
    elif not state.dormancy_notice_sent and at >= dormant_at - DAY * rules.notice_days:
        state.dormancy_notice_sent = True
        effects.append(Effect(NOTICE, at, state.account_id, H.DORMANT, "clock:dormancy",
                              {"notice": "dormancy_notice", "closes_at": dormant_at.isoformat()}))


def deadline(state: AccountState, policy: Policy, scopes: Scopes) -> dt.datetime | None:
    anchor = _unused_since(state)
    if anchor is None:
        return None
    clock = state.clock
    assert clock is not None  # deadlines are asked of an opened account
    dormant_at = anchor + DAY * policy.dormancy.days_since_open
    best: dt.datetime | None = None
    for t in (dormant_at,) if state.dormancy_notice_sent else (
        dormant_at, dormant_at - DAY * policy.dormancy.notice_days
    ):
        if t > clock and (best is None or t < best):
            best = t
    return best


# --- explanation ----------------------------------------------------------------------------------


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    evidence = hold.evidence
    return [{"fact": "no_purchase_since", "value": iso(evidence["since_anchor"]),
             "threshold": evidence["days_without_purchase"]}]


def _progress(hold: H.Hold, ctx: ExplainContext) -> dict[str, int]:
    required, window_days = reopen_terms(hold, ctx.policy)
    start = ctx.at - DAY * window_days
    done = sum(1 for when, _ in ctx.state.activities if start <= when <= ctx.at)
    return {"done": done, "required": required, "window_days": window_days}


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_CONDITION, "condition": "recent_activity",
             "progress": _progress(hold, ctx)}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    required, window_days = reopen_terms(hold, ctx.policy)
    return [{"step": "use_wallet_services", "required": required, "window_days": window_days}]


def _counterfactual(hold: H.Hold, ctx: ExplainContext) -> Item:
    progress = _progress(hold, ctx)
    return {"if": "more_activities", "value": max(0, progress["required"] - progress["done"]),
            "window_days": progress["window_days"]}


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    count, _ = reopen_terms(hold, policy)
    return PlanStep({"action": "use_wallet_services", "code": hold.code, "times": count},
                    tuple({"type": "activity", "category": "payment"} for _ in range(count)))


CAUSE = Cause(
    name="dormancy",
    holds=(
        HoldKind(H.DORMANT, 600, (H.RELEASE_CONDITION, H.RELEASE_REVIEW),
                 Explanation(_evidence, _release, _steps, _counterfactual),
                 closes_line=True, on_appeal_approved=restart_clock, plan=_plan,
                 keeps_terms=True),
    ),
    policy_sections=("dormancy",),
    listens=MappingProxyType({ev.AccountOpened: on_account_opened, ev.Activity: on_activity}),
    deadline=deadline,
    on_time=on_time,
)

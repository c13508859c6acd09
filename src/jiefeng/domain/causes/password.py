"""支付密码错误: repeated wrong payment passwords lock the line.

`password.max_consecutive_failures` wrong attempts in a row (at a purchase or on their own)
lock it for `password.lock_hours`; a reset with identity verification unlocks it at once.
Attempts while locked neither count nor unlock.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, decided_param, iso
from jiefeng.domain.effects import Effect
from jiefeng.domain.holdbook import place, release
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import decided, read
from jiefeng.policy.schema import Policy

HOUR = dt.timedelta(hours=1)


def _attempt(
    state: AccountState,
    at: dt.datetime,
    ok: bool,
    cause: str,
    policy: Policy,
    effects: list[Effect],
) -> None:
    if H.PASSWORD_LOCKED in state.holds:
        return  # attempts while locked neither count nor unlock
    if ok:
        state.password_failures = 0
        return
    state.password_failures += 1
    if state.password_failures >= policy.password.max_consecutive_failures:
        unlocks_at = at + HOUR * policy.password.lock_hours
        trace = decided("password.consecutive_failures", policy, at,
                        read(policy, "password.max_consecutive_failures", "password.lock_hours"),
                        {"failures": state.password_failures, "attempt": cause})
        place(state, effects, H.PASSWORD_LOCKED, at, cause,
              {"failures": state.password_failures, "locked_at": at, "unlocks_at": unlocks_at},
              releases_at=unlocks_at, trace=trace)
        state.password_failures = 0


def on_purchase(state: AccountState, event: ev.Purchase, policy: Policy, scopes: Scopes,
                effects: list[Effect]) -> None:
    """A purchase with a password check counts as an attempt, before the purchase is decided."""
    if event.password_ok is not None:
        _attempt(state, event.at, event.password_ok, event.event_id, policy, effects)


def on_password_attempt(state: AccountState, event: ev.PasswordAttempt, policy: Policy,
                        scopes: Scopes, effects: list[Effect]) -> None:
    _attempt(state, event.at, event.ok, event.event_id, policy, effects)


def on_password_reset(state: AccountState, event: ev.PasswordReset, policy: Policy,
                      scopes: Scopes, effects: list[Effect]) -> None:
    if not event.identity_verified:
        return  # an unverified reset changes nothing: the lock stays until it expires
    state.password_failures = 0
    release(state, effects, H.PASSWORD_LOCKED, event.at, event.event_id, "password_reset")


# --- explanation ----------------------------------------------------------------------------------


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    evidence = hold.evidence
    return [{"fact": "password_failures", "value": evidence["failures"],
             "threshold": decided_param(hold, ctx, "password.max_consecutive_failures")},
            {"fact": "locked_at", "value": iso(evidence["locked_at"])}]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_TIME, "condition": "lock_expires", "at": iso(hold.releases_at)},
            {"path": H.RELEASE_EVENT, "condition": "password_reset",
             "identity_verification": True}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "wait_until", "at": iso(hold.releases_at)},
            {"step": "reset_password_with_verification"}]


def _counterfactual(hold: H.Hold, ctx: ExplainContext) -> Item:
    return {"if": "password_reset_with_verification"}


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    return PlanStep({"action": "reset_password", "code": hold.code},
                    ({"type": "password_reset", "identity_verified": True},))


CAUSE = Cause(
    name="password",
    holds=(
        HoldKind(H.PASSWORD_LOCKED, 1100, (H.RELEASE_TIME, H.RELEASE_EVENT),
                 Explanation(_evidence, _release, _steps, _counterfactual), plan=_plan),
    ),
    policy_sections=("password",),
    listens=MappingProxyType({
        ev.Purchase: on_purchase,
        ev.PasswordAttempt: on_password_attempt,
        ev.PasswordReset: on_password_reset,
    }),
)

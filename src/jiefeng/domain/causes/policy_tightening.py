"""政策收紧: a portfolio-wide sweep closes the lines its criteria match.

An operator's sweep (criteria over the features in docs/criteria.md) closes every matching
account at the sweep's time, including accounts folded later up to that time. The line reopens
when the sweep's reopen criteria match, not before `policy_tightening.min_closed_days`, or on
an approved appeal. Criteria that read features moving with time alone are looked at daily.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import Any

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso, jsonable, money, ts
from jiefeng.domain.clock import DAY, local_date, local_midnight
from jiefeng.domain.effects import Effect
from jiefeng.domain.features import features
from jiefeng.domain.holdbook import place, release
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import decided, read
from jiefeng.policy.schema import Policy

# Features whose snapshot value is yuan (a float in `features`); shown as money.
_MONEY_FEATURES = frozenset({"credit_limit", "available_credit", "deposits", "wealth_balance"})


def on_account_opened(state: AccountState, event: ev.AccountOpened, policy: Policy,
                      scopes: Scopes, effects: list[Effect]) -> None:
    # Sweeps before the opening never apply to this account.
    state.sweeps_seen = sum(1 for s in scopes.sweeps if s.at <= event.at)


def _apply_sweeps(state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes,
                  effects: list[Effect]) -> None:
    while state.sweeps_seen < len(scopes.sweeps) and scopes.sweeps[state.sweeps_seen].at <= at:
        sweep = scopes.sweeps[state.sweeps_seen]
        state.sweeps_seen += 1
        if H.POLICY_TIGHTENING in state.holds:
            continue
        # Imported here, when a sweep is due, not at every deadline: an import statement in a
        # function runs each time (and costs most when compiled).
        from jiefeng.policy.criteria import compile_stored_criteria

        criteria = compile_stored_criteria(sweep.criteria)
        snapshot = features(state, sweep.at, policy)
        if not criteria.matches(snapshot):
            continue
        place(state, effects, H.POLICY_TIGHTENING, sweep.at, sweep.event_id, {
            "sweep_id": sweep.sweep_id,
            "matched": {name: snapshot[name] for name in sorted(criteria.features_used)},
            "reopen_criteria": sweep.reopen_criteria,
            "earliest_reopen_at": sweep.at + DAY * policy.policy_tightening.min_closed_days,
        }, actor=sweep.actor, trace=decided(
            "policy_tightening.sweep_matched", policy, sweep.at,
            read(policy, "policy_tightening.min_closed_days"),
            {"sweep_id": sweep.sweep_id, "criteria": sweep.criteria,
             "features": {name: snapshot[name] for name in sorted(criteria.features_used)},
             "reopen_criteria": sweep.reopen_criteria}))


def _check_reopen(
    state: AccountState, at: dt.datetime, cause: str, policy: Policy, effects: list[Effect]
) -> None:
    from jiefeng.policy.criteria import compile_stored_criteria

    hold = state.holds.get(H.POLICY_TIGHTENING)
    if hold is None or at < hold.evidence["earliest_reopen_at"]:
        return
    if compile_stored_criteria(
        hold.evidence["reopen_criteria"]).matches(features(state, at, policy)):
        release(state, effects, H.POLICY_TIGHTENING, at, cause, "reopen_criteria_met")


def after_change(state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes,
                 effects: list[Effect]) -> None:
    """Any event may move a feature the reopen criteria read (run while the line is closed)."""
    _check_reopen(state, at, state.last_event_id or "clock", policy, effects)


def on_time(state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes,
            effects: list[Effect]) -> None:
    _apply_sweeps(state, at, policy, scopes, effects)
    if H.POLICY_TIGHTENING in state.holds:
        _check_reopen(state, at, "clock:reopen", policy, effects)


def deadline(state: AccountState, policy: Policy, scopes: Scopes) -> dt.datetime | None:
    clock = state.clock
    assert clock is not None  # deadlines are asked of an opened account
    best: dt.datetime | None = None
    tightening = state.holds.get(H.POLICY_TIGHTENING)
    if tightening is not None:
        earliest = tightening.evidence["earliest_reopen_at"]
        # Once eligible, criteria such as account_age_days turn true by time alone: look
        # again daily.
        tz = policy.zone
        t = earliest if clock < earliest else local_midnight(local_date(clock, tz) + DAY, tz)
        if t > clock:
            best = t
    if state.sweeps_seen < len(scopes.sweeps):
        t = scopes.sweeps[state.sweeps_seen].at
        if t > clock and (best is None or t < best):
            best = t
    return best


# --- explanation ----------------------------------------------------------------------------------


def _feature_value(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in _MONEY_FEATURES:
        return money(round(value * 100))
    if name == "utilization":
        return round(float(value), 4)
    return jsonable(value)


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    items: list[Item] = [{"fact": "portfolio_review", "value": ts(hold.since)}]
    for name, value in sorted(hold.evidence.get("matched", {}).items()):
        items.append({"fact": "feature_matched", "value": _feature_value(name, value),
                      "feature": name})
    return items


def _reopen_criteria(hold: H.Hold, ctx: ExplainContext) -> tuple[str, list[str], bool]:
    from jiefeng.policy.criteria import compile_stored_criteria

    text = hold.evidence["reopen_criteria"]
    criteria = compile_stored_criteria(text)
    met = criteria.matches(features(ctx.state, ctx.at, ctx.policy))
    return text, sorted(criteria.features_used), met


def _criteria_terms(text: str) -> tuple[str | None, list[Item] | None]:
    """The criteria term by term for the customer (feature, op, value in its unit, direction),
    and how the terms join ("and", "or" or None for one term); (None, None) for a shape a
    customer cannot read at a glance (the release then names the features only)."""
    from jiefeng.policy.criteria import describe_criteria

    described = describe_criteria(text)
    if described is None:
        return None, None
    terms = []
    for term in described["terms"]:
        name = term["feature"]
        item: Item = {"feature": name, "op": term["op"], "direction": term["direction"]}
        for key in ("value", "low", "high"):
            if key in term:
                item[key] = _feature_value(name, term[key])
        if "values" in term:
            item["values"] = [_feature_value(name, v) for v in term["values"]]
        terms.append(item)
    return described["join"], terms


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    text, used, met = _reopen_criteria(hold, ctx)
    join, terms = _criteria_terms(text)
    return [{"path": H.RELEASE_CONDITION, "condition": "reopen_criteria", "criteria": text,
             "features": used, "join": join, "terms": terms, "currently_met": met,
             "not_before": iso(hold.evidence["earliest_reopen_at"])}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    # The seed article's advice: better credit and assets kept in the wallet, then reapply.
    not_before = iso(hold.evidence["earliest_reopen_at"])
    return [{"step": "improve_credit"},
            {"step": "keep_assets_in_wallet"},
            {"step": "wait_for_reassessment", "not_before": not_before},
            {"step": "reapply_later"}]


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    return PlanStep(awaited="reopen_criteria")


CAUSE = Cause(
    name="policy_tightening",
    holds=(
        HoldKind(H.POLICY_TIGHTENING, 1200, (H.RELEASE_CONDITION, H.RELEASE_REVIEW),
                 Explanation(_evidence, _release, _steps), closes_line=True, plan=_plan,
                 keeps_terms=True),  # the sweep's own reopen criteria and earliest date
    ),
    policy_sections=("policy_tightening",),
    listens=MappingProxyType({ev.AccountOpened: on_account_opened}),
    deadline=deadline,
    on_time=on_time,
    after_change=after_change,
)

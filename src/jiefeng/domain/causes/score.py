"""信用分不足: the credit score fell below the policy's cut-off.

Placed when a score update is below `score.threshold`; released when a later one reaches the
hold's own `release_at` (a hysteresis above the threshold), or on an approved appeal. One hold,
one set of numbers: a hold keeps the threshold and release value of the policy it was placed
under and is released under them, whatever policy is active later.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType
from typing import Any

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item
from jiefeng.domain.effects import Effect
from jiefeng.domain.holdbook import place, release
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import Trace
from jiefeng.policy.schema import Policy


def score_terms(hold: H.Hold | None, policy: Policy) -> dict[str, Any]:
    """The score hold's numbers: those recorded when it was placed, else (a new hold) the
    policy's. `threshold` placed it, `release_at` releases it, `policy_version` says whose."""
    if hold is not None and "release_at" in hold.evidence:
        evidence = hold.evidence
        return {"threshold": evidence["threshold"], "release_at": evidence["release_at"],
                "policy_version": evidence.get("policy_version")}
    return {"threshold": policy.score.threshold, "release_at": policy.score.release_at,
            "policy_version": policy.version}


def on_score_update(state: AccountState, event: ev.ScoreUpdate, policy: Policy, scopes: Scopes,
                    effects: list[Effect]) -> None:
    state.score = event.score
    state.score_at = event.at
    if event.dimensions is not None:
        state.score_dimensions = {
            name: value
            for name, value in event.dimensions.model_dump().items()
            if value is not None
        }
    held = state.holds.get(H.SCORE_BELOW_THRESHOLD)
    terms = score_terms(held, policy)
    if held is not None and event.score >= terms["release_at"]:
        release(
            state, effects, H.SCORE_BELOW_THRESHOLD, event.at, event.event_id, "score_recovered"
        )
    elif event.score < policy.score.threshold or held is not None:
        weakest = sorted(state.score_dimensions.items(), key=lambda kv: kv[1])[:2]
        # A refresh keeps the terms the hold was placed under: its trace says so.
        trace = Trace("score.below_threshold" if held is None else "score.still_below",
                      terms["policy_version"] or policy.version, event.at,
                      {"score.threshold": terms["threshold"],
                       "score.release_at": terms["release_at"]},
                      {"score": event.score})
        place(state, effects, H.SCORE_BELOW_THRESHOLD, event.at, event.event_id, {
            "score": event.score,
            **terms,
            "weakest_dimensions": [{"dimension": k, "value": v} for k, v in weakest],
        }, trace=trace)


# --- explanation ----------------------------------------------------------------------------------


def _terms(hold: H.Hold, ctx: ExplainContext) -> dict[str, Any]:
    """The numbers the hold was placed under and is released under, never the policy in
    effect now: one hold shows one set of numbers."""
    return score_terms(hold, ctx.policy)


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    evidence = hold.evidence
    items: list[Item] = [{"fact": "score", "value": evidence["score"],
                          "threshold": _terms(hold, ctx)["threshold"]}]
    for dim in evidence.get("weakest_dimensions", [])[:2]:
        items.append({"fact": "weak_dimension", "value": dim["value"],
                      "dimension": dim["dimension"]})
    return items


def _current(hold: H.Hold, ctx: ExplainContext) -> int:
    return ctx.state.score if ctx.state.score is not None else hold.evidence["score"]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    # on_score_update releases at a score >= the hold's own release_at.
    return [{"path": H.RELEASE_CONDITION, "condition": "score_at_least",
             "required": _terms(hold, ctx)["release_at"],
             "current": _current(hold, ctx)}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    steps: list[Item] = [{"step": "improve_score",
                          "required": _terms(hold, ctx)["release_at"]}]
    dims = [d["dimension"] for d in hold.evidence.get("weakest_dimensions", [])[:2]]
    if dims:
        steps.append({"step": "improve_dimensions", "dimensions": dims})
    steps += [{"step": "complete_credit_tasks"}, {"step": "keep_more_commitments"}]
    return steps


def _counterfactual(hold: H.Hold, ctx: ExplainContext) -> Item:
    return {"if": "score_at_least", "value": _terms(hold, ctx)["release_at"]}


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    return PlanStep(awaited="score_update")  # no customer action is a score update


CAUSE = Cause(
    name="score",
    holds=(
        HoldKind(H.SCORE_BELOW_THRESHOLD, 500, (H.RELEASE_CONDITION, H.RELEASE_REVIEW),
                 Explanation(_evidence, _release, _steps, _counterfactual), plan=_plan,
                 keeps_terms=True),
    ),
    policy_sections=("score",),
    listens=MappingProxyType({ev.ScoreUpdate: on_score_update}),
)

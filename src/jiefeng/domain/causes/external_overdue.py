"""关联产品逾期: another credit product of the customer reported overdue to the credit bureau.

Held while any product's latest bureau record is overdue by at least
`external_overdue.min_days_past_due`; lifts when every such record is settled, then starts the
cure probation (`causes/overdue.py`), judged by when this outside overdue began.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso, money
from jiefeng.domain.causes.overdue import probation_days, start_cure_probation
from jiefeng.domain.effects import Effect
from jiefeng.domain.holdbook import MAX_EVIDENCE_ITEMS, place, release
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState, BureauFact
from jiefeng.domain.trace import decided, read
from jiefeng.policy.schema import Policy


def on_bureau_record(state: AccountState, event: ev.BureauRecord, policy: Policy,
                     scopes: Scopes, effects: list[Effect]) -> None:
    product = event.product.value
    state.bureau[product] = BureauFact(
        product, event.status.value, event.days_past_due, event.amount_fen, event.at, event.event_id
    )
    overdue_products = [
        fact
        for fact in state.bureau.values()
        if fact.status == "overdue"
        and fact.days_past_due >= policy.external_overdue.min_days_past_due
    ]
    if overdue_products:
        place(state, effects, H.EXTERNAL_OVERDUE, event.at, event.event_id, {
            "products": [
                {
                    "product": f.product,
                    "days_past_due": f.days_past_due,
                    "amount_fen": f.amount_fen,
                    "reported_at": f.at,
                }
                for f in overdue_products[:MAX_EVIDENCE_ITEMS]
            ],
            "threshold_days": policy.external_overdue.min_days_past_due,
        }, trace=decided("external_overdue.bureau_overdue", policy, event.at,
                         read(policy, "external_overdue.min_days_past_due"),
                         {"overdue_products": {f.product: f.days_past_due
                                               for f in overdue_products},
                          "record": event.event_id}))
    elif H.EXTERNAL_OVERDUE in state.holds:
        began = state.holds[H.EXTERNAL_OVERDUE].since
        release(state, effects, H.EXTERNAL_OVERDUE, event.at, event.event_id, "settled")
        start_cure_probation(
            state, event.at, policy, event.event_id, "external", effects, began=began
        )


# --- explanation ----------------------------------------------------------------------------------


def _products(hold: H.Hold) -> list[Item]:
    return [{"product": p["product"], "days_past_due": p["days_past_due"],
             "amount": money(p["amount_fen"]), "reported_at": iso(p["reported_at"])}
            for p in hold.evidence.get("products", [])]


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    threshold = hold.evidence.get("threshold_days")
    return [{"fact": "external_overdue", "value": p["days_past_due"], "threshold": threshold,
             "product": p["product"], "amount": p["amount"], "at": p["reported_at"]}
            for p in _products(hold)]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "settle_external_overdue",
             "products": [p["product"] for p in _products(hold)],
             "then_probation_days": probation_days(ctx)}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "settle_external_overdue",
             "products": [p["product"] for p in _products(hold)]}]


def _counterfactual(hold: H.Hold, ctx: ExplainContext) -> Item:
    return {"if": "external_settled", "products": [p["product"] for p in _products(hold)],
            "then": H.CURE_PROBATION, "probation_days": probation_days(ctx)}


def _bureau(hold: H.Hold, ctx: ExplainContext) -> Item:
    return {"products": _products(hold)}


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    products = [p["product"] for p in hold.evidence.get("products", [])]
    return PlanStep({"action": "settle_external", "code": hold.code, "products": products},
                    tuple({"type": "bureau_record", "product": product, "status": "settled",
                           "days_past_due": 0, "amount": "0.00"} for product in products))


CAUSE = Cause(
    name="external_overdue",
    holds=(
        HoldKind(H.EXTERNAL_OVERDUE, 300, (H.RELEASE_EVENT, H.RELEASE_REVIEW),
                 Explanation(_evidence, _release, _steps, _counterfactual, _bureau),
                 plan=_plan),
    ),
    policy_sections=("external_overdue", "cure_probation"),
    listens=MappingProxyType({ev.BureauRecord: on_bureau_record}),
)

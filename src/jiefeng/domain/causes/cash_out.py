"""套现 / 刷分: suspected cash-out or score brushing (confidential).

Signals: a purchase of a kind not allowed (cash withdrawal, transfer), one at a high-risk
merchant, several large or round purchases at one merchant within hours, quick refunds of
several purchases, purchases repaid in full within minutes over and over. Any signal places or
refreshes the hold, which lifts after `cash_out.quiet_days` without a new signal, or on an
approved appeal; either way the signals are forgotten. What the customer sees names the kind of
signal and the transaction, never a threshold, count or window.
"""

from __future__ import annotations

import datetime as dt
from types import MappingProxyType

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso
from jiefeng.domain.clock import DAY
from jiefeng.domain.effects import Effect
from jiefeng.domain.holdbook import MAX_EVIDENCE_ITEMS, place, trim
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import decided, read
from jiefeng.policy.schema import Policy

HOUR = dt.timedelta(hours=1)
SIGNAL_MEMORY = DAY * 365


# The parameters each detector reads (its trace names them with their values).
_DETECTOR_PARAMS = {
    "kind_not_allowed": (),
    "high_risk_merchant": (),
    "rapid_merchant": ("cash_out.rapid_window_hours", "cash_out.rapid_purchase_count",
                       "cash_out.rapid_share_of_available_pct", "cash_out.round_amount_fen"),
    "quick_refunds": ("cash_out.quick_refund_hours", "cash_out.quick_refund_window_days",
                      "cash_out.quick_refund_count"),
    "score_brushing": ("cash_out.brushing_repay_minutes", "cash_out.brushing_window_days",
                       "cash_out.brushing_cycle_count"),
}


def cash_out_signal(
    state: AccountState,
    at: dt.datetime,
    signal: str,
    ref: str,
    policy: Policy,
    effects: list[Effect],
    facts: dict | None = None,
) -> None:
    state.last_cash_out_signal_at = at
    state.cash_out_signals.append((at, signal, ref))
    trim(state.cash_out_signals, at - SIGNAL_MEMORY)
    recent = list(state.cash_out_signals)[-MAX_EVIDENCE_ITEMS:]
    # Evidence names the kind of signal and the transaction, never the detection threshold.
    evidence = {"signals": [{"signal": s, "at": t, "ref": r} for t, s, r in recent]}
    trace = decided(f"cash_out.{signal}", policy, at,
                    read(policy, *_DETECTOR_PARAMS[signal], "cash_out.quiet_days"),
                    {"ref": ref, **(facts or {})})
    place(state, effects, H.CASH_OUT_SUSPECTED, at, ref, evidence,
          releases_at=at + DAY * policy.cash_out.quiet_days, trace=trace)


def forget_signals(state: AccountState, at: dt.datetime) -> None:
    """The hold lifted: the patterns that led to it start afresh."""
    state.suspicious_purchases.clear()
    state.quick_refunds.clear()
    state.brushing_cycles.clear()


def on_purchase(state: AccountState, event: ev.Purchase, policy: Policy, scopes: Scopes,
                effects: list[Effect]) -> None:
    """Runs before the purchase is decided: the attempt that completes a pattern is itself
    declined."""
    at = event.at
    rules = policy.cash_out
    if event.kind is not ev.PurchaseKind.PURCHASE:
        cash_out_signal(state, at, "kind_not_allowed", event.event_id, policy, effects,
                        {"kind": event.kind.value})
        return
    if event.merchant_id in rules.high_risk_merchants:
        cash_out_signal(state, at, "high_risk_merchant", event.event_id, policy, effects,
                        {"merchant_id": event.merchant_id})
    available_fen = state.available_for_purchase_fen()
    share_pct = rules.rapid_share_of_available_pct
    large = available_fen > 0 and event.amount_fen * 100 >= available_fen * share_pct
    if large or event.amount_fen % rules.round_amount_fen == 0:
        window = state.suspicious_purchases
        window.append((at, event.merchant_id))
        trim(window, at - HOUR * rules.rapid_window_hours)
        same = sum(1 for _, merchant in window if merchant == event.merchant_id)
        if same >= rules.rapid_purchase_count:
            cash_out_signal(state, at, "rapid_merchant", event.event_id, policy, effects,
                            {"merchant_id": event.merchant_id, "same_merchant_purchases": same,
                             "amount_fen": event.amount_fen, "available_fen": available_fen,
                             "large": large})


def on_refund(state: AccountState, event: ev.Refund, policy: Policy, scopes: Scopes,
              effects: list[Effect]) -> None:
    record = state.purchases[event.purchase_event_id]  # the core checked it is refundable
    rules = policy.cash_out
    if event.at - record.at <= HOUR * rules.quick_refund_hours:
        # Counted per purchase: three partial refunds of one purchase are one quick refund.
        if not any(ref == record.event_id for _, ref in state.quick_refunds):
            state.quick_refunds.append((event.at, record.event_id))
        trim(state.quick_refunds, event.at - DAY * rules.quick_refund_window_days)
        if len(state.quick_refunds) >= rules.quick_refund_count:
            cash_out_signal(state, event.at, "quick_refunds", event.event_id, policy, effects,
                            {"quick_refunds": len(state.quick_refunds),
                             "purchase_event_id": record.event_id})


def on_repayment(state: AccountState, event: ev.Repayment, policy: Policy, scopes: Scopes,
                 effects: list[Effect]) -> None:
    # Score brushing: a purchase repaid in full within the window, over and over. Each purchase
    # completes at most one cycle: repaying the same purchase again is not another cycle.
    at = event.at
    rules = policy.cash_out
    window_start = at - dt.timedelta(minutes=rules.brushing_repay_minutes)
    counted = {purchase_id for _, purchase_id in state.brushing_cycles}
    for purchase_at, purchase_id in state.purchases.newest_first():
        if purchase_at < window_start:
            break
        record = state.purchases.get(purchase_id)
        if (
            record is not None
            and purchase_id not in counted
            and record.amount_fen <= event.amount_fen
        ):
            state.brushing_cycles.append((at, purchase_id))
            trim(state.brushing_cycles, at - DAY * rules.brushing_window_days)
            if len(state.brushing_cycles) >= rules.brushing_cycle_count:
                cash_out_signal(state, at, "score_brushing", event.event_id, policy, effects,
                                {"cycles": len(state.brushing_cycles),
                                 "purchase_event_id": purchase_id})
            break


# --- explanation (confidential: kinds, refs and times only) --------------------------------------


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    signals = hold.evidence.get("signals", [])[-MAX_EVIDENCE_ITEMS:]
    return [{"fact": "cash_out_signal", "value": s["signal"], "ref": s["ref"], "at": iso(s["at"])}
            for s in reversed(signals)]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_TIME, "condition": "no_new_signals_until",
             "at": iso(hold.releases_at)}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "use_for_genuine_purchases"}]


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    # Only what the customer can do; it lifts with quiet time.
    return PlanStep({"action": "use_for_real_purchases", "code": hold.code})


CAUSE = Cause(
    name="cash_out",
    holds=(
        HoldKind(H.CASH_OUT_SUSPECTED, 400, (H.RELEASE_TIME, H.RELEASE_REVIEW),
                 Explanation(_evidence, _release, _steps, appeal_step="appeal_with_receipts"),
                 confidential=True, on_expiry=forget_signals, on_appeal_approved=forget_signals,
                 plan=_plan),
    ),
    policy_sections=("cash_out",),
    listens=MappingProxyType({
        ev.Purchase: on_purchase,
        ev.Refund: on_refund,
        ev.Repayment: on_repayment,
    }),
)

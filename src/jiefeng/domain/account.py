"""What every account does whatever its holds: opening, deciding and posting purchases,
refunds and repayments, installment plans, assets, and the appeals process.

These run around the causes' handlers (see `jiefeng.domain.rules`): a `before` handler checks
and posts the event and may refuse it (returning IGNORED: no cause sees it); an `after` handler
runs once every cause has reacted (a purchase is decided after the signals it completes).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jiefeng.domain import causes
from jiefeng.domain import events as ev
from jiefeng.domain import ledger as L
from jiefeng.domain.billing import minimum_terms
from jiefeng.domain.clock import DAY, first_statement_date, local_date
from jiefeng.domain.decline_order import in_precedence
from jiefeng.domain.effects import (
    APPEAL_DECIDED,
    APPEAL_RECORDED,
    INSTALLMENT_PLAN_CREATED,
    PURCHASE_DECIDED,
    Effect,
)
from jiefeng.domain.features import PURCHASES_WINDOW
from jiefeng.domain.holdbook import ignored, release, trim
from jiefeng.domain.outcomes import APPROVED, ISSUER_DECLINED, Outcome
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import (
    MAX_APPEALS,
    MAX_REMEMBERED_PURCHASES,
    REMEMBERED_PURCHASE_DAYS,
    AccountState,
    Appeal,
    DeclinedPurchase,
    PurchaseRecord,
)
from jiefeng.policy.schema import Policy

IGNORED = True  # what a `before` handler returns when the event does not apply
REMEMBERED_PURCHASES_SPAN = DAY * REMEMBERED_PURCHASE_DAYS
REMEMBERED_PURCHASES_SPAN_US = REMEMBERED_PURCHASES_SPAN // dt.timedelta(microseconds=1)


def on_account_opened(state: AccountState, event: ev.AccountOpened, policy: Policy,
                      scopes: Scopes, effects: list[Effect]) -> bool:
    if state.opened:
        effects.append(ignored(state, event, "account already opened"))
        return IGNORED
    tz = policy.zone
    state.opened = True
    state.opened_at = event.at
    state.clock = event.at
    state.credit_limit_fen = event.credit_limit_fen
    state.statement_day = event.statement_day
    state.due_day = event.due_day
    state.segment = event.segment
    state.id_expires_on = event.id_expires_on
    state.next_statement_date = first_statement_date(event.at, event.statement_day, tz)
    state.ledger.accrued_through = local_date(event.at, tz)
    return False


# --- purchases ---------------------------------------------------------------------------------


def blocking_codes(state: AccountState, at: dt.datetime, scopes: Scopes) -> list[str]:
    """The hold codes that block a purchase at `at`: the account's own and the scoped ones."""
    codes = sorted(state.holds) if state.holds else []
    for code, blocks in causes.tables().scope_blocks:
        if blocks(state, at, scopes):
            codes.append(code)
    return codes


def purchase_outcome(
    state: AccountState, event: ev.Purchase, available_fen: int, scopes: Scopes
) -> Outcome:
    """Approve, or decline with every code that applies; an issuer's decision (the event's
    `authorization`) stands, with the codes jiefeng would have declined with as evidence."""
    codes: list[str] = [] if event.kind is ev.PurchaseKind.PURCHASE else ["kind_not_allowed"]
    codes.extend(blocking_codes(state, event.at, scopes))
    if event.password_ok is False:
        codes.append("wrong_password")
    if event.amount_fen > available_fen:
        codes.append("insufficient_credit")
    if not codes and event.authorization is None:  # most purchases
        return APPROVED
    if len(codes) > 1:
        codes = in_precedence(codes)
    if event.authorization is None:
        return Outcome(False, tuple(codes))
    if event.authorization is ev.Authorization.APPROVED:
        return Outcome(True, (), True, tuple(codes))
    return Outcome(False, (ISSUER_DECLINED,), True, tuple(codes))


def on_purchase(state: AccountState, event: ev.Purchase, policy: Policy, scopes: Scopes,
                effects: list[Effect]) -> bool:
    """Before the causes react: the available credit they and the decision read (computing it
    sums every open statement, and a purchase needed it twice)."""
    state.purchase_available_fen = state.available_credit_fen
    return False


def decide_purchase(state: AccountState, event: ev.Purchase, policy: Policy, scopes: Scopes,
                    effects: list[Effect], recorded: Outcome | None = None) -> None:
    """`recorded`: the outcome stored when the purchase was first decided, reused as it is."""
    at = event.at
    # The causes' signals never move the ledger, so this is the figure they saw too.
    available_fen = state.available_for_purchase_fen()
    state.purchase_available_fen = None
    # Decisions are facts: once made, a purchase's outcome is reused by every later fold.
    outcome = purchase_outcome(state, event, available_fen, scopes) if recorded is None \
        else recorded
    if not state.omits_decisions:
        effects.append(Effect(PURCHASE_DECIDED, at, state.account_id, None, event.event_id,
                              {**outcome.data(), "amount_fen": event.amount_fen,
                               "policy_version": policy.version}))
    if not outcome.approved:
        state.declined_purchases.append(
            DeclinedPurchase(at, event.event_id, event.amount_fen, event.merchant_id,
                             tuple(outcome.codes)))
        trim(state.declined_purchases, at - REMEMBERED_PURCHASES_SPAN)
        return
    L.post_purchase(state.ledger, event.amount_fen)
    state.purchases_total_fen += event.amount_fen
    state.last_purchase_at = at
    # Purchases are remembered for refunds and appeals, within a horizon and a count.
    state.purchases.remember(event.event_id, at, event.amount_fen, event.merchant_id,
                             REMEMBERED_PURCHASES_SPAN_US, MAX_REMEMBERED_PURCHASES)


def on_refund(state: AccountState, event: ev.Refund, policy: Policy, scopes: Scopes,
              effects: list[Effect]) -> bool:
    record = state.purchases.get(event.purchase_event_id)
    if record is None or event.amount_fen > record.amount_fen - record.refunded_fen:
        effects.append(ignored(state, event, "refund does not match a refundable purchase"))
        return IGNORED
    state.purchases[record.event_id] = PurchaseRecord(
        record.event_id,
        record.at,
        record.amount_fen,
        record.merchant_id,
        record.refunded_fen + event.amount_fen,
        record.plan_id,
    )
    L.refund(state.ledger, event.amount_fen, record.event_id)
    return False


def on_repayment(state: AccountState, event: ev.Repayment, policy: Policy, scopes: Scopes,
                 effects: list[Effect]) -> bool:
    at = event.at
    state.repayments_total_fen += event.amount_fen
    state.recent_repayments.append((at, event.amount_fen, event.event_id))
    trim(state.recent_repayments, at - PURCHASES_WINDOW)
    L.pay(state.ledger, event.amount_fen, repayment=True)
    return False


def on_installment_plan_created(state: AccountState, event: ev.InstallmentPlanCreated,
                                policy: Policy, scopes: Scopes, effects: list[Effect]) -> bool:
    from jiefeng.domain.decisions import DomainRejected, billed_on_date, check_installment_plan

    try:  # the store refuses these before they come; a replay of an old log may still hold one
        check_installment_plan(state, event, policy)
    except DomainRejected as rejection:
        effects.append(ignored(state, event, str(rejection)))
        return IGNORED
    record = state.purchases[event.purchase_event_id]
    billed_on = billed_on_date(state, record.at, policy.zone)
    principal_fen = L.convertible_principal_fen(state.ledger, billed_on, record.amount_fen)
    fee_fen = L.installment_fee_fen(principal_fen,
                                    policy.installments.fee_pct_total[event.months])
    plan = L.InstallmentPlan(event.plan_id, record.event_id, event.months, event.at,
                             principal_fen, fee_fen)
    L.create_plan(state.ledger, plan, billed_on, minimum_terms(policy))
    state.purchases[record.event_id] = PurchaseRecord(
        record.event_id, record.at, record.amount_fen, record.merchant_id, record.refunded_fen,
        event.plan_id)
    first_principal_fen, first_fee_fen = plan.next_installment()
    effects.append(Effect(INSTALLMENT_PLAN_CREATED, event.at, state.account_id, None,
                          event.event_id, {
                              "plan_id": plan.plan_id,
                              "purchase_event_id": plan.purchase_event_id,
                              "months": plan.months,
                              "principal_fen": principal_fen,
                              "fee_fen": fee_fen,
                              "first_installment_fen": first_principal_fen + first_fee_fen,
                          }))
    return False


def on_asset_update(state: AccountState, event: ev.AssetUpdate, policy: Policy, scopes: Scopes,
                    effects: list[Effect]) -> bool:
    state.deposits_fen = event.deposits_fen
    state.wealth_balance_fen = event.wealth_balance_fen
    return False


# --- appeals -----------------------------------------------------------------------------------


def on_appeal_submitted(state: AccountState, event: ev.AppealSubmitted, policy: Policy,
                        scopes: Scopes, effects: list[Effect]) -> bool:
    status = "pending" if event.hold_code in state.holds else "void"
    state.appeals[event.appeal_id] = Appeal(
        event.appeal_id,
        event.hold_code,
        event.at,
        event.statement,
        tuple(event.purchase_event_ids),
        status,
    )
    if len(state.appeals) > MAX_APPEALS:
        del state.appeals[next(iter(state.appeals))]
    effects.append(Effect(APPEAL_RECORDED, event.at, state.account_id, event.hold_code,
                          event.event_id, {"appeal_id": event.appeal_id, "status": status}))
    return False


def on_appeal_decided(state: AccountState, event: ev.AppealDecided, policy: Policy,
                      scopes: Scopes, effects: list[Effect]) -> bool:
    appeal = state.appeals.get(event.appeal_id)
    if appeal is None or appeal.status != "pending":
        effects.append(ignored(state, event, "no pending appeal with this id"))
        return IGNORED
    approved = event.decision == ev.AppealDecision.APPROVE
    state.appeals[event.appeal_id] = Appeal(
        appeal.appeal_id,
        appeal.hold_code,
        appeal.submitted_at,
        appeal.statement,
        appeal.purchase_event_ids,
        "approved" if approved else "rejected",
        event.at,
        event.actor,
        event.reason,
    )
    effects.append(Effect(APPEAL_DECIDED, event.at, state.account_id, appeal.hold_code,
                          event.event_id,
                          {"appeal_id": appeal.appeal_id, "decision": event.decision.value}))
    if approved:
        code = appeal.hold_code
        kind = causes.tables().kinds.get(code)
        tidy = kind.on_appeal_approved if kind is not None else None
        if tidy is not None:
            tidy(state, event.at)  # what the cause forgets when a reviewer lifts its hold
        release(state, effects, code, event.at, event.event_id, "appeal_approved")
    return False


# Run before the causes (they may refuse the event), and after them.
BEFORE: dict[type, Any] = {
    ev.AccountOpened: on_account_opened,
    ev.Purchase: on_purchase,
    ev.Refund: on_refund,
    ev.Repayment: on_repayment,
    ev.InstallmentPlanCreated: on_installment_plan_created,
    ev.AssetUpdate: on_asset_update,
    ev.AppealSubmitted: on_appeal_submitted,
    ev.AppealDecided: on_appeal_decided,
}
AFTER: dict[type, Any] = {ev.Purchase: decide_purchase}

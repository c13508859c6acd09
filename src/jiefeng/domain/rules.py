"""The rules for the nine freeze causes: event handlers and time-driven checks.

Each handler mutates the working state it is given (the core hands it a private copy) and
appends effects. Handlers never read a clock: the event's `at` or the deadline is the time.
Thresholds come from the policy; nothing here hard-codes one.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from typing import Any

from jiefeng.domain import events as ev
from jiefeng.domain import holds as H
from jiefeng.domain import ledger as L
from jiefeng.domain.clock import (
    DAY,
    first_statement_date,
    local_date,
    local_midnight,
    local_midnight_shifted,
    next_day_of_month,
    zone,
)
from jiefeng.domain.decline_order import in_precedence
from jiefeng.domain.effects import (
    APPEAL_DECIDED,
    APPEAL_RECORDED,
    BUREAU_REPORTED,
    EVENT_IGNORED,
    HOLD_PLACED,
    HOLD_RELEASED,
    HOLD_UPDATED,
    INSTALLMENT_PLAN_CREATED,
    NOTICE,
    PURCHASE_DECIDED,
    STATEMENT_ISSUED,
    STATEMENT_JUDGED,
    Effect,
)
from jiefeng.domain.outcomes import ISSUER_DECLINED, Outcome
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import (
    MAX_APPEALS,
    MAX_REMEMBERED_PURCHASES,
    MAX_WINDOW_ITEMS,
    REMEMBERED_PURCHASE_DAYS,
    AccountState,
    Appeal,
    BureauFact,
    DeclinedPurchase,
    PurchaseRecord,
)
from jiefeng.policy.schema import Policy

HOUR = dt.timedelta(hours=1)
PURCHASES_WINDOW = dt.timedelta(days=90)
REMEMBERED_PURCHASES_SPAN = DAY * REMEMBERED_PURCHASE_DAYS
OVERDUE_MEMORY = dt.timedelta(days=730)
MAX_EVIDENCE_ITEMS = 4  # the principal reasons shown to a customer


# --- hold bookkeeping -------------------------------------------------------------------------


def place(
    state: AccountState,
    effects: list[Effect],
    code: str,
    at: dt.datetime,
    cause: str,
    evidence: dict[str, Any],
    releases_at: dt.datetime | None = None,
    actor: str | None = None,
) -> None:
    """Place a hold, or refresh the evidence of one already active (keeping its `since`)."""
    current = state.holds.get(code)
    if current is None:
        state.holds[code] = H.Hold(code, at, cause, evidence, releases_at, actor)
        effects.append(
            Effect(
                HOLD_PLACED,
                at,
                state.account_id,
                code,
                cause,
                {"releases_at": releases_at.isoformat() if releases_at else None},
            )
        )
        return
    state.holds[code] = H.Hold(
        code,
        current.since,
        current.placed_by,
        evidence,
        releases_at,
        current.placed_by_actor if actor is None else actor,
    )
    effects.append(Effect(HOLD_UPDATED, at, state.account_id, code, cause, {}))


def release(
    state: AccountState, effects: list[Effect], code: str, at: dt.datetime, cause: str, why: str
) -> bool:
    hold = state.holds.pop(code, None)
    if hold is None:
        return False
    effects.append(
        Effect(
            HOLD_RELEASED,
            at,
            state.account_id,
            code,
            cause,
            {"since": hold.since.isoformat(), "path": why},
        )
    )
    # An appeal against a hold that lifted another way has nothing left to decide; left
    # pending it would block an appeal against a later hold of the same code.
    for appeal in list(state.appeals.values()):
        if appeal.hold_code == code and appeal.status == "pending":
            state.appeals[appeal.appeal_id] = Appeal(
                appeal.appeal_id,
                appeal.hold_code,
                appeal.submitted_at,
                appeal.statement,
                appeal.purchase_event_ids,
                "lapsed",
                at,
                None,
                why,
            )
            effects.append(
                Effect(
                    APPEAL_DECIDED,
                    at,
                    state.account_id,
                    code,
                    cause,
                    {"appeal_id": appeal.appeal_id, "decision": "lapsed"},
                )
            )
    return True


def _trim(window: deque, before: dt.datetime) -> None:
    """Drop items older than `before` (items are datetimes or tuples starting with one)."""
    while window and (window[0][0] if isinstance(window[0], tuple) else window[0]) < before:
        window.popleft()
    while len(window) > MAX_WINDOW_ITEMS:
        window.popleft()


def ignored(state: AccountState, event: Any, reason: str) -> Effect:
    """An event the fold could not apply; the store refuses most of these before they come."""
    return Effect(EVENT_IGNORED, event.at, state.account_id, None, event.event_id,
                  {"reason": reason})


# --- opening and billing ----------------------------------------------------------------------


def on_account_opened(state, event: ev.AccountOpened, policy, scopes, effects) -> None:
    if state.opened:
        effects.append(ignored(state, event, "account already opened"))
        return
    tz = zone(policy.timezone)
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
    state.dormancy_anchor = event.at
    # Sweeps before the opening never apply to this account.
    state.sweeps_seen = sum(1 for s in scopes.sweeps if s.at <= event.at)
    if event.id_expires_on < local_date(event.at, tz):
        place(
            state,
            effects,
            H.ID_EXPIRED,
            event.at,
            event.event_id,
            {"expires_on": event.id_expires_on},
        )
    else:
        _id_notice_if_due(state, event.at, policy, effects)


def due_date_for(statement_date: dt.date, due_day: int) -> dt.date:
    return next_day_of_month(statement_date, due_day)


def minimum_terms(policy: Policy) -> L.MinimumTerms:
    billing = policy.billing
    return L.MinimumTerms(billing.minimum_payment_pct, billing.minimum_payment_floor_fen)


def issue_statement(
    state: AccountState, at: dt.datetime, policy: Policy, effects: list[Effect]
) -> None:
    statement_date = state.next_statement_date
    assert statement_date is not None
    state.next_statement_date = next_day_of_month(statement_date, state.statement_day)
    due = due_date_for(statement_date, state.due_day)
    statement = L.issue_statement(state.ledger, statement_date, due, minimum_terms(policy))
    if statement is None:
        return
    effects.append(
        Effect(
            STATEMENT_ISSUED,
            at,
            state.account_id,
            None,
            f"clock:statement:{statement_date}",
            {
                "statement_date": statement_date.isoformat(),
                "due_date": due.isoformat(),
                "amount_fen": statement.billed_fen,
                "new_balance_fen": statement.new_balance_fen,
                "minimum_due_fen": statement.minimum_due_fen,
            },
        )
    )


def accrue(state: AccountState, now: dt.datetime, policy: Policy) -> None:
    """Interest and late fees for the whole local days that passed (see ledger.accrue)."""
    ledger = state.ledger
    if not ledger.statements:
        return  # nothing accrues without a statement; the day count still moves on
    billing = policy.billing
    L.accrue(ledger, local_date(now, zone(policy.timezone)),
             billing.revolving_interest_daily_bp, billing.late_fee_daily_bp)


def _disruption_end(
    state: AccountState, day_start: dt.datetime, now: dt.datetime, scopes: Scopes
) -> dt.datetime | None | bool:
    """Did maintenance or a migration cover this account during [day_start, now)?

    Returns False if not, True if one is still going on at `now`, else the latest end.
    """
    latest: dt.datetime | None = None
    for window in scopes.windows.values():
        if window.applies_to(state.segment, now) and window.start < now and window.end > day_start:
            latest = window.end if latest is None else max(latest, window.end)
    for campaign in scopes.campaigns.values():
        if not campaign.includes(state.account_id, state.segment) or campaign.started_at >= now:
            continue
        done = campaign.completed_at(state.account_id)
        if done is None or done > now:
            return True
        if done > day_start:
            latest = done if latest is None else max(latest, done)
    return False if latest is None else latest


def check_overdue(
    state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes, effects: list[Effect]
) -> None:
    """Judge each statement's minimum at the end of local day `due_date + grace_days`."""
    tz = zone(policy.timezone)
    grace_days = policy.billing.grace_days
    ledger = state.ledger
    newly_overdue = False
    for statement in ledger.statements:
        if statement.judged:
            continue
        check_at = local_midnight_shifted(statement.due_date, grace_days + 1, tz)
        if check_at > at:
            continue
        disruption = _disruption_end(state, local_midnight(statement.due_date, tz), at, scopes)
        if disruption is not False:
            # A due date inside maintenance or a migration moves past it: no fee, no overdue.
            moved = statement.due_date + DAY
            if isinstance(disruption, dt.datetime):
                # The first local day the disruption does not touch; a window ending after
                # midnight touches its last day, which would otherwise move the date twice.
                first_clear_day = local_date(disruption, tz)
                if local_midnight(first_clear_day, tz) < disruption:
                    first_clear_day += DAY
                moved = max(moved, first_clear_day)
            statement.due_date = moved
            continue
        if L.judge(ledger, statement, check_at, policy.billing.tolerance_fen):
            newly_overdue = True
        _judged(state, statement, at, "clock:overdue", effects)
    if newly_overdue and H.OVERDUE not in state.holds:
        # A new overdue episode (a further statement falling due while the account is already
        # overdue is the same episode): this is what "a second overdue" counts.
        state.overdue_starts.append(at)
        _trim(state.overdue_starts, at - OVERDUE_MEMORY)
    if newly_overdue:
        if H.CURE_PROBATION in state.holds:
            release(state, effects, H.CURE_PROBATION, at, "clock:overdue", "superseded_by_overdue")
    _refresh_overdue_hold(state, at, policy, "clock:overdue", effects)


def _refresh_overdue_hold(
    state: AccountState, at: dt.datetime, policy: Policy, cause: str, effects: list[Effect]
) -> None:
    ledger = state.ledger
    oldest = ledger.oldest_past_due()
    if oldest is None:
        return
    # Evidence holds what changes only with repayments; the live amounts (interest and late
    # fees accrue daily) are read from the ledger when explaining.
    evidence = {
        "statement_date": oldest.statement_date,
        "due_date": oldest.due_date,
        "minimum_past_due_fen": ledger.past_due_minimum_fen(),
        "principal_past_due_fen": ledger.past_due_minimum_fen(),
        "statements_past_due": len(ledger.past_due_statements()),
        "bureau_report_days_past_due": policy.overdue.bureau_report_days_past_due,
        "grace_days": policy.billing.grace_days,
        "tolerance_fen": policy.billing.tolerance_fen,
    }
    if H.OVERDUE in state.holds and state.holds[H.OVERDUE].evidence == evidence:
        return
    place(state, effects, H.OVERDUE, at, cause, evidence)


def _bureau_days(policy: Policy) -> tuple[int, int]:
    """Days past due of the bureau pre-notice and report. Counted past the grace period: an
    account is not past due during it, so the customer still gets the notice's warning."""
    grace_days = policy.billing.grace_days
    return (grace_days + policy.overdue.bureau_prenotice_days_past_due,
            grace_days + policy.overdue.bureau_report_days_past_due)


def check_bureau_reporting(
    state: AccountState, at: dt.datetime, policy: Policy, effects: list[Effect]
) -> None:
    tz = zone(policy.timezone)
    today = local_date(at, tz)
    notice_days, report_days = _bureau_days(policy)
    for statement in state.ledger.past_due_statements():
        days_past_due = (today - statement.due_date).days
        if not statement.bureau_notice_sent and days_past_due >= notice_days:
            statement.bureau_notice_sent = True
            effects.append(
                Effect(
                    NOTICE,
                    at,
                    state.account_id,
                    H.OVERDUE,
                    "clock:overdue",
                    {
                        "notice": "bureau_prenotice",
                        "statement_date": statement.statement_date.isoformat(),
                        "report_on": (statement.due_date + DAY * report_days).isoformat(),
                        "minimum_past_due_fen": state.ledger.past_due_minimum_fen(),
                    },
                )
            )
        if not statement.bureau_reported and days_past_due >= report_days:
            statement.bureau_reported = True
            effects.append(
                Effect(
                    BUREAU_REPORTED,
                    at,
                    state.account_id,
                    H.OVERDUE,
                    "clock:overdue",
                    {
                        "statement_date": statement.statement_date.isoformat(),
                        "days_past_due": days_past_due,
                    },
                )
            )


def _cure_days(state: AccountState, policy: Policy, began: dt.datetime | None = None) -> int:
    """Probation days for the overdue that began at `began` (default: the latest one here).

    Doubled when an earlier overdue on this line began within the repeat window before it. An
    outside (bureau) overdue is not in `overdue_starts`, so its own start is passed in; comparing
    the two latest line overdues instead would judge it by unrelated, possibly old, history.
    """
    days = policy.cure_probation.days
    starts = list(state.overdue_starts)
    if began is None:
        if not starts:
            return days
        began = starts.pop()
    earlier = [start for start in starts if start <= began]
    if earlier and began - earlier[-1] <= DAY * policy.cure_probation.repeat_window_days:
        days *= policy.cure_probation.repeat_multiplier
    return days


def start_cure_probation(
    state: AccountState,
    at: dt.datetime,
    policy: Policy,
    cause: str,
    source: str,
    effects: list[Effect],
    began: dt.datetime | None = None,
) -> None:
    days = _cure_days(state, policy, began)
    ends = at + DAY * days
    current = state.holds.get(H.CURE_PROBATION)
    if current is not None and current.releases_at is not None and current.releases_at > ends:
        ends = current.releases_at
    place(
        state,
        effects,
        H.CURE_PROBATION,
        at,
        cause,
        {
            "source": source,
            "probation_days": days,
            "cleared_at": at,
            "repeat": days > policy.cure_probation.days,
        },
        releases_at=ends,
    )


# --- purchases, refunds, repayments ------------------------------------------------------------


def blocking_codes(state: AccountState, at: dt.datetime, scopes: Scopes) -> list[str]:
    codes = sorted(state.holds) if state.holds else []
    if scopes.windows and scopes.in_maintenance(at, state.segment):
        codes.append(H.MAINTENANCE)
    if scopes.campaigns and scopes.migrating(at, state.account_id, state.segment):
        codes.append(H.MIGRATION)
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
    codes = in_precedence(codes)
    if event.authorization is None:
        return Outcome(not codes, tuple(codes))
    if event.authorization is ev.Authorization.APPROVED:
        return Outcome(True, (), True, tuple(codes))
    return Outcome(False, (ISSUER_DECLINED,), True, tuple(codes))


def on_purchase(state, event: ev.Purchase, policy, scopes, effects,
                recorded: Outcome | None = None) -> None:
    """`recorded`: the outcome stored when the purchase was first decided, reused as it is."""
    at = event.at
    # Signals below never move the ledger, so this is also the figure the decision uses.
    available_fen = state.available_credit_fen
    ordinary = event.kind is ev.PurchaseKind.PURCHASE
    # Signals first: the attempt that completes a cash-out pattern is itself declined.
    if not ordinary:
        cash_out_signal(state, at, "kind_not_allowed", event.event_id, policy, effects)
    else:
        if event.merchant_id in policy.cash_out.high_risk_merchants:
            cash_out_signal(state, at, "high_risk_merchant", event.event_id, policy, effects)
        share_pct = policy.cash_out.rapid_share_of_available_pct
        large = available_fen > 0 and event.amount_fen * 100 >= available_fen * share_pct
        if large or event.amount_fen % policy.cash_out.round_amount_fen == 0:
            window = state.suspicious_purchases
            window.append((at, event.merchant_id))
            _trim(window, at - HOUR * policy.cash_out.rapid_window_hours)
            same = sum(1 for _, merchant in window if merchant == event.merchant_id)
            if same >= policy.cash_out.rapid_purchase_count:
                cash_out_signal(state, at, "rapid_merchant", event.event_id, policy, effects)
    if event.password_ok is not None:
        _password_attempt(state, at, event.password_ok, event.event_id, policy, effects)

    # Decisions are facts: once made, a purchase's outcome is reused by every later fold.
    if recorded is None:
        outcome = purchase_outcome(state, event, available_fen, scopes)
    else:
        outcome = recorded
    approved = outcome.approved
    effects.append(
        Effect(
            PURCHASE_DECIDED,
            at,
            state.account_id,
            None,
            event.event_id,
            {**outcome.data(), "amount_fen": event.amount_fen, "policy_version": policy.version},
        )
    )
    if not approved:
        state.declined_purchases.append(
            DeclinedPurchase(at, event.event_id, event.amount_fen, event.merchant_id,
                             tuple(outcome.codes)))
        _trim(state.declined_purchases, at - REMEMBERED_PURCHASES_SPAN)
        return
    L.post_purchase(state.ledger, event.amount_fen)
    state.purchases_total_fen += event.amount_fen
    state.last_purchase_at = at
    state.purchases[event.event_id] = PurchaseRecord(
        event.event_id, at, event.amount_fen, event.merchant_id
    )
    # Purchases are remembered for refunds and appeals, within a horizon and a count.
    horizon = at - REMEMBERED_PURCHASES_SPAN
    while state.purchases and (
        len(state.purchases) > MAX_REMEMBERED_PURCHASES
        or next(iter(state.purchases.values())).at < horizon
    ):
        del state.purchases[next(iter(state.purchases))]
    state.recent_purchases.append((at, event.event_id))
    _trim(state.recent_purchases, at - PURCHASES_WINDOW)


def on_refund(state, event: ev.Refund, policy, scopes, effects) -> None:
    record = state.purchases.get(event.purchase_event_id)
    if record is None or event.amount_fen > record.amount_fen - record.refunded_fen:
        effects.append(ignored(state, event, "refund does not match a refundable purchase"))
        return
    state.purchases[record.event_id] = PurchaseRecord(
        record.event_id,
        record.at,
        record.amount_fen,
        record.merchant_id,
        record.refunded_fen + event.amount_fen,
        record.plan_id,
    )
    L.refund(state.ledger, event.amount_fen, record.event_id)
    if event.at - record.at <= HOUR * policy.cash_out.quick_refund_hours:
        # Counted per purchase: three partial refunds of one purchase are one quick refund.
        if not any(ref == record.event_id for _, ref in state.quick_refunds):
            state.quick_refunds.append((event.at, record.event_id))
        _trim(state.quick_refunds, event.at - DAY * policy.cash_out.quick_refund_window_days)
        if len(state.quick_refunds) >= policy.cash_out.quick_refund_count:
            cash_out_signal(state, event.at, "quick_refunds", event.event_id, policy, effects)
    _after_payment(state, event.at, policy, event.event_id, effects)


def on_installment_plan_created(state, event: ev.InstallmentPlanCreated, policy, scopes,
                                effects) -> None:
    from jiefeng.domain.decisions import DomainRejected, billed_on_date, check_installment_plan

    try:  # the store refuses these before they come; a replay of an old log may still hold one
        check_installment_plan(state, event, policy)
    except DomainRejected as rejection:
        effects.append(ignored(state, event, str(rejection)))
        return
    record = state.purchases[event.purchase_event_id]
    billed_on = billed_on_date(state, record.at, zone(policy.timezone))
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


def _judged(state: AccountState, statement: L.Statement, at: dt.datetime, cause: str,
            effects: list[Effect]) -> None:
    effects.append(Effect(STATEMENT_JUDGED, at, state.account_id, None, cause, {
        "statement_date": statement.statement_date.isoformat(),
        "due_date": statement.due_date.isoformat(),
        "outcome": L.judgement(statement),
        "new_balance_fen": statement.new_balance_fen,
        "minimum_due_fen": statement.minimum_due_fen,
        "paid_fen": statement.paid_since_issue_fen,
    }))


def _after_payment(
    state: AccountState, at: dt.datetime, policy: Policy, cause: str, effects: list[Effect]
) -> None:
    for statement in L.judge_paid_up(state.ledger):
        _judged(state, statement, at, cause, effects)
    if H.OVERDUE in state.holds:
        if L.cure(state.ledger, at, policy.billing.tolerance_fen):
            release(state, effects, H.OVERDUE, at, cause, "repaid")
            start_cure_probation(state, at, policy, cause, "overdue", effects)
        else:
            _refresh_overdue_hold(state, at, policy, cause, effects)
    else:
        L.cure(state.ledger, at, policy.billing.tolerance_fen)


def on_repayment(state, event: ev.Repayment, policy, scopes, effects) -> None:
    at = event.at
    state.repayments_total_fen += event.amount_fen
    state.recent_repayments.append((at, event.amount_fen, event.event_id))
    _trim(state.recent_repayments, at - PURCHASES_WINDOW)
    # Score brushing: a purchase repaid in full within the window, over and over. Each purchase
    # completes at most one cycle: repaying the same purchase again is not another cycle.
    window_start = at - dt.timedelta(minutes=policy.cash_out.brushing_repay_minutes)
    counted = {purchase_id for _, purchase_id in state.brushing_cycles}
    for purchase_at, purchase_id in reversed(state.recent_purchases):
        if purchase_at < window_start:
            break
        record = state.purchases.get(purchase_id)
        if (
            record is not None
            and purchase_id not in counted
            and record.amount_fen <= event.amount_fen
        ):
            state.brushing_cycles.append((at, purchase_id))
            _trim(state.brushing_cycles, at - DAY * policy.cash_out.brushing_window_days)
            if len(state.brushing_cycles) >= policy.cash_out.brushing_cycle_count:
                cash_out_signal(state, at, "score_brushing", event.event_id, policy, effects)
            break
    L.pay(state.ledger, event.amount_fen, repayment=True)
    _after_payment(state, at, policy, event.event_id, effects)


# --- cash-out ----------------------------------------------------------------------------------


def cash_out_signal(
    state: AccountState,
    at: dt.datetime,
    signal: str,
    ref: str,
    policy: Policy,
    effects: list[Effect],
) -> None:
    state.last_cash_out_signal_at = at
    state.cash_out_signals.append((at, signal, ref))
    _trim(state.cash_out_signals, at - DAY * 365)
    recent = list(state.cash_out_signals)[-MAX_EVIDENCE_ITEMS:]
    # Evidence names the kind of signal and the transaction, never the detection threshold.
    evidence = {"signals": [{"signal": s, "at": t, "ref": r} for t, s, r in recent]}
    place(
        state,
        effects,
        H.CASH_OUT_SUSPECTED,
        at,
        ref,
        evidence,
        releases_at=at + DAY * policy.cash_out.quiet_days,
    )


def _clear_cash_out(state: AccountState) -> None:
    state.suspicious_purchases.clear()
    state.quick_refunds.clear()
    state.brushing_cycles.clear()


# --- score, bureau, assets, activity ------------------------------------------------------------


def on_score_update(state, event: ev.ScoreUpdate, policy, scopes, effects) -> None:
    state.score = event.score
    state.score_at = event.at
    if event.dimensions is not None:
        state.score_dimensions = {
            name: value
            for name, value in event.dimensions.model_dump().items()
            if value is not None
        }
    held = state.holds.get(H.SCORE_BELOW_THRESHOLD)
    # One hold, one set of numbers: a hold keeps the threshold and release value of the policy
    # it was placed under, and is released under them, whatever policy is active later.
    terms = score_terms(held, policy)
    if held is not None and event.score >= terms["release_at"]:
        release(
            state, effects, H.SCORE_BELOW_THRESHOLD, event.at, event.event_id, "score_recovered"
        )
    elif event.score < policy.score.threshold or held is not None:
        weakest = sorted(state.score_dimensions.items(), key=lambda kv: kv[1])[:2]
        place(
            state,
            effects,
            H.SCORE_BELOW_THRESHOLD,
            event.at,
            event.event_id,
            {
                "score": event.score,
                **terms,
                "weakest_dimensions": [{"dimension": k, "value": v} for k, v in weakest],
            },
        )


def score_terms(hold: H.Hold | None, policy: Policy) -> dict[str, Any]:
    """The score hold's numbers: those recorded when it was placed, else (a new hold) the
    policy's. `threshold` placed it, `release_at` releases it, `policy_version` says whose."""
    if hold is not None and "release_at" in hold.evidence:
        evidence = hold.evidence
        return {"threshold": evidence["threshold"], "release_at": evidence["release_at"],
                "policy_version": evidence.get("policy_version")}
    return {"threshold": policy.score.threshold, "release_at": policy.score.release_at,
            "policy_version": policy.version}


def on_bureau_record(state, event: ev.BureauRecord, policy, scopes, effects) -> None:
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
    if event.status == ev.BureauStatus.OVERDUE and H.CURE_PROBATION in state.holds:
        # "No new overdue here or on the bureau": a new bureau overdue restarts the probation.
        start_cure_probation(
            state, event.at, policy, event.event_id, "bureau", effects, began=event.at
        )
    if overdue_products:
        place(
            state,
            effects,
            H.EXTERNAL_OVERDUE,
            event.at,
            event.event_id,
            {
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
            },
        )
    elif H.EXTERNAL_OVERDUE in state.holds:
        began = state.holds[H.EXTERNAL_OVERDUE].since
        release(state, effects, H.EXTERNAL_OVERDUE, event.at, event.event_id, "settled")
        start_cure_probation(
            state, event.at, policy, event.event_id, "external", effects, began=began
        )


def on_asset_update(state, event: ev.AssetUpdate, policy, scopes, effects) -> None:
    state.deposits_fen = event.deposits_fen
    state.wealth_balance_fen = event.wealth_balance_fen


def on_activity(state, event: ev.Activity, policy, scopes, effects) -> None:
    state.activities.append((event.at, event.category.value))
    _trim(state.activities, event.at - DAY * policy.dormancy.reopen_window_days)
    if H.DORMANT in state.holds and len(state.activities) >= policy.dormancy.reopen_activity_count:
        release(state, effects, H.DORMANT, event.at, event.event_id, "reactivated")
        state.dormancy_anchor = event.at  # reopening restarts the dormancy clock
        state.dormancy_notice_sent = False


# --- account security --------------------------------------------------------------------------


def _security_check(
    state: AccountState, at: dt.datetime, cause: str, policy: Policy, effects: list[Effect]
) -> None:
    rules = policy.account_security
    _trim(state.bank_card_changes, at - DAY * rules.bank_card_window_days)
    _trim(
        state.new_devices,
        at - max(DAY * rules.new_devices_window_days, HOUR * rules.phone_device_window_hours),
    )
    _trim(state.phone_changes, at - HOUR * rules.phone_device_window_hours)
    signals: list[str] = []
    if len(state.bank_card_changes) >= rules.bank_card_changes:
        signals.append("bank_card_changes")
    pair_window = HOUR * rules.phone_device_window_hours
    if any(
        abs(phone - device) <= pair_window
        for phone in state.phone_changes
        for device in state.new_devices
    ):
        signals.append("phone_and_new_device")
    recent_devices = [t for t in state.new_devices if t >= at - DAY * rules.new_devices_window_days]
    if len(recent_devices) >= rules.new_devices:
        signals.append("new_devices")
    if signals or H.ACCOUNT_SECURITY in state.holds:
        merged = (
            tuple(dict.fromkeys((*state.security_signals, *signals)))
            if (H.ACCOUNT_SECURITY in state.holds)
            else tuple(signals)
        )
        state.security_signals = merged
        assert state.last_sensitive_change_at is not None
        place(
            state,
            effects,
            H.ACCOUNT_SECURITY,
            at,
            cause,
            {"signals": list(merged)},
            releases_at=state.last_sensitive_change_at + DAY * rules.quiet_days,
        )


def on_login(state, event: ev.Login, policy, scopes, effects) -> None:
    if event.device_id in state.known_devices:
        return
    first_device = not state.known_devices
    # An insertion-ordered dict, not a set: evicting the oldest device is the same in every
    # process (set order depends on the hash seed, and replays must agree).
    state.known_devices[event.device_id] = event.at
    if len(state.known_devices) > MAX_WINDOW_ITEMS:
        del state.known_devices[next(iter(state.known_devices))]
    if first_device:
        return  # the device the customer enrolled with is theirs, not a takeover signal
    state.new_devices.append(event.at)
    state.last_sensitive_change_at = event.at
    _security_check(state, event.at, event.event_id, policy, effects)


def on_profile_change(state, event: ev.ProfileChange, policy, scopes, effects) -> None:
    if event.field == ev.ProfileField.ADDRESS:
        return  # not a takeover signal on its own
    if event.field == ev.ProfileField.BANK_CARD:
        state.bank_card_changes.append(event.at)
    else:
        state.phone_changes.append(event.at)
    state.last_sensitive_change_at = event.at
    _security_check(state, event.at, event.event_id, policy, effects)


def _clear_security(state: AccountState) -> None:
    state.bank_card_changes.clear()
    state.phone_changes.clear()
    state.new_devices.clear()
    state.security_signals = ()


def on_identity_verified(state, event: ev.IdentityVerified, policy, scopes, effects) -> None:
    # A verified identity vouches for the recent changes: the windows start afresh.
    _clear_security(state)
    release(state, effects, H.ACCOUNT_SECURITY, event.at, event.event_id, "identity_verified")


# --- password ----------------------------------------------------------------------------------


def _password_attempt(
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
        place(
            state,
            effects,
            H.PASSWORD_LOCKED,
            at,
            cause,
            {"failures": state.password_failures, "locked_at": at, "unlocks_at": unlocks_at},
            releases_at=unlocks_at,
        )
        state.password_failures = 0


def on_password_attempt(state, event: ev.PasswordAttempt, policy, scopes, effects) -> None:
    _password_attempt(state, event.at, event.ok, event.event_id, policy, effects)


def on_password_reset(state, event: ev.PasswordReset, policy, scopes, effects) -> None:
    if not event.identity_verified:
        return  # an unverified reset changes nothing: the lock stays until it expires
    state.password_failures = 0
    release(state, effects, H.PASSWORD_LOCKED, event.at, event.event_id, "password_reset")


# --- identity document -------------------------------------------------------------------------


def on_id_document_updated(state, event: ev.IdDocumentUpdated, policy, scopes, effects) -> None:
    today = local_date(event.at, zone(policy.timezone))
    if event.expires_on <= today:
        effects.append(ignored(state, event, "the new document has already expired"))
        return
    state.id_expires_on = event.expires_on
    state.id_notice_sent_for = None
    release(state, effects, H.ID_EXPIRED, event.at, event.event_id, "id_document_updated")
    _id_notice_if_due(state, event.at, policy, effects)


def _id_notice_if_due(
    state: AccountState, at: dt.datetime, policy: Policy, effects: list[Effect]
) -> None:
    """A document that expires within the notice period gets its notice now, not never."""
    expires_on = state.id_expires_on
    if expires_on is None or state.id_notice_sent_for == expires_on:
        return
    tz = zone(policy.timezone)
    if at >= local_midnight(expires_on - DAY * policy.id_expiry.notice_days, tz):
        state.id_notice_sent_for = expires_on
        effects.append(
            Effect(
                NOTICE,
                at,
                state.account_id,
                H.ID_EXPIRED,
                "clock:id_expiry",
                {"notice": "id_expiry_notice", "expires_on": expires_on.isoformat()},
            )
        )


# --- appeals and manual holds ---------------------------------------------------------------------


def on_appeal_submitted(state, event: ev.AppealSubmitted, policy, scopes, effects) -> None:
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
    effects.append(
        Effect(
            APPEAL_RECORDED,
            event.at,
            state.account_id,
            event.hold_code,
            event.event_id,
            {"appeal_id": event.appeal_id, "status": status},
        )
    )


def on_appeal_decided(state, event: ev.AppealDecided, policy, scopes, effects) -> None:
    appeal = state.appeals.get(event.appeal_id)
    if appeal is None or appeal.status != "pending":
        effects.append(ignored(state, event, "no pending appeal with this id"))
        return
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
    effects.append(
        Effect(
            APPEAL_DECIDED,
            event.at,
            state.account_id,
            appeal.hold_code,
            event.event_id,
            {"appeal_id": appeal.appeal_id, "decision": event.decision.value},
        )
    )
    if not approved:
        return
    code = appeal.hold_code
    if code == H.CASH_OUT_SUSPECTED:
        _clear_cash_out(state)
    elif code == H.ACCOUNT_SECURITY:
        _clear_security(state)
    elif code == H.DORMANT:
        state.dormancy_anchor = event.at
        state.dormancy_notice_sent = False
    release(state, effects, code, event.at, event.event_id, "appeal_approved")


def on_manual_hold_placed(state, event: ev.ManualHoldPlaced, policy, scopes, effects) -> None:
    place(
        state,
        effects,
        H.MANUAL_REVIEW,
        event.at,
        event.event_id,
        {"reason": event.reason},
        actor=event.actor,
    )


def on_manual_hold_released(state, event: ev.ManualHoldReleased, policy, scopes, effects) -> None:
    release(state, effects, H.MANUAL_REVIEW, event.at, event.event_id, "operator_released")


# --- features and policy sweeps ------------------------------------------------------------------


def features(state: AccountState, at: dt.datetime, policy: Policy) -> dict[str, Any]:
    """The per-account feature snapshot that sweep criteria read (see docs/criteria.md)."""
    tz = zone(policy.timezone)
    today = local_date(at, tz)
    limit_fen = state.credit_limit_fen
    ledger = state.ledger
    used_fen = max(0, ledger.total_owed_fen - ledger.credit_balance_fen)
    cutoff = at - PURCHASES_WINDOW
    return {
        "score": state.score,
        "credit_limit": limit_fen / 100,
        "available_credit": state.available_credit_fen / 100,
        "utilization": min(1.0, used_fen / limit_fen) if limit_fen else 0.0,
        "days_past_due": ledger.days_past_due(today),
        "minimum_due": ledger.minimum_due_fen() / 100,
        "revolving_balance": ledger.revolving_fen / 100,
        "installment_balance": ledger.installment_balance_fen / 100,
        "months_revolving": ledger.months_revolving,
        "deposits": state.deposits_fen / 100,
        "wealth_balance": state.wealth_balance_fen / 100,
        "account_age_days": (today - local_date(state.opened_at, tz)).days
        if state.opened_at
        else 0,
        "purchases_90d": sum(1 for t, _ in state.recent_purchases if t >= cutoff),
        "segment": state.segment,
    }


def _apply_sweeps(
    state: AccountState,
    at: dt.datetime,
    policy: Policy,
    scopes: Scopes,
    effects: list[Effect],
) -> None:
    from jiefeng.policy.criteria import compile_stored_criteria

    while state.sweeps_seen < len(scopes.sweeps) and scopes.sweeps[state.sweeps_seen].at <= at:
        sweep = scopes.sweeps[state.sweeps_seen]
        state.sweeps_seen += 1
        if H.POLICY_TIGHTENING in state.holds:
            continue
        criteria = compile_stored_criteria(sweep.criteria)
        snapshot = features(state, sweep.at, policy)
        if not criteria.matches(snapshot):
            continue
        place(
            state,
            effects,
            H.POLICY_TIGHTENING,
            sweep.at,
            sweep.event_id,
            {
                "sweep_id": sweep.sweep_id,
                "matched": {name: snapshot[name] for name in sorted(criteria.features_used)},
                "reopen_criteria": sweep.reopen_criteria,
                "earliest_reopen_at": sweep.at + DAY * policy.policy_tightening.min_closed_days,
            },
            actor=sweep.actor,
        )


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


def after_change(
    state: AccountState, at: dt.datetime, policy: Policy, effects: list[Effect]
) -> None:
    """Checks that depend on features any event may move (run after every event)."""
    if H.POLICY_TIGHTENING in state.holds:
        _check_reopen(state, at, state.last_event_id or "clock", policy, effects)


# --- time ----------------------------------------------------------------------------------------


def next_deadline(state: AccountState, policy: Policy, scopes: Scopes) -> dt.datetime | None:
    """The next instant after the state's clock at which time alone changes something.

    Runs before every event, so it keeps a running minimum instead of building a list.
    Deadlines at or before the clock are skipped: the only ones are notices whose moment
    passed before the account existed.
    """
    clock = state.clock
    assert clock is not None
    tz = zone(policy.timezone)
    best: dt.datetime | None = None

    if state.next_statement_date is not None:
        t = local_midnight(state.next_statement_date, tz)
        if t > clock:
            best = t
    statements = state.ledger.statements
    if statements:
        for statement in statements:
            if not statement.judged:
                days: tuple[int, ...] = (policy.billing.grace_days + 1,)
            elif statement.overdue_since is not None and statement.cured_at is None:
                notice_days, report_days = _bureau_days(policy)
                days = tuple(d for d, done in ((notice_days, statement.bureau_notice_sent),
                                               (report_days, statement.bureau_reported))
                             if not done)
            else:
                continue  # judged and current: time alone changes nothing on it
            for shift in days:
                t = local_midnight_shifted(statement.due_date, shift, tz)
                if t > clock and (best is None or t < best):
                    best = t
    holds = state.holds
    if holds:
        for hold in holds.values():
            t = hold.releases_at
            if t is not None and t > clock and (best is None or t < best):
                best = t
        tightening = holds.get(H.POLICY_TIGHTENING)
        if tightening is not None:
            earliest = tightening.evidence["earliest_reopen_at"]
            # Once eligible, criteria such as account_age_days turn true by time alone: look
            # again daily.
            t = earliest if clock < earliest else local_midnight(local_date(clock, tz) + DAY, tz)
            if t > clock and (best is None or t < best):
                best = t
    anchor = state.dormancy_anchor
    if anchor is not None and H.DORMANT not in holds and (
        state.last_purchase_at is None or state.last_purchase_at < anchor
    ):
        dormant_at = anchor + DAY * policy.dormancy.days_since_open
        for t in (dormant_at,) if state.dormancy_notice_sent else (
            dormant_at, dormant_at - DAY * policy.dormancy.notice_days
        ):
            if t > clock and (best is None or t < best):
                best = t
    expires_on = state.id_expires_on
    if expires_on is not None and H.ID_EXPIRED not in holds:
        t = local_midnight_shifted(expires_on, 1, tz)
        if t > clock and (best is None or t < best):
            best = t
        if state.id_notice_sent_for != expires_on:
            t = local_midnight_shifted(expires_on, -policy.id_expiry.notice_days, tz)
            if t > clock and (best is None or t < best):
                best = t
    if state.sweeps_seen < len(scopes.sweeps):
        t = scopes.sweeps[state.sweeps_seen].at
        if t > clock and (best is None or t < best):
            best = t
    return best


def on_time(
    state: AccountState,
    at: dt.datetime,
    policy: Policy,
    scopes: Scopes,
    effects: list[Effect],
) -> None:
    """Everything that falls due at `at` (the state's clock is already `at`)."""
    tz = zone(policy.timezone)
    accrue(state, at, policy)
    while (
        state.next_statement_date is not None
        and local_midnight(state.next_statement_date, tz) <= at
    ):
        issue_statement(state, at, policy, effects)
    check_overdue(state, at, policy, scopes, effects)
    check_bureau_reporting(state, at, policy, effects)

    for code, hold in list(state.holds.items()):
        if hold.releases_at is not None and hold.releases_at <= at:
            release(state, effects, code, at, f"clock:{code}", "expired")
            if code == H.CASH_OUT_SUSPECTED:
                _clear_cash_out(state)
            elif code == H.ACCOUNT_SECURITY:
                _clear_security(state)

    anchor = state.dormancy_anchor
    if (
        H.DORMANT not in state.holds
        and anchor is not None
        and (state.last_purchase_at is None or state.last_purchase_at < anchor)
    ):
        dormant_at = anchor + DAY * policy.dormancy.days_since_open
        if at >= dormant_at:
            place(
                state,
                effects,
                H.DORMANT,
                at,
                "clock:dormancy",
                {
                    "since_anchor": anchor,
                    "days_without_purchase": policy.dormancy.days_since_open,
                    "activity_required": policy.dormancy.reopen_activity_count,
                    "window_days": policy.dormancy.reopen_window_days,
                },
            )
        elif (
            not state.dormancy_notice_sent and at >= dormant_at - DAY * policy.dormancy.notice_days
        ):
            state.dormancy_notice_sent = True
            effects.append(
                Effect(
                    NOTICE,
                    at,
                    state.account_id,
                    H.DORMANT,
                    "clock:dormancy",
                    {"notice": "dormancy_notice", "closes_at": dormant_at.isoformat()},
                )
            )

    expires_on = state.id_expires_on
    if expires_on is not None and H.ID_EXPIRED not in state.holds:
        if at >= local_midnight(expires_on + DAY, tz):
            place(state, effects, H.ID_EXPIRED, at, "clock:id_expiry", {"expires_on": expires_on})
        else:
            _id_notice_if_due(state, at, policy, effects)

    _apply_sweeps(state, at, policy, scopes, effects)
    if H.POLICY_TIGHTENING in state.holds:
        _check_reopen(state, at, "clock:reopen", policy, effects)


HANDLERS = {
    ev.AccountOpened: on_account_opened,
    ev.Purchase: on_purchase,
    ev.Refund: on_refund,
    ev.Repayment: on_repayment,
    ev.InstallmentPlanCreated: on_installment_plan_created,
    ev.ScoreUpdate: on_score_update,
    ev.BureauRecord: on_bureau_record,
    ev.Activity: on_activity,
    ev.AssetUpdate: on_asset_update,
    ev.PasswordAttempt: on_password_attempt,
    ev.PasswordReset: on_password_reset,
    ev.Login: on_login,
    ev.ProfileChange: on_profile_change,
    ev.IdentityVerified: on_identity_verified,
    ev.IdDocumentUpdated: on_id_document_updated,
    ev.AppealSubmitted: on_appeal_submitted,
    ev.AppealDecided: on_appeal_decided,
    ev.ManualHoldPlaced: on_manual_hold_placed,
    ev.ManualHoldReleased: on_manual_hold_released,
}

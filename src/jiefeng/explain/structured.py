"""The structured explanation: why an account is frozen and what the customer can do, as data.

`build_explanation` turns an account's state into a JSON-ready dict of codes and parameters and
nothing else: no prose, so every language renders the same facts (see `render.py` and the
message catalogs). Datetimes are ISO 8601 strings with their offset, dates are "YYYY-MM-DD",
money is a decimal string ("121.64").

Holds in CONFIDENTIAL_CODES (suspected cash-out, account security) name only the kind of signal
and the transaction refs and times: never a detection threshold, count or window, so a customer
cannot learn how to stay just under them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jiefeng.domain import causes
from jiefeng.domain import holds as H
from jiefeng.domain import ledger as L
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso, money, show_in_zone, ts
from jiefeng.domain.causes.overdue import bureau_days
from jiefeng.domain.clock import DAY, local_date, zone
from jiefeng.domain.core import active_holds
from jiefeng.domain.decline_order import in_precedence
from jiefeng.domain.holdbook import MAX_EVIDENCE_ITEMS
from jiefeng.domain.plan import unfreeze_plan
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState, Appeal
from jiefeng.policy.schema import Policy

MAX_SELF_CHECK_ITEMS = 5  # recent purchases / repayments listed for the customer to check
MAX_STATEMENTS = 12  # statements listed in the ledger



# --- the explanation -----------------------------------------------------------------------------


def build_explanation(
    state: AccountState, at: dt.datetime, policy: Policy, scopes: Scopes
) -> dict[str, Any]:
    """Explain the account at `at`. The caller has already advanced `state` to `at`."""
    policy = scopes.policy_for(at, policy)  # the version in effect then, named in the answer
    show_in_zone(policy.zone)
    holds = active_holds(state, at, scopes)
    ctx = ExplainContext(state, at, policy)
    items = [_hold_item(hold, ctx) for hold in holds]
    if holds:
        works = ["repayment", "statements", "queries"]
        if any(hold.code in policy.appeals.appealable_codes for hold in holds):
            works.append("appeal")
    else:
        works = ["purchase", "repayment", "statements", "queries"]
    return {
        "account_id": state.account_id,
        "at": ts(at),
        "status": H.derive_status(holds),
        "can_purchase": not holds,
        "can_repay": True,  # repayment is never blocked, whatever the holds
        "policy_version": policy.version,
        # The hold to clear first (descending precedence, domain/decline_order.py).
        "primary_code": in_precedence([hold.code for hold in holds])[0] if holds else None,
        "holds": items,
        "what_still_works": works,
        "plan": _plan(state, at, policy, scopes) if holds else None,
        "ledger": _ledger(state, policy, H.derive_status(holds)),
        "self_checks": _self_checks(state, policy, at),
    }


def _hold_item(hold: H.Hold, ctx: ExplainContext) -> Item:
    """One hold as its cause declares it explained (`HoldKind.explanation`), with what is
    common to every hold: the appeal, its SLA and the order of the steps."""
    policy = ctx.policy
    kind = causes.tables().kinds[hold.code]
    spec = kind.explanation
    appeals = [a for a in ctx.state.appeals.values() if a.hold_code == hold.code]
    pending = [a for a in appeals if a.status == "pending"]
    appealable_code = hold.code in policy.appeals.appealable_codes
    appealable = appealable_code and not pending
    latest = max(appeals, key=lambda a: a.submitted_at, default=None)

    release = spec.release(hold, ctx)
    if H.RELEASE_REVIEW in hold.release_paths and appealable_code:
        release.append({"path": H.RELEASE_REVIEW, "condition": "appeal_approved"})
    # The policy versions: the one the hold was decided under (its trace: the thresholds shown,
    # and `releases_at`), and the one its condition or event release is judged under: its own
    # for a hold that keeps its terms, else the policy in effect (named in the explanation).
    decided_under = (hold.trace.policy_version if hold.trace else None) or policy.version
    steps = spec.steps(hold, ctx)
    if pending:
        steps.append({"step": "wait_for_appeal_decision",
                      "reply_by": iso(_reply_by(pending[-1], policy))})
    elif appealable:
        steps.append({"step": spec.appeal_step, "appeal_path": policy.support.appeal_path})
    evidence = spec.evidence(hold, ctx)[:MAX_EVIDENCE_ITEMS]  # the principal reasons
    return {
        "code": hold.code,
        "since": ts(hold.since),
        "releases_at": iso(hold.releases_at),
        "placed_by": hold.placed_by,
        "decided_under": decided_under,
        "release_judged_under": decided_under if kind.keeps_terms else policy.version,
        "blocks": list(hold.blocks),
        "closes_line": hold.closes_line,
        "confidential": kind.confidential,
        "release_paths": list(hold.release_paths),
        "evidence": evidence,
        "release": release,
        "steps": steps,
        "appealable": appealable,
        "appeal_sla": _appeal_sla(hold.code, policy) if appealable_code else None,
        "appeal": _appeal_dict(latest, policy) if latest is not None else None,
        "counterfactual": None if kind.confidential else spec.counterfactual(hold, ctx),
        "bureau": spec.bureau(hold, ctx),
    }


# --- appeals -------------------------------------------------------------------------------------


def _appeal_sla(code: str, policy: Policy) -> dict[str, Any]:
    if code in policy.appeals.fast_sla_codes:
        return {"unit": "hours", "value": policy.appeals.fast_sla_hours}
    return {"unit": "days", "value": policy.appeals.sla_days}


def _reply_by(appeal: Appeal, policy: Policy) -> dt.datetime:
    if appeal.hold_code in policy.appeals.fast_sla_codes:
        return appeal.submitted_at + dt.timedelta(hours=policy.appeals.fast_sla_hours)
    return appeal.submitted_at + DAY * policy.appeals.sla_days


def _appeal_dict(appeal: Appeal, policy: Policy) -> dict[str, Any]:
    return {
        "appeal_id": appeal.appeal_id,
        "hold_code": appeal.hold_code,
        "status": appeal.status,
        "submitted_at": ts(appeal.submitted_at),
        "reply_by": iso(_reply_by(appeal, policy)) if appeal.status == "pending" else None,
        "decided_at": iso(appeal.decided_at),
        # The decision's reason is written for the customer; shown only when rejected.
        "reason": appeal.reason if appeal.status == "rejected" else None,
    }


# --- ledger and self-checks ----------------------------------------------------------------------


def _plan(state: AccountState, at: dt.datetime, policy: Policy,
          scopes: Scopes) -> dict[str, Any] | None:
    """The unfreeze plan (jiefeng.domain.plan), its instants in the explanation's zone."""
    plan = unfreeze_plan(state, at, policy, scopes)
    if plan is None:
        return None
    found = plan.to_dict()
    found["earliest_active_at"] = iso(plan.earliest_active_at)
    return found


def _ledger(state: AccountState, policy: Policy, status: str) -> dict[str, Any]:
    """The money, as of the explanation. `available_credit` is the line's headroom (limit less
    what is used); `usable_credit` what can be spent now: nothing while a hold is active, and
    `usable_credit_status` (the account's status) says why."""
    ledger = state.ledger
    return {
        "currency": policy.currency,
        "credit_limit": money(state.credit_limit_fen),
        "available_credit": money(state.available_credit_fen),
        "usable_credit": money(state.available_credit_fen if status == "active" else 0),
        "usable_credit_status": status,
        "unbilled": money(ledger.unbilled_fen),
        "billed_owed": money(ledger.billed_owed_fen),
        "past_due": money(ledger.past_due_minimum_fen()),
        "credit_balance": money(ledger.credit_balance_fen),
        "minimum_due": money(ledger.minimum_due_fen()),
        "revolving": money(ledger.revolving_fen),
        "installments": money(ledger.installment_balance_fen),
        "total_owed": money(ledger.total_owed_fen),
        "statements": [statement_view(s, ledger)
                       for s in ledger.recent_statements(MAX_STATEMENTS)],
        "installment_plans": [plan_view(p) for p in ledger.plans.values()],
    }


def statement_status(statement: Any) -> str:
    """open (not yet judged), paid_in_full, minimum_met, below_minimum (past due now) or
    paid_late (it was past due; its minimum has since been paid)."""
    if not statement.judged:
        return "open"
    outcome = L.judgement(statement)
    return "paid_late" if outcome == "below_minimum" and statement.cured_at else outcome


def statement_view(statement: Any, ledger: Any) -> dict[str, Any]:
    """One statement as the customer and the API see it."""
    return {
        "statement_date": statement.statement_date.isoformat(),
        "due_date": statement.due_date.isoformat(),
        "new_balance": money(statement.new_balance_fen),
        "minimum_due": money(statement.minimum_due_fen),
        "paid": money(statement.paid_since_issue_fen),
        "minimum_unpaid": money(ledger.unpaid_minimum_fen(statement)),
        "revolving_interest": money(statement.interest_fen),
        "fees": money(statement.fees_fen),
        "installments": money(statement.installments_fen),
        "owed": money(statement.owed_fen),
        "status": statement_status(statement),
    }


def plan_view(plan: Any) -> dict[str, Any]:
    principal_fen, fee_fen = plan.next_installment() if plan.remaining_months else (0, 0)
    return {
        "plan_id": plan.plan_id,
        "purchase_event_id": plan.purchase_event_id,
        "months": plan.months,
        "months_left": plan.remaining_months,
        "remaining_principal": money(plan.remaining_principal_fen),
        "remaining_fee": money(plan.remaining_fee_fen),
        "next_installment": money(principal_fen + fee_fen),
    }


OWN_PRODUCT = "this_line"  # a bureau record this credit line reported itself


def _own_reports(state: AccountState, policy: Policy) -> list[dict[str, Any]]:
    """The account's own statements reported to the bureau: the same record as an outside
    product's, so the self-check never says "nothing on file" while a hold says "reported"."""
    _, report_days = bureau_days(policy)
    return [{"product": OWN_PRODUCT, "status": "overdue" if s.past_due else "settled",
             "days_past_due": report_days, "amount": money(s.minimum_due_fen),
             "at": iso(s.due_date + dt.timedelta(days=report_days)),
             "statement_date": iso(s.statement_date)}
            for s in state.ledger.recent_statements(MAX_SELF_CHECK_ITEMS)[::-1]
            if s.bureau_reported]


def _purchase_checks(state: AccountState, at: dt.datetime) -> list[Item]:
    """Purchases approved and declined up to `at`, newest first: a declined attempt is listed
    with its codes, so a customer sees the purchase that did not go through and why."""
    attempts: list[tuple[dt.datetime, Item]] = []
    for when, event_id in state.recent_purchases:
        record = state.purchases.get(event_id)
        if record is None or when > at:
            continue
        attempts.append((when, {"event_id": event_id, "at": ts(when),
                                "amount": money(record.amount_fen),
                                "merchant_id": record.merchant_id,
                                "refunded": money(record.refunded_fen), "declined": False}))
    for declined in state.declined_purchases:
        if declined.at > at:
            continue
        attempts.append((declined.at, {"event_id": declined.event_id, "at": ts(declined.at),
                                       "amount": money(declined.amount_fen),
                                       "merchant_id": declined.merchant_id, "declined": True,
                                       "decline_codes": list(declined.codes)}))
    attempts.sort(key=lambda pair: pair[0], reverse=True)
    return [item for _, item in attempts[:MAX_SELF_CHECK_ITEMS]]


def _self_checks(state: AccountState, policy: Policy, at: dt.datetime) -> dict[str, Any]:
    """What the customer can check, as of `at`: nothing that happened after it is listed, even
    when the state given was folded further (a backtest's side-by-side view)."""
    purchases = _purchase_checks(state, at)
    repayments = [{"event_id": event_id, "at": ts(when), "amount": money(amount_fen)}
                  for when, amount_fen, event_id in list(state.recent_repayments)[::-1]
                  if when <= at][:MAX_SELF_CHECK_ITEMS]
    score = None
    if state.score is not None and (state.score_at is None or state.score_at <= at):
        weakest = sorted(state.score_dimensions.items(), key=lambda kv: (kv[1], kv[0]))[:2]
        score = {"score": state.score, "at": iso(state.score_at),
                 "weakest_dimensions": [{"dimension": k, "value": v} for k, v in weakest]}
    bureau = [{"product": f.product, "status": f.status, "days_past_due": f.days_past_due,
               "amount": money(f.amount_fen), "at": ts(f.at), "event_id": f.event_id}
              for f in sorted(state.bureau.values(), key=lambda f: f.product) if f.at <= at]
    bureau += _own_reports(state, policy)
    pending = [_appeal_dict(a, policy) for a in state.appeals.values()
               if a.status == "pending" and a.submitted_at <= at]
    # Whether each recent statement's minimum was met, newest first.
    today = local_date(at, zone(policy.timezone))
    statements = [statement_view(s, state.ledger)
                  for s in state.ledger.recent_statements(MAX_SELF_CHECK_ITEMS)[::-1]
                  if s.statement_date <= today]
    return {
        "recent_purchases": purchases,
        "recent_repayments": repayments,
        "recent_statements": statements,
        "score": score,
        "bureau_records": bureau,
        "support": {"phone": policy.support.phone, "appeal_path": policy.support.appeal_path,
                    "pending_appeals": pending},
    }

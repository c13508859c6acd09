"""Questions asked of an account: may it buy this, and is this event consistent with it?

Both are pure and take the time as an input. `authorize` does not change the account: to record
a purchase, ingest a `purchase` event, whose decision the fold makes the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jiefeng.domain import causes
from jiefeng.domain import events as ev
from jiefeng.domain.account import blocking_codes
from jiefeng.domain.clock import first_statement_date, local_date
from jiefeng.domain.core import advance, scoped_holds
from jiefeng.domain.decline_order import in_precedence
from jiefeng.domain.rejections import DomainRejected
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy

DECLINE_CODES = ("insufficient_credit", "kind_not_allowed", "wrong_password")


@dataclass(frozen=True)
class PurchaseRequest:
    amount_fen: int
    merchant_id: str = "unknown"
    kind: str = "purchase"
    password_ok: bool | None = None

    def __post_init__(self) -> None:
        if self.amount_fen <= 0:
            raise ValueError("amount: must be greater than zero")
        if self.kind not in {k.value for k in ev.PurchaseKind}:
            raise ValueError(f"kind: must be one of {', '.join(k.value for k in ev.PurchaseKind)}")


@dataclass(frozen=True)
class Decision:
    account_id: str
    at: dt.datetime
    approved: bool
    codes: list[str]
    hold_codes: list[str]
    available_credit_fen: int
    policy_version: str
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from jiefeng.domain.money import format_fen

        return {
            "account_id": self.account_id,
            "at": self.at.isoformat(),
            "approved": self.approved,
            "decision": "approved" if self.approved else "declined",
            # The code to tell the customer first: the highest in precedence.
            "primary_code": self.codes[0] if self.codes else None,
            "codes": self.codes,
            "hold_codes": self.hold_codes,
            "available_credit": format_fen(self.available_credit_fen),
            "policy_version": self.policy_version,
        }


def authorize(
    state: AccountState, request: PurchaseRequest, at: dt.datetime, policy: Policy, scopes: Scopes
) -> Decision:
    """Approve, or decline with every code that applies (holds first, then the request's own)."""
    policy = scopes.policy_for(at, policy)
    current, _ = advance(state, at, policy, scopes)
    hold_codes = blocking_codes(current, at, scopes)
    codes: list[str] = []
    if request.kind != ev.PurchaseKind.PURCHASE.value:
        codes.append("kind_not_allowed")
    codes.extend(hold_codes)
    if request.password_ok is False:
        codes.append("wrong_password")
    if request.amount_fen > current.available_credit_fen:
        codes.append("insufficient_credit")
    return Decision(
        state.account_id,
        at,
        not codes,
        in_precedence(codes),
        in_precedence(hold_codes),
        current.available_credit_fen,
        policy.version,
    )


def billed_on_date(state: AccountState, purchase_at: dt.datetime, tz: Any) -> dt.date | None:
    """The date of the statement that billed a purchase, or None if its cycle is open."""
    billed_on = first_statement_date(purchase_at, state.statement_day, tz)
    if state.next_statement_date is not None and billed_on >= state.next_statement_date:
        return None
    return billed_on


def check_installment_plan(state: AccountState, event: ev.InstallmentPlanCreated,
                           policy: Policy) -> None:
    """A plan converts an approved, unrefunded purchase not in another plan, before its
    statement falls due, into one of the policy's numbers of months."""
    from jiefeng.domain import ledger as L
    from jiefeng.domain.money import format_fen

    allowed = policy.installments.allowed_months
    if event.months not in allowed:
        raise DomainRejected(
            "months", f"must be one of {', '.join(str(m) for m in allowed)}")
    if event.plan_id in state.ledger.plans or any(
            p.plan_id == event.plan_id for p in state.purchases.values()):
        raise DomainRejected("plan_id", "a plan with this id already exists")
    record = state.purchases.get(event.purchase_event_id)
    if record is None:
        raise DomainRejected("purchase_event_id",
                             "no approved purchase with this id on this account")
    if record.plan_id is not None:
        raise DomainRejected("purchase_event_id",
                             f"the purchase is already in plan {record.plan_id}")
    if record.refunded_fen:
        raise DomainRejected("purchase_event_id", "the purchase was refunded")
    if len(state.ledger.plans) >= L.MAX_ACTIVE_PLANS:
        raise DomainRejected("plan_id", f"at most {L.MAX_ACTIVE_PLANS} plans may run at once")
    tz = policy.zone
    billed_on = billed_on_date(state, record.at, tz)
    statement = L.statement_of(state.ledger, billed_on) if billed_on else None
    if statement is not None and (statement.judged
                                  or local_date(event.at, tz) > statement.due_date):
        raise DomainRejected("purchase_event_id",
                             f"its statement fell due on {statement.due_date.isoformat()}")
    convertible_fen = L.convertible_principal_fen(state.ledger, billed_on, record.amount_fen)
    if convertible_fen <= 0:
        raise DomainRejected("purchase_event_id", "the purchase is already repaid")
    # The smallest installment must be at least a fen.
    if convertible_fen < event.months:
        raise DomainRejected("months", f"too many months for {format_fen(convertible_fen)}")


def check_event(state: AccountState | None, event: Any, policy: Policy, scopes: Scopes) -> None:
    """Refuse an account event the fold could not apply. `state` is the account advanced to the
    event's time, or None if the account has no events yet."""
    kind = type(event)
    if kind is ev.AccountOpened:
        if state is not None and state.opened:
            raise DomainRejected("account_id", "account is already open")
        return
    if state is None or not state.opened:
        raise DomainRejected("account_id", "unknown account: send account_opened first")
    if state.opened_at is not None and event.at < state.opened_at:
        raise DomainRejected("at", "is before the account was opened")
    # The type's own check, looked up once: an ingest checks every event, most of them of
    # types without one (a chain of isinstance calls was about a microsecond of each).
    check = _CHECKS.get(kind)
    if check is not None:
        check(state, event, policy, scopes)
    # What the causes that listen to this type of event refuse (their declared admissions).
    for admit in causes.tables().admissions.get(kind, ()):
        admit(state, event, policy, scopes)


def _check_refund(state: AccountState, event: ev.Refund, policy: Policy,
                  scopes: Scopes) -> None:
    record = state.purchases.get(event.purchase_event_id)
    if record is None:
        raise DomainRejected(
            "purchase_event_id", "no approved purchase with this id on this account"
        )
    refundable_fen = record.amount_fen - record.refunded_fen
    if event.amount_fen > refundable_fen:
        from jiefeng.domain.money import format_fen

        raise DomainRejected(
            "amount", f"exceeds the refundable amount {format_fen(refundable_fen)}"
        )


def _check_plan(state: AccountState, event: ev.InstallmentPlanCreated, policy: Policy,
                scopes: Scopes) -> None:
    check_installment_plan(state, event, policy)


def _check_appeal(state: AccountState, event: ev.AppealSubmitted, policy: Policy,
                  scopes: Scopes) -> None:
    if event.appeal_id in state.appeals:
        raise DomainRejected("appeal_id", "an appeal with this id already exists")
    held = set(state.holds) | {h.code for h in scoped_holds(state, event.at, scopes)}
    if event.hold_code not in held:
        raise DomainRejected("hold_code", f"the account has no active {event.hold_code} hold")
    if event.hold_code not in policy.appeals.appealable_codes:
        raise DomainRejected(
            "hold_code", f"{event.hold_code} cannot be appealed; it lifts as explained"
        )
    if any(
        a.hold_code == event.hold_code and a.status == "pending" for a in state.appeals.values()
    ):
        raise DomainRejected("hold_code", "an appeal for this hold is already pending")
    attempted = set(state.purchases) | {d.event_id for d in state.declined_purchases}
    unknown = [pid for pid in event.purchase_event_ids if pid not in attempted]
    if unknown:
        raise DomainRejected(
            "purchase_event_ids", f"not purchases of this account: {unknown[0]}"
        )


def _check_appeal_decision(state: AccountState, event: ev.AppealDecided, policy: Policy,
                           scopes: Scopes) -> None:
    appeal = state.appeals.get(event.appeal_id)
    if appeal is None:
        raise DomainRejected("appeal_id", "no appeal with this id")
    if appeal.status != "pending":
        raise DomainRejected("appeal_id", f"the appeal is already {appeal.status}")


_CHECKS: dict[type, Callable[[AccountState, Any, Policy, Scopes], None]] = {
    ev.Refund: _check_refund,
    ev.InstallmentPlanCreated: _check_plan,
    ev.AppealSubmitted: _check_appeal,
    ev.AppealDecided: _check_appeal_decision,
}

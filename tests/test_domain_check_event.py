"""check_event: well-formed events that contradict the account are refused naming the field."""

from __future__ import annotations

import pytest

from builders import DAY, HOUR, T0
from jiefeng.domain import holds as H
from jiefeng.domain.decisions import DomainRejected, PurchaseRequest, check_event

T = T0 + 10 * DAY


def check(account, type_, when=T, state=..., **fields):
    if type_ != "appeal_decided":
        fields.setdefault("account_id", account.account_id)
    else:
        fields.setdefault("actor", "ops-1")
    event = account.world.event(type_, when, **fields)
    target = account.peek(when) if state is ... else state
    return check_event(target, event, account.policy, account.scopes)


def refused(account, type_, **fields) -> DomainRejected:
    with pytest.raises(DomainRejected) as info:
        check(account, type_, **fields)
    return info.value


def test_events_for_an_unopened_account(account):
    error = refused(account, "repayment", state=None, amount="1.00")
    assert error.field == "account_id"
    assert "account_opened" in error.reason


def test_the_first_opening_is_accepted(account):
    check(account, "account_opened", state=None, credit_limit="1.00", id_expires_on="2030-01-01")


def test_a_second_opening(account):
    error = refused(account, "account_opened", credit_limit="1.00", id_expires_on="2030-01-01")
    assert error.field == "account_id"


def test_an_event_before_the_opening(account):
    error = refused(account, "login", when=T0 - HOUR, state=account.state, device_id="d")
    assert error.field == "at"


def test_refund_of_an_unknown_purchase(account):
    error = refused(account, "refund", amount="1.00", purchase_event_id="nope")
    assert error.field == "purchase_event_id"


def test_refund_of_a_declined_purchase(account):
    account.purchase(T0 + DAY, "10.00", kind="transfer")
    error = refused(account, "refund", amount="1.00", purchase_event_id=account.last_event_id())
    assert error.field == "purchase_event_id"


def test_refund_larger_than_what_is_left(account):
    account.purchase(T0 + DAY, "10.00")
    pid = account.last_event_id()
    check(account, "refund", amount="10.00", purchase_event_id=pid)
    account.send("refund", T0 + 2 * DAY, amount="4.00", purchase_event_id=pid)
    error = refused(account, "refund", amount="6.01", purchase_event_id=pid)
    assert error.field == "amount"
    assert "6.00" in error.reason


def test_id_document_already_expired(account):
    error = refused(account, "id_document_updated", expires_on=T.date().isoformat())
    assert error.field == "expires_on"


def test_appeal_for_a_code_the_account_does_not_hold(account):
    error = refused(account, "appeal_submitted", appeal_id="ap", hold_code=H.CASH_OUT_SUSPECTED)
    assert error.field == "hold_code"


def test_appeal_for_a_code_that_cannot_be_appealed(account):
    account.wrong_password(T0 + DAY, times=5)
    error = refused(account, "appeal_submitted", when=T0 + DAY + HOUR, appeal_id="ap",
                    hold_code=H.PASSWORD_LOCKED)
    assert error.field == "hold_code" and "cannot be appealed" in error.reason


def test_appeal_twice(account):
    account.purchase(T0 + DAY, "10.00", kind="transfer")
    check(account, "appeal_submitted", appeal_id="ap", hold_code=H.CASH_OUT_SUSPECTED)
    account.send("appeal_submitted", T0 + 2 * DAY, appeal_id="ap", hold_code=H.CASH_OUT_SUSPECTED)
    assert refused(account, "appeal_submitted", appeal_id="ap",
                   hold_code=H.CASH_OUT_SUSPECTED).field == "appeal_id"
    assert refused(account, "appeal_submitted", appeal_id="ap2",
                   hold_code=H.CASH_OUT_SUSPECTED).field == "hold_code"


def test_appeal_naming_purchases_of_another_account(account):
    account.purchase(T0 + DAY, "10.00", kind="transfer")
    error = refused(account, "appeal_submitted", appeal_id="ap", hold_code=H.CASH_OUT_SUSPECTED,
                    purchase_event_ids=["someone-elses"])
    assert error.field == "purchase_event_ids"


def test_decision_for_an_unknown_or_decided_appeal(account):
    assert refused(account, "appeal_decided", appeal_id="ap", decision="approve",
                   account_id="A1").field == "appeal_id"
    account.purchase(T0 + DAY, "10.00", kind="transfer")
    account.send("appeal_submitted", T0 + 2 * DAY, appeal_id="ap", hold_code=H.CASH_OUT_SUSPECTED)
    check(account, "appeal_decided", appeal_id="ap", decision="reject", account_id="A1")
    account.send("appeal_decided", T0 + 3 * DAY, appeal_id="ap", decision="reject",
                 account_id="A1")
    error = refused(account, "appeal_decided", appeal_id="ap", decision="approve",
                    account_id="A1")
    assert error.field == "appeal_id" and "rejected" in error.reason


def test_releasing_a_manual_hold_that_is_not_there(account):
    error = refused(account, "manual_hold_released", actor="ops-1")
    assert error.field == "account_id"


def test_ordinary_events_pass(account):
    check(account, "repayment", amount="1.00")
    check(account, "purchase", amount="1.00", merchant_id="M")
    check(account, "login", device_id="d")


@pytest.mark.parametrize(("fields", "field"), [({"amount_fen": 0}, "amount"),
                                               ({"amount_fen": 1, "kind": "loan"}, "kind")])
def test_purchase_request_is_validated(fields, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        PurchaseRequest(**fields)

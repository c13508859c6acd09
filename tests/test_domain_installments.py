"""Installment plans (分期): conversion, billing over the months, early repayment, refunds,
an overdue installment, and every rejection naming its field."""

from __future__ import annotations

import datetime as dt

import pytest

from builders import DAY, FIRST_DUE_DAY, T0, World, local, midnight
from jiefeng.domain import effects as E
from jiefeng.domain.decisions import DomainRejected, check_event
from jiefeng.domain.holds import OVERDUE
from jiefeng.domain.money import format_fen
from jiefeng.policy.schema import default_policy

PURCHASE_AT = T0 + 5 * DAY  # billed 2026-02-01, due 2026-02-09
DUE_DAY_EVENING = midnight(FIRST_DUE_DAY) + dt.timedelta(hours=22)


@pytest.fixture
def world() -> World:
    return World(default_policy())


def plan_account(world, amount="1200.00", months=3, at=T0 + 15 * DAY):
    account = world.account()
    assert account.purchase(PURCHASE_AT, amount).data["approved"]
    purchase_id = account.last_event_id()
    effects = account.send("installment_plan_created", at, plan_id="P1",
                           purchase_event_id=purchase_id, months=months)
    (created,) = [e for e in effects if e.kind == E.INSTALLMENT_PLAN_CREATED]
    return account, purchase_id, created


def test_a_plan_bills_principal_and_fee_over_its_months(world):
    account, _, created = plan_account(world)
    assert created.data["principal_fen"] == 120_000
    assert created.data["fee_fen"] == 3_000  # 2.5 % for 3 months
    assert created.data["first_installment_fen"] == 41_000
    # The converted principal still uses the line.
    assert account.state.available_credit_fen == 1_000_000 - 120_000
    assert account.state.unbilled_fen == 0
    for month in (2, 3, 4):
        account.advance(local(2026, month, 1, 1))
        statement = account.state.statements[-1]
        assert statement.installments_fen == 41_000
        assert statement.principal_fen == 0
        assert statement.minimum_due_fen == 41_000  # the whole installment is due
        account.repay(local(2026, month, 9, 20), "410.00")
    assert account.state.ledger.plans == {}
    assert account.state.available_credit_fen == 1_000_000
    account.advance(local(2026, 5, 20))
    assert account.holds() == set()
    assert len(account.of_kind(E.STATEMENT_ISSUED)) == 3


def test_paying_an_installment_frees_its_principal(world):
    account, _, _ = plan_account(world)
    account.advance(local(2026, 2, 1, 1))
    assert account.state.available_credit_fen == 1_000_000 - 120_000 - 1_000  # fee billed
    account.repay(local(2026, 2, 3, 10), "410.00")
    assert account.state.available_credit_fen == 1_000_000 - 80_000


def test_early_repayment_ends_the_plan_without_the_remaining_fees(world):
    account, _, _ = plan_account(world)
    account.advance(local(2026, 2, 1, 1))
    # The February installment, then the principal of the two months not yet billed.
    account.repay(local(2026, 2, 3, 10), "1210.00")
    assert account.state.ledger.plans == {}
    assert account.state.ledger.total_owed_fen == 0
    assert account.state.credit_balance_fen == 0
    account.advance(local(2026, 4, 2))
    assert len(account.of_kind(E.STATEMENT_ISSUED)) == 1


def test_a_refund_reduces_the_remaining_installments(world):
    account, purchase_id, _ = plan_account(world)
    account.advance(local(2026, 2, 1, 1))
    account.repay(local(2026, 2, 3, 10), "410.00")
    account.send("refund", local(2026, 2, 4, 10), amount="600.00",
                 purchase_event_id=purchase_id)
    (plan,) = account.state.ledger.plans.values()
    assert plan.remaining_principal_fen == 20_000
    assert plan.remaining_fee_fen == 500  # 20.00 of fee shrinks with the principal
    account.advance(local(2026, 3, 1, 1))
    assert account.state.statements[-1].installments_fen == 10_000 + 250


def test_a_refund_beyond_the_remaining_installments_is_a_credit(world):
    account, purchase_id, _ = plan_account(world)
    account.send("refund", T0 + 16 * DAY, amount="1200.00", purchase_event_id=purchase_id)
    assert account.state.ledger.plans == {}
    account.advance(local(2026, 3, 2))
    assert account.of_kind(E.STATEMENT_ISSUED) == []


def test_an_unpaid_installment_is_overdue(world):
    account, _, _ = plan_account(world)
    account.repay(DUE_DAY_EVENING, "400.00")
    assert account.holds(midnight(FIRST_DUE_DAY + DAY)) == {OVERDUE}
    account.advance(midnight(FIRST_DUE_DAY + DAY))
    assert account.state.holds[OVERDUE].evidence["minimum_past_due_fen"] == 1_000


def test_a_plan_on_a_billed_statement_before_its_due_date_lowers_its_minimum(world):
    account = world.account()
    account.purchase(PURCHASE_AT, "1000.00")
    purchase_id = account.last_event_id()
    account.advance(local(2026, 2, 1, 1))
    assert account.state.statements[0].minimum_due_fen == 10_000
    account.send("installment_plan_created", local(2026, 2, 5, 10), plan_id="P1",
                 purchase_event_id=purchase_id, months=6)
    statement = account.state.statements[0]
    assert (statement.new_balance_fen, statement.minimum_due_fen) == (0, 0)
    assert account.holds(local(2026, 2, 12)) == set()
    account.advance(local(2026, 3, 1, 1))
    fee_fen = 4_500  # 4.5 % of 1,000.00 for 6 months
    assert account.state.statements[-1].installments_fen == (
        -(-100_000 // 6) + -(-fee_fen // 6))


def test_plans_replay_the_same_however_time_is_advanced(world):
    step, _, _ = plan_account(world)
    leap = World(default_policy())
    leap_account, _, _ = plan_account(leap)
    end = local(2026, 6, 1)
    when = local(2026, 1, 21)
    while when < end:
        step.advance(when)
        when += dt.timedelta(hours=17)
    assert step.peek(end).ledger == leap_account.peek(end).ledger


# --- rejections ---------------------------------------------------------------------------------


def rejection(account, at, **fields) -> DomainRejected:
    world = account.world
    event = world.event("installment_plan_created", at, account_id=account.account_id, **fields)
    with pytest.raises(DomainRejected) as raised:
        check_event(account.peek(at), event, world.policy, world.scopes)
    return raised.value


def test_rejections_name_the_field_and_the_reason(world):
    account, purchase_id, _ = plan_account(world)
    at = T0 + 16 * DAY
    other = world.account("A2")
    other.purchase(PURCHASE_AT, "100.00")
    other_id = other.last_event_id()

    wrong_months = rejection(other, at, plan_id="Q", purchase_event_id=other_id, months=4)
    assert (wrong_months.field, wrong_months.reason) == ("months", "must be one of 3, 6, 9, 12")
    unknown = rejection(other, at, plan_id="Q", purchase_event_id="nope", months=3)
    assert unknown.field == "purchase_event_id"
    again = rejection(account, at, plan_id="P2", purchase_event_id=purchase_id, months=3)
    assert again.field == "purchase_event_id" and "already in plan P1" in again.reason
    same_id = rejection(account, at, plan_id="P1", purchase_event_id="x", months=3)
    assert (same_id.field, same_id.reason) == ("plan_id", "a plan with this id already exists")


def test_a_refunded_purchase_cannot_be_converted(world):
    account = world.account()
    account.purchase(PURCHASE_AT, "100.00")
    purchase_id = account.last_event_id()
    account.send("refund", PURCHASE_AT + DAY, amount="10.00", purchase_event_id=purchase_id)
    refused = rejection(account, PURCHASE_AT + 2 * DAY, plan_id="P", months=3,
                        purchase_event_id=purchase_id)
    assert (refused.field, refused.reason) == ("purchase_event_id", "the purchase was refunded")


def test_a_purchase_past_its_due_date_cannot_be_converted(world):
    account = world.account()
    account.purchase(PURCHASE_AT, "100.00")
    purchase_id = account.last_event_id()
    refused = rejection(account, local(2026, 2, 10, 9), plan_id="P", months=3,
                        purchase_event_id=purchase_id)
    assert refused.field == "purchase_event_id"
    assert refused.reason == "its statement fell due on 2026-02-09"
    # On the due day itself it still can.
    event = world.event("installment_plan_created", local(2026, 2, 9, 20), account_id="A1",
                        plan_id="P", months=3, purchase_event_id=purchase_id)
    check_event(account.peek(event.at), event, world.policy, world.scopes)


def test_a_declined_purchase_cannot_be_converted(world):
    account = world.account(credit_limit="50.00")
    assert not account.purchase(PURCHASE_AT, "100.00").data["approved"]
    refused = rejection(account, PURCHASE_AT + DAY, plan_id="P", months=3,
                        purchase_event_id=account.last_event_id())
    assert refused.field == "purchase_event_id"


def test_a_repaid_purchase_cannot_be_converted(world):
    account = world.account()
    account.purchase(PURCHASE_AT, "100.00")
    purchase_id = account.last_event_id()
    account.repay(PURCHASE_AT + DAY, "100.00")
    refused = rejection(account, PURCHASE_AT + 2 * DAY, plan_id="P", months=3,
                        purchase_event_id=purchase_id)
    assert (refused.field, refused.reason) == ("purchase_event_id",
                                               "the purchase is already repaid")


@pytest.mark.parametrize("fields, field", [
    ({"months": "3"}, "months"),
    ({"months": 1}, "months"),
    ({"months": 3, "plan_id": ""}, "plan_id"),
    ({"months": 3, "extra": 1}, "extra"),
])
def test_malformed_plan_events_are_rejected_by_the_contract(fields, field):
    from jiefeng.domain.events import EventRejected, parse_event

    raw = {"event_id": "e1", "type": "installment_plan_created", "account_id": "A1",
           "at": "2026-01-20T10:00:00+08:00", "plan_id": "P1", "purchase_event_id": "p1",
           **fields}
    with pytest.raises(EventRejected) as raised:
        parse_event(raw)
    assert raised.value.field == field


def test_the_first_installment_carries_the_rounding(world):
    account, _, created = plan_account(world, amount="100.00", months=3)
    # 100.00 over 3 months: 33.34 then 33.33 twice; fee 2.50: 0.84, 0.83, 0.83.
    assert created.data["first_installment_fen"] == 3_334 + 84
    total = 0
    for month in (2, 3, 4):
        account.advance(local(2026, month, 1, 1))
        total += account.state.statements[-1].installments_fen
        account.repay(local(2026, month, 2, 10),
                      format_fen(account.state.statements[-1].owed_fen))
    assert total == 10_000 + 250

"""Statements, due dates, overdue, bureau reporting, late fees and cure probation."""

from __future__ import annotations

import datetime as dt

from builders import DAY, FIRST_DUE_DAY, FIRST_STATEMENT, HOUR, MINUTE, T0, local, midnight
from jiefeng.domain import effects as E
from jiefeng.domain.holds import CURE_PROBATION, OVERDUE
from jiefeng.domain.money import format_fen

PURCHASE_AT = T0 + 5 * DAY  # 2026-01-10 10:00
OVERDUE_AT = midnight(FIRST_DUE_DAY + DAY)  # 2026-02-10 00:00 local
FEE_A_DAY = 30  # 0.05 % of 600.00
INTEREST_A_DAY = 30  # 0.05 % of 600.00 of unpaid principal


def overdue_account(world, amount="600.00"):
    account = world.account()
    assert account.purchase(PURCHASE_AT, amount).data["approved"]
    return account


def repay_all(account, when):
    owed = account.owed_fen(when)
    account.repay(when, format_fen(owed))
    return owed


# --- statements -----------------------------------------------------------------------------------


def test_statement_is_issued_at_local_midnight_for_purchases_before_it(world):
    account = world.account()
    account.purchase(PURCHASE_AT, "600.00")
    # 2026-01-31 23:59:59 local (15:59:59Z) is in this cycle; 2026-02-01 00:00 local is not.
    account.purchase(dt.datetime(2026, 1, 31, 15, 59, 59, tzinfo=dt.UTC), "0.50")
    account.purchase(dt.datetime(2026, 1, 31, 16, 0, 0, tzinfo=dt.UTC), "7.00")
    issued = account.of_kind(E.STATEMENT_ISSUED)
    assert len(issued) == 1
    assert issued[0].at == FIRST_STATEMENT
    assert issued[0].data == {"statement_date": "2026-02-01", "due_date": "2026-02-09",
                              "amount_fen": 60050, "new_balance_fen": 60050,
                              "minimum_due_fen": 60050}  # pay in full: the minimum is all
    assert account.state.unbilled_fen == 700
    assert account.state.next_statement_date == dt.date(2026, 3, 1)


def test_no_statement_without_spending(account):
    account.advance(local(2026, 4, 2))
    assert account.of_kind(E.STATEMENT_ISSUED) == []
    assert account.state.statements == []
    assert account.holds() == set()


def test_due_day_before_statement_day_falls_in_the_next_month(world):
    account = world.account(statement_day=20, due_day=5)
    account.purchase(PURCHASE_AT, "100.00")
    account.advance(local(2026, 1, 21))
    (statement,) = account.state.statements
    assert statement.statement_date == dt.date(2026, 1, 20)
    assert statement.due_date == dt.date(2026, 2, 5)


def test_first_statement_when_opened_on_the_statement_day_midnight(world):
    account = world.account(opened_at=local(2026, 1, 1))
    assert account.state.next_statement_date == dt.date(2026, 2, 1)


# --- overdue ------------------------------------------------------------------------------


def test_unpaid_the_day_after_due_is_overdue(world):
    account = overdue_account(world)
    assert account.holds(OVERDUE_AT - MINUTE) == set()
    assert account.authorize(OVERDUE_AT - MINUTE).approved
    assert account.holds(OVERDUE_AT) == {OVERDUE}
    account.advance(OVERDUE_AT)
    hold = account.state.holds[OVERDUE]
    assert hold.since == OVERDUE_AT
    assert hold.placed_by == "clock:overdue"
    assert hold.evidence["due_date"] == FIRST_DUE_DAY
    assert hold.evidence["principal_past_due_fen"] == 60000
    assert account.status() == "frozen"
    decision = account.authorize(OVERDUE_AT + HOUR)
    assert not decision.approved and OVERDUE in decision.codes


def test_paid_on_the_due_day_is_never_overdue(world):
    account = overdue_account(world)
    account.repay(midnight(FIRST_DUE_DAY) + 23 * HOUR, "600.00")
    account.advance(local(2026, 3, 20))
    assert account.holds() == set()
    assert account.of_kind(E.HOLD_PLACED) == []
    assert account.state.statements == []  # nothing open
    (statement,) = account.state.ledger.history  # kept for explanations, settled
    assert statement.owed_fen == 0 and statement.paid_in_full


def test_partly_paid_on_the_due_day_is_overdue_for_the_rest(world):
    account = overdue_account(world)
    account.repay(midnight(FIRST_DUE_DAY) + 12 * HOUR, "500.00")
    account.advance(OVERDUE_AT)
    assert account.state.holds[OVERDUE].evidence["principal_past_due_fen"] == 10000


def test_bureau_prenotice_then_report_at_three_days_past_due(world):
    account = overdue_account(world)
    account.advance(local(2026, 2, 11, 12))
    notices = account.of_kind(E.NOTICE, OVERDUE)
    assert [n.data["notice"] for n in notices] == ["bureau_prenotice"]
    assert notices[0].at == OVERDUE_AT  # one day past due
    assert notices[0].data["report_on"] == "2026-02-12"
    assert account.of_kind(E.BUREAU_REPORTED) == []

    account.advance(local(2026, 2, 12))
    (reported,) = account.of_kind(E.BUREAU_REPORTED)
    assert reported.at == local(2026, 2, 12)
    assert reported.data["days_past_due"] == 3
    account.advance(local(2026, 3, 1))
    assert len(account.of_kind(E.BUREAU_REPORTED)) == 1
    assert len(account.of_kind(E.NOTICE, OVERDUE)) == 1


def test_repaid_before_the_report_is_not_reported(world):
    account = overdue_account(world)
    repay_all(account, local(2026, 2, 11, 9))
    account.advance(local(2026, 3, 1))
    assert account.of_kind(E.BUREAU_REPORTED) == []


def test_late_fee_is_five_basis_points_a_day_on_the_past_due_minimum(world):
    account = overdue_account(world)
    assert account.peek(OVERDUE_AT + HOUR).ledger.accrued_fees_fen == 0
    assert account.peek(local(2026, 2, 11, 9)).ledger.accrued_fees_fen == FEE_A_DAY
    state = account.peek(local(2026, 2, 20, 9))
    assert state.ledger.accrued_fees_fen == 10 * FEE_A_DAY
    # The fee is billed on the next statement; what is past due is the minimum.
    assert state.summary()["past_due_fen"] == 60000
    assert state.ledger.total_owed_fen == 60000 + 10 * FEE_A_DAY + 10 * INTEREST_A_DAY
    march = account.peek(local(2026, 3, 1, 9)).statements[-1]
    assert march.fees_fen == 19 * FEE_A_DAY  # 10 February to 28 February
    assert march.interest_fen == 19 * INTEREST_A_DAY


def test_late_fee_does_not_depend_on_how_often_time_is_advanced(world):
    stepwise = overdue_account(world)
    for day in range(10, 40):
        stepwise.advance(local(2026, 2, 10) + (day - 10) * DAY + 7 * HOUR)
    end = local(2026, 3, 12, 7)
    once = overdue_account(world).peek(end)
    assert stepwise.peek(end).ledger == once.ledger


def test_paying_fee_and_principal_settles_the_statement(world):
    account = overdue_account(world)
    # The principal, then 2 days of fee (10th, 11th), then 2 days of interest.
    account.repay(local(2026, 2, 12, 9), "601.20")
    assert account.state.ledger.total_owed_fen == 0
    assert account.state.ledger.credit_balance_fen == 0
    assert account.holds() == {CURE_PROBATION}


def test_repaying_the_past_due_minimum_lifts_overdue_and_the_fee_is_billed_next(world):
    # Changed with minimum payments: the late fee accrues off the statement and is billed
    # on the next one (as part of its minimum); paying the past-due minimum lifts the hold.
    account = overdue_account(world)
    account.repay(local(2026, 2, 12, 9), "600.00")
    assert account.holds() == {CURE_PROBATION}
    assert account.state.statements == []  # February is settled: history
    assert account.state.ledger.history[0].owed_fen == 0
    assert account.state.ledger.accrued_fees_fen == 2 * FEE_A_DAY
    march = account.peek(local(2026, 3, 1, 9)).statements[-1]
    assert (march.fees_fen, march.interest_fen) == (2 * FEE_A_DAY, 2 * INTEREST_A_DAY)
    assert march.minimum_due_fen == march.new_balance_fen == 4 * FEE_A_DAY


# --- cure probation ------------------------------------------------------------------------------


def test_repaying_all_past_due_releases_overdue_and_places_cure_probation(world):
    account = overdue_account(world)
    paid_at = local(2026, 2, 15, 10)
    assert repay_all(account, paid_at) == 60000 + 5 * FEE_A_DAY + 5 * INTEREST_A_DAY
    released = account.of_kind(E.HOLD_RELEASED, OVERDUE)
    assert released[0].at == paid_at and released[0].data["path"] == "repaid"
    cure = account.state.holds[CURE_PROBATION]
    assert cure.since == paid_at
    assert cure.releases_at == paid_at + 90 * DAY
    assert cure.evidence["probation_days"] == 90 and cure.evidence["repeat"] is False
    assert cure.placed_by == account.last_event_id()
    assert account.holds() == {CURE_PROBATION}
    assert account.status() == "frozen"
    assert account.state.summary()["past_due_fen"] == 0


def test_cure_probation_lifts_at_ninety_days(world):
    account = overdue_account(world)
    paid_at = local(2026, 2, 15, 10)
    repay_all(account, paid_at)
    assert account.holds(paid_at + 90 * DAY - MINUTE) == {CURE_PROBATION}
    assert account.holds(paid_at + 90 * DAY) == set()
    assert account.authorize(paid_at + 90 * DAY).approved
    account.advance(paid_at + 90 * DAY)
    assert account.status() == "active"


def second_overdue(account, purchase_at, cure_end):
    account.advance(cure_end)
    assert account.holds() == set()
    assert account.purchase(purchase_at, "100.00").data["approved"]


def test_a_second_overdue_within_twelve_months_doubles_the_probation(world):
    account = overdue_account(world)
    first_paid = local(2026, 2, 15, 10)
    repay_all(account, first_paid)
    second_overdue(account, local(2026, 6, 1, 10), first_paid + 90 * DAY)
    assert account.holds(local(2026, 7, 10)) == {OVERDUE}  # due 2026-07-09
    second_paid = local(2026, 7, 12, 10)
    repay_all(account, second_paid)
    cure = account.state.holds[CURE_PROBATION]
    assert cure.evidence["probation_days"] == 180 and cure.evidence["repeat"] is True
    assert cure.releases_at == second_paid + 180 * DAY
    assert account.holds(second_paid + 179 * DAY) == {CURE_PROBATION}
    assert account.holds(second_paid + 180 * DAY) == set()


def test_a_second_overdue_after_twelve_months_gets_the_normal_probation(world):
    account = overdue_account(world)
    first_paid = local(2026, 2, 15, 10)
    repay_all(account, first_paid)
    second_overdue(account, local(2027, 2, 20, 10), first_paid + 90 * DAY)
    assert account.holds(local(2027, 3, 10)) == {OVERDUE}  # 393 days after the first
    repay_all(account, local(2027, 3, 11, 10))
    assert account.state.holds[CURE_PROBATION].evidence["probation_days"] == 90


def test_a_new_overdue_during_probation_replaces_it(world):
    account = overdue_account(world)
    account.purchase(local(2026, 2, 5, 10), "400.00")  # billed 2026-03-01, due 2026-03-09
    paid_at = local(2026, 2, 15, 10)
    repay_all_past_due = account.peek(paid_at).summary()["past_due_fen"]
    account.repay(paid_at, format_fen(repay_all_past_due))
    assert account.holds() == {CURE_PROBATION}
    assert account.state.unbilled_fen == 40000

    second = local(2026, 3, 10)
    assert account.holds(second) == {OVERDUE}
    account.advance(second)
    superseded = account.of_kind(E.HOLD_RELEASED, CURE_PROBATION)
    assert superseded[0].at == second and superseded[0].data["path"] == "superseded_by_overdue"

    cured_at = local(2026, 3, 11, 10)
    repay_all(account, cured_at)
    cure = account.state.holds[CURE_PROBATION]
    assert cure.since == cured_at
    assert cure.releases_at == cured_at + 180 * DAY


# --- repayments ----------------------------------------------------------------------------------


def test_repayments_pay_the_oldest_statement_first(world):
    account = overdue_account(world)
    account.purchase(local(2026, 2, 5, 10), "400.00")
    account.advance(local(2026, 3, 1, 1))
    first, second = account.state.statements
    assert (first.statement_date, second.statement_date) == (dt.date(2026, 2, 1),
                                                             dt.date(2026, 3, 1))
    assert second.fees_fen == 19 * FEE_A_DAY
    account.repay(local(2026, 3, 1, 2), "100.00")
    first, second = account.state.statements
    assert first.paid_principal_fen == 10000
    assert second.paid_fen == 0
    account.repay(local(2026, 3, 1, 3), "520.00")
    (second,) = account.state.statements
    (first,) = account.state.ledger.history  # settled
    assert first.owed_fen == 0
    # Within a statement: fees, then interest, then principal.
    assert (second.paid_fees_fen, second.paid_interest_fen) == (19 * FEE_A_DAY, 19 * 30)
    assert second.paid_principal_fen == 2000 - 2 * 19 * 30


def test_overpayment_stays_as_credit_and_reduces_the_next_statement(world):
    account = overdue_account(world)
    account.repay(local(2026, 2, 3, 10), "700.00")
    assert account.state.ledger.billed_owed_fen == 0
    assert account.state.credit_balance_fen == 10000
    assert account.state.available_credit_fen == 1_000_000
    account.purchase(local(2026, 2, 4, 10), "300.00")
    assert account.state.available_credit_fen == 1_000_000 - 20000
    account.advance(local(2026, 3, 1, 1))
    (issued,) = account.of_kind(E.STATEMENT_ISSUED)[1:]
    assert issued.data["amount_fen"] == 30000
    assert issued.data["new_balance_fen"] == 20000  # the credit paid 100.00 of it
    assert account.state.credit_balance_fen == 0


def test_credit_larger_than_the_next_bill_leaves_no_statement(world):
    account = world.account()
    account.repay(T0 + DAY, "50.00")
    account.purchase(T0 + 2 * DAY, "20.00")
    account.advance(local(2026, 2, 2))
    assert account.of_kind(E.STATEMENT_ISSUED) == []
    assert account.state.credit_balance_fen == 3000
    assert account.state.unbilled_fen == 0


def test_repayment_is_applied_while_overdue(world):
    account = overdue_account(world)
    effects = account.repay(local(2026, 2, 20, 10), "100.00")
    assert not [e for e in effects if e.kind == E.EVENT_IGNORED]
    assert account.state.repayments_total_fen == 10000
    assert OVERDUE in account.holds()
    hold = account.state.holds[OVERDUE]
    assert hold.evidence["minimum_past_due_fen"] == 60000 - 10000

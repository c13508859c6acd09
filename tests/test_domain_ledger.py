"""The ledger under the default policy: minimum due, revolving interest, grace, tolerance,
late fees on the minimum, allocation, over-limit through interest.

Dates: opened 2026-01-05; a purchase on 2026-01-10 is billed on 2026-02-01, due 2026-02-09;
the minimum is judged at the end of the due day (2026-02-10 00:00 local) plus the grace days.
"""

from __future__ import annotations

import datetime as dt

import pytest

from builders import DAY, FIRST_DUE_DAY, MINUTE, T0, World, local, midnight, policy_with
from jiefeng.domain import effects as E
from jiefeng.domain import ledger as L
from jiefeng.domain.holds import CURE_PROBATION, OVERDUE
from jiefeng.domain.money import format_fen
from jiefeng.policy.schema import PolicyInvalid, default_policy

PURCHASE_AT = T0 + 5 * DAY
DUE_DAY_EVENING = midnight(FIRST_DUE_DAY) + dt.timedelta(hours=23, minutes=59)
JUDGED_AT = midnight(FIRST_DUE_DAY + DAY)


def world_with(**billing) -> World:
    return World(policy_with(default_policy(), billing=billing) if billing else default_policy())


def revolver(world: World, amount: str = "1000.00", **open_fields):
    account = world.account(**open_fields)
    assert account.purchase(PURCHASE_AT, amount).data["approved"]
    return account


# --- the statement and its minimum ------------------------------------------------------------


def test_statement_carries_new_balance_and_a_ten_percent_minimum():
    account = revolver(world_with())
    account.advance(local(2026, 2, 1, 1))
    (statement,) = account.state.statements
    assert statement.new_balance_fen == 100_000
    assert statement.minimum_due_fen == 10_000
    assert statement.revolving_principal_fen == 100_000
    (issued,) = account.of_kind(E.STATEMENT_ISSUED)
    assert issued.data["new_balance_fen"] == 100_000
    assert issued.data["minimum_due_fen"] == 10_000


def test_minimum_floor_applies_but_never_exceeds_the_balance():
    account = revolver(world_with(minimum_payment_floor_fen=5_000), "30.00")
    (statement,) = account.peek(local(2026, 2, 1, 1)).statements
    assert statement.minimum_due_fen == 3_000  # the floor of 50.00 capped at the balance
    account = revolver(world_with(minimum_payment_floor_fen=5_000), "300.00")
    (statement,) = account.peek(local(2026, 2, 1, 1)).statements
    assert statement.minimum_due_fen == 5_000  # 10 % would be 30.00


def test_decimal_percentage_rounds_up_to_the_fen():
    account = revolver(world_with(minimum_payment_pct=12.5), "333.33")
    (statement,) = account.peek(local(2026, 2, 1, 1)).statements
    assert statement.minimum_due_fen == 4167  # 12.5 % of 333.33 is 41.66625


def test_minimum_percentage_is_validated():
    for bad in (0, 0.99, 100.01, 12.345):
        with pytest.raises(PolicyInvalid) as raised:
            policy_with(default_policy(), billing={"minimum_payment_pct": bad})
        assert raised.value.problems[0][0] == "billing.minimum_payment_pct"


def test_a_policy_without_the_new_keys_takes_their_defaults():
    from jiefeng.policy.schema import parse_policy_text

    policy = parse_policy_text('version = "old"\n[billing]\nlate_fee_daily_bp = 5\n')
    assert policy.billing.minimum_payment_pct == 10
    assert (policy.billing.grace_days, policy.billing.tolerance_fen) == (0, 0)
    assert policy.billing.revolving_interest_daily_bp == 5


# --- when a minimum is past due ---------------------------------------------------------------


def test_exactly_the_minimum_on_the_due_day_is_not_overdue_and_the_rest_revolves():
    account = revolver(world_with())
    account.repay(DUE_DAY_EVENING, "100.00")
    account.advance(local(2026, 3, 1, 1))
    assert account.holds() == set()
    assert account.of_kind(E.HOLD_PLACED) == []
    assert account.of_kind(E.NOTICE) == [] and account.of_kind(E.BUREAU_REPORTED) == []
    february, march = account.state.statements
    assert february.owed_fen == 90_000 and february.overdue_since is None
    assert not february.paid_in_full
    # 900.00 revolves at 5 bp a day (45 fen) from 10 February: 19 days to 1 March.
    assert march.interest_fen == 19 * 45
    assert march.fees_fen == 0  # no late fee when the minimum was met
    assert march.new_balance_fen == 90_000 + 19 * 45
    assert march.minimum_due_fen == 9_000 + 19 * 45
    assert account.state.ledger.months_revolving == 1


def test_one_fen_below_the_minimum_is_overdue_from_the_next_day():
    account = revolver(world_with())
    account.repay(DUE_DAY_EVENING, "99.99")
    assert account.holds(JUDGED_AT - MINUTE) == set()
    assert account.holds(JUDGED_AT) == {OVERDUE}
    account.advance(JUDGED_AT)
    hold = account.state.holds[OVERDUE]
    assert hold.evidence["minimum_past_due_fen"] == 1


def test_tolerance_forgives_a_small_shortfall_which_carries_forward():
    world = world_with(tolerance_fen=1_000)
    account = revolver(world)
    account.repay(DUE_DAY_EVENING, "90.00")  # 10.00 short: at the tolerance
    account.advance(local(2026, 3, 1, 1))
    assert account.holds() == set()
    march = account.state.statements[-1]
    assert march.carried_minimum_fen == 1_000
    assert march.minimum_due_fen == 9_100 + march.interest_fen + 1_000

    short = revolver(world_with(tolerance_fen=1_000))
    short.repay(DUE_DAY_EVENING, "89.99")  # 10.01 short: one fen beyond it
    assert short.holds(JUDGED_AT) == {OVERDUE}


def test_grace_days_move_the_judgement_and_the_bureau_dates():
    account = revolver(world_with(grace_days=3))
    last_grace_day = midnight(FIRST_DUE_DAY + 3 * DAY) + dt.timedelta(hours=23)
    assert account.holds(last_grace_day) == set()
    assert account.holds(midnight(FIRST_DUE_DAY + 4 * DAY)) == {OVERDUE}
    account.advance(local(2026, 2, 20))
    (notice,) = account.of_kind(E.NOTICE, OVERDUE)
    assert notice.at == midnight(FIRST_DUE_DAY + 4 * DAY)
    assert notice.data["report_on"] == "2026-02-15"
    (reported,) = account.of_kind(E.BUREAU_REPORTED)
    assert reported.at == midnight(dt.date(2026, 2, 15))


def test_paid_on_the_last_grace_day_is_never_overdue():
    account = revolver(world_with(grace_days=3))
    account.repay(midnight(FIRST_DUE_DAY + 3 * DAY) + dt.timedelta(hours=22), "100.00")
    account.advance(local(2026, 2, 28))
    assert account.of_kind(E.HOLD_PLACED) == []
    assert account.state.ledger.accrued_fees_fen == 0


def test_overdue_lifts_when_the_past_due_minimum_is_paid_not_the_whole_balance():
    account = revolver(world_with())
    account.advance(local(2026, 2, 12, 9))
    hold = account.state.holds[OVERDUE]
    assert hold.evidence["minimum_past_due_fen"] == 10_000
    assert account.state.ledger.days_past_due(dt.date(2026, 2, 12)) == 3
    account.repay(local(2026, 2, 12, 10), "99.00")
    assert OVERDUE in account.holds()
    assert account.state.holds[OVERDUE].evidence["minimum_past_due_fen"] == 100
    account.repay(local(2026, 2, 12, 11), "1.00")
    assert account.holds() == {CURE_PROBATION}
    assert account.state.ledger.total_owed_fen > 80_000  # the rest revolves


def test_late_fee_accrues_on_the_unpaid_minimum_only():
    account = revolver(world_with(revolving_interest_daily_bp=0))
    state = account.peek(midnight(FIRST_DUE_DAY + 11 * DAY))
    # 5 bp of the 100.00 minimum is 5 fen a day, not 50 on the 1,000.00 balance.
    assert state.ledger.accrued_fees_fen == 10 * 5


def test_an_unpaid_minimum_is_carried_into_the_next_one_without_double_counting():
    account = revolver(world_with(revolving_interest_daily_bp=0, late_fee_daily_bp=0))
    march = account.peek(local(2026, 3, 1, 1)).statements[-1]
    assert march.carried_minimum_fen == 10_000
    assert march.minimum_due_fen == 10_000 + 10_000  # 10 % of 1,000.00 again, plus the carry
    account.advance(local(2026, 3, 10, 1))
    assert account.state.ledger.past_due_minimum_fen() == 20_000
    account.repay(local(2026, 3, 10, 2), "150.00")
    # February's minimum is paid; March's still lacks 50.00.
    assert account.state.ledger.past_due_minimum_fen() == 5_000
    assert account.state.ledger.days_past_due(dt.date(2026, 3, 10)) == 1
    account.repay(local(2026, 3, 10, 3), "50.00")
    assert account.holds() == {CURE_PROBATION}


def test_a_refund_that_settles_the_statement_settles_its_minimum():
    account = revolver(world_with())
    purchase_id = account.last_event_id()
    account.send("refund", local(2026, 2, 5, 10), amount="1000.00",
                 purchase_event_id=purchase_id)
    account.advance(local(2026, 2, 20))
    assert account.holds() == set()


# --- interest -----------------------------------------------------------------------------------


def test_interest_is_exact_over_a_year_with_the_fraction_carried():
    account = revolver(world_with(late_fee_daily_bp=0), "333.33")
    end = midnight(FIRST_DUE_DAY + DAY + 365 * DAY)
    ledger = account.peek(end).ledger
    billed_fen = sum(s.interest_fen for s in ledger.statements)
    total_units = 33_333 * 5 * 365  # 16.6665 fen a day, every day from 10 February
    assert billed_fen * L.UNITS_PER_FEN + ledger.interest_units == total_units
    assert billed_fen + ledger.accrued_interest_fen == total_units // L.UNITS_PER_FEN


def test_interest_is_the_same_however_often_time_is_advanced():
    world = world_with()
    step, leap = revolver(world), world.account("LEAP")
    leap.purchase(PURCHASE_AT, "1000.00")
    for account in (step, leap):
        account.repay(DUE_DAY_EVENING, "100.00")
    end = local(2026, 6, 20)
    when = JUDGED_AT
    while when < end:
        step.advance(when)
        when += dt.timedelta(hours=13)
    assert step.peek(end).ledger == leap.peek(end).ledger


def test_interest_may_take_the_balance_over_the_limit_and_purchases_are_declined():
    account = revolver(world_with(), credit_limit="1000.00")
    account.repay(DUE_DAY_EVENING, "100.00")
    assert account.purchase(local(2026, 2, 10, 9), "100.00").data["approved"]  # at the limit
    later = local(2026, 3, 5, 9)
    state = account.peek(later)
    assert state.ledger.total_owed_fen > state.credit_limit_fen
    assert state.available_credit_fen == 0
    decision = account.authorize(later, 1)
    assert decision.codes == ["insufficient_credit"]
    assert account.status(later) == "active"
    effects = account.repay(later, "0.01")  # nothing is rejected, repayments always work
    assert not [e for e in effects if e.kind == E.EVENT_IGNORED]


# --- allocation ---------------------------------------------------------------------------------


def test_allocation_order_fees_interest_installments_principal_then_unbilled():
    ledger = L.Ledger()
    ledger.statements.append(L.Statement(dt.date(2026, 2, 1), dt.date(2026, 2, 9), fees_fen=100,
                                         interest_fen=200, installments_fen=300,
                                         principal_fen=400))
    ledger.statements.append(L.Statement(dt.date(2026, 3, 1), dt.date(2026, 3, 9), fees_fen=10,
                                         principal_fen=20))
    ledger.unbilled_fen = 50
    L.pay(ledger, 250, repayment=True)
    first, second = ledger.statements
    assert (first.paid_fees_fen, first.paid_interest_fen, first.paid_installments_fen) == (
        100, 150, 0)
    L.pay(ledger, 1000, repayment=True)
    assert first.owed_fen == 0 and second.owed_fen == 0
    assert ledger.unbilled_fen == 0
    assert ledger.credit_balance_fen == 1250 - 1000 - 30 - 50
    assert first.paid_since_issue_fen == 1250  # the minimum is judged on payments


def test_a_refund_is_not_a_payment_toward_the_minimum():
    ledger = L.Ledger()
    ledger.statements.append(L.Statement(dt.date(2026, 2, 1), dt.date(2026, 2, 9),
                                         principal_fen=1000, minimum_due_fen=100))
    L.refund(ledger, 300, "p1")
    statement = ledger.statements[0]
    assert statement.paid_since_issue_fen == 0
    assert ledger.unpaid_minimum_fen(statement) == 100
    L.refund(ledger, 650, "p2")
    assert ledger.unpaid_minimum_fen(statement) == 50  # capped at what is still owed


def test_summary_names_minimum_revolving_and_installments():
    account = revolver(world_with())
    account.repay(DUE_DAY_EVENING, "100.00")
    summary = account.peek(local(2026, 3, 1, 1)).summary()
    assert summary["revolving_fen"] == 90_000
    assert summary["minimum_due_fen"] == 9_000 + 19 * 45
    assert summary["installment_balance_fen"] == 0
    assert summary["past_due_fen"] == 0


def test_features_for_sweeps_include_the_ledger():
    from jiefeng.domain.rules import features

    world = world_with()
    account = revolver(world)
    account.repay(DUE_DAY_EVENING, "100.00")
    at = local(2026, 3, 1, 1)
    snapshot = features(account.peek(at), at, world.policy)
    assert snapshot["minimum_due"] == (9_000 + 19 * 45) / 100
    assert snapshot["revolving_balance"] == 900.0 + 19 * 45 / 100 - 19 * 45 / 100
    assert snapshot["installment_balance"] == 0
    assert snapshot["months_revolving"] == 1


def test_paid_in_full_resets_months_revolving():
    account = revolver(world_with())
    account.repay(DUE_DAY_EVENING, "100.00")
    account.advance(local(2026, 3, 2))
    account.repay(local(2026, 3, 2, 9), format_fen(account.owed_fen(local(2026, 3, 2, 9))))
    account.advance(local(2026, 3, 11))
    assert account.state.ledger.months_revolving == 0


# --- the portfolio that prompted minimum payments -------------------------------------------


def card_holders_paying_between_minimum_and_full(policy, paid: dict | None = None,
                                                 holders: int = 60, months: int = 6):
    """Card holders who spend every month and pay, by each due date, something between the
    statement's minimum and everything owed. With `paid` from an earlier run, they pay those
    same amounts instead. Returns (overdue holders, bureau reports, amounts paid)."""
    import random

    rng = random.Random(20261204)
    world = World(policy)
    overdue, reports, amounts = 0, 0, {}
    for n in range(holders):
        account = world.account(f"C{n:03d}")
        for month in range(1, months + 1):
            for day in sorted(rng.randint(10, 27) for _ in range(rng.randint(1, 4))):
                account.purchase(local(2026, month, day, 12), format_fen(rng.randint(500, 90_000)))
            pay_at = local(2026, month + 1, rng.randint(2, 9), 18)
            key = (n, month)
            if paid is None:
                account.advance(pay_at)
                minimum_fen = account.state.ledger.minimum_due_fen()
                owed_fen = account.owed_fen(pay_at)
                amounts[key] = rng.randint(minimum_fen, max(minimum_fen, owed_fen))
            elif paid.get(key):
                rng.random()  # keep the same draws as the first run
                amounts[key] = paid[key]
            if amounts.get(key):
                account.repay(pay_at, format_fen(amounts[key]))
        account.advance(local(2026, months + 1, 28))  # the last bill judged, the next not due
        overdue += bool(account.of_kind(E.HOLD_PLACED, OVERDUE))
        reports += len(account.of_kind(E.BUREAU_REPORTED))
    return overdue, reports, amounts


def test_card_holders_who_pay_at_least_the_minimum_are_never_frozen():
    overdue, reports, paid = card_holders_paying_between_minimum_and_full(default_policy())
    assert (overdue, reports) == (0, 0)
    assert sum(1 for amount in paid.values() if amount) > 300
    # The same customers paying the same amounts under pay-in-full (the ledger before minimum
    # payments): most of them would be frozen and reported to the bureau.
    strict = policy_with(default_policy(), billing={"minimum_payment_pct": 100})
    overdue, reports, _ = card_holders_paying_between_minimum_and_full(strict, paid)
    assert overdue > 40 and reports > 40


def test_every_statement_is_judged_once_with_its_outcome():
    world = world_with()
    full, minimum, short = (revolver(world), world.account("B"), world.account("C"))
    for account in (minimum, short):
        account.purchase(PURCHASE_AT, "1000.00")
    full.repay(local(2026, 2, 3, 10), "1000.00")  # paid up early: judged at once
    minimum.repay(DUE_DAY_EVENING, "100.00")
    short.repay(DUE_DAY_EVENING, "50.00")
    for account in (full, minimum, short):
        account.advance(local(2026, 2, 20))
    (judged,) = full.of_kind(E.STATEMENT_JUDGED)
    assert judged.at == local(2026, 2, 3, 10) and judged.cause == full.last_event_id()
    assert judged.data["outcome"] == "paid_in_full"
    (judged,) = minimum.of_kind(E.STATEMENT_JUDGED)
    assert judged.at == JUDGED_AT and judged.data["outcome"] == "minimum_met"
    assert (judged.data["minimum_due_fen"], judged.data["paid_fen"]) == (10_000, 10_000)
    (judged,) = short.of_kind(E.STATEMENT_JUDGED)
    assert judged.data["outcome"] == "below_minimum" and judged.data["paid_fen"] == 5_000

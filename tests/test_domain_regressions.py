"""Cases found after the first round of domain tests: each failed before its fix."""

from __future__ import annotations

import datetime as dt

from builders import DAY, FIRST_DUE_DAY, HOUR, T0, local, midnight
from jiefeng.domain.holds import CASH_OUT_SUSPECTED, CURE_PROBATION, OVERDUE
from jiefeng.domain.money import format_fen


def test_a_small_overdue_balance_still_accrues_its_late_fee(world):
    """0.05 % of 10.00 is 0.5 fen a day: floored daily it was never charged at all."""
    account = world.account()
    account.purchase(T0 + DAY, "10.00")
    ten_days_late = midnight(FIRST_DUE_DAY + 11 * DAY)
    state = account.peek(ten_days_late)
    # 1,000 fen x 5 bp = 0.5 fen a day; day 1 is charged at the start of day 2, and so on.
    days = (ten_days_late.date() - (FIRST_DUE_DAY + DAY)).days
    assert state.ledger.accrued_fees_fen == 1_000 * 5 * days // 10_000
    assert state.ledger.accrued_fees_fen > 0


def test_late_fee_is_the_same_however_often_time_is_advanced(world):
    step, leap = world.account("STEP"), world.account("LEAP")
    for account in (step, leap):
        account.purchase(T0 + DAY, "33.33")
    end = midnight(FIRST_DUE_DAY + 40 * DAY)
    when = midnight(FIRST_DUE_DAY + DAY)
    while when < end:
        step.advance(when)
        when += dt.timedelta(hours=7)
    assert step.peek(end).ledger.late_fee_units == leap.peek(end).ledger.late_fee_units
    assert step.peek(end).ledger == leap.peek(end).ledger


def test_partial_refunds_of_one_purchase_are_one_quick_refund(world):
    account = world.account()
    account.purchase(T0 + HOUR, "300.00", merchant="M-1")
    purchase_id = account.last_event_id()
    for n in range(3):
        account.send("refund", T0 + (2 + n) * HOUR, amount="10.00",
                     purchase_event_id=purchase_id)
    assert CASH_OUT_SUSPECTED not in account.holds(T0 + 6 * HOUR)


def test_two_statements_overdue_in_one_episode_do_not_double_probation(world):
    account = world.account()
    account.purchase(T0 + DAY, "100.00")  # statement of 2026-02-01, due 02-09
    account.purchase(local(2026, 2, 5, 10), "100.00")  # statement of 2026-03-01, due 03-09
    march_overdue = midnight(dt.date(2026, 3, 10))
    assert OVERDUE in account.holds(march_overdue)
    when = march_overdue + HOUR
    account.repay(when, format_fen(account.owed_fen(when)))
    hold = account.hold(CURE_PROBATION, when)
    assert hold.evidence["probation_days"] == 90
    assert hold.releases_at == when + 90 * DAY

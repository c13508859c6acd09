"""dormant: a line unused for a year after opening closes; activity reopens it."""

from __future__ import annotations

import datetime as dt

from builders import DAY, HOUR, MINUTE, T0
from jiefeng.domain import effects as E
from jiefeng.domain.holds import DORMANT

CLOSES_AT = T0 + 365 * DAY


def activities(account, start, count, gap=DAY):
    for i in range(count):
        account.send("activity", start + i * gap, category="life_service")


def test_no_purchase_within_a_year_closes_the_line(account):
    assert account.holds(CLOSES_AT - MINUTE) == set()
    assert account.holds(CLOSES_AT) == {DORMANT}
    account.advance(CLOSES_AT)
    hold = account.state.holds[DORMANT]
    assert hold.since == CLOSES_AT and hold.placed_by == "clock:dormancy"
    assert hold.evidence["days_without_purchase"] == 365
    assert account.status() == "closed"
    decision = account.authorize(CLOSES_AT + HOUR)
    assert not decision.approved and DORMANT in decision.codes


def test_notice_thirty_days_before(account):
    account.advance(CLOSES_AT - 30 * DAY - MINUTE)
    assert account.of_kind(E.NOTICE, DORMANT) == []
    account.advance(CLOSES_AT - 30 * DAY)
    (notice,) = account.of_kind(E.NOTICE, DORMANT)
    assert notice.at == CLOSES_AT - 30 * DAY
    assert notice.data["notice"] == "dormancy_notice"
    assert dt.datetime.fromisoformat(notice.data["closes_at"]) == CLOSES_AT
    account.advance(CLOSES_AT + 10 * DAY)
    assert len(account.of_kind(E.NOTICE, DORMANT)) == 1


def test_a_purchase_at_day_300_prevents_it(account):
    account.purchase(T0 + 300 * DAY, "10.00")
    account.repay(T0 + 301 * DAY, "10.00")
    account.advance(T0 + 800 * DAY)
    assert account.holds() == set()
    assert account.of_kind(E.NOTICE, DORMANT) == []


def test_activity_alone_does_not_prevent_it(account):
    activities(account, T0 + 100 * DAY, 10)
    assert account.holds(CLOSES_AT) == {DORMANT}


def test_four_activities_in_thirty_days_do_not_reopen_five_do(account):
    start = CLOSES_AT + 10 * DAY
    activities(account, start, 4, gap=7 * DAY)
    assert account.status() == "closed"
    activities(account, start + 28 * DAY + HOUR, 1)
    assert account.holds() == set()
    released = account.of_kind(E.HOLD_RELEASED, DORMANT)
    assert released[0].data["path"] == "reactivated"
    assert account.status() == "active"


def test_five_activities_spread_over_more_than_thirty_days_do_not(account):
    activities(account, CLOSES_AT + DAY, 5, gap=8 * DAY)
    assert account.status() == "closed"


def test_reopening_restarts_the_clock(account):
    start = CLOSES_AT + 10 * DAY
    activities(account, start, 5, gap=HOUR)
    reopened_at = start + 4 * HOUR
    assert account.holds() == set()
    assert account.holds(reopened_at + 365 * DAY - MINUTE) == set()
    assert account.holds(reopened_at + 365 * DAY) == {DORMANT}
    account.advance(reopened_at + 340 * DAY)
    notices = account.of_kind(E.NOTICE, DORMANT)
    assert notices[-1].at == reopened_at + 335 * DAY


def test_a_purchase_after_reopening_keeps_it_open(account):
    start = CLOSES_AT + 10 * DAY
    activities(account, start, 5, gap=HOUR)
    assert account.purchase(start + DAY, "10.00").data["approved"]
    account.repay(start + 2 * DAY, "10.00")
    assert account.holds(start + 800 * DAY) == set()


def test_an_approved_appeal_reopens_and_restarts_the_clock(account):
    account.advance(CLOSES_AT)
    decided_at = CLOSES_AT + 3 * DAY
    account.send("appeal_submitted", CLOSES_AT + DAY, appeal_id="ap", hold_code=DORMANT)
    account.send("appeal_decided", decided_at, appeal_id="ap", decision="approve",
                 account_id="A1")
    assert account.status() == "active"
    assert account.holds(decided_at + 365 * DAY) == {DORMANT}

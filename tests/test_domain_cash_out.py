"""cash_out_suspected: disallowed kinds, rapid round purchases, high-risk merchants, quick
refunds, score brushing; quiet-period release and appeals."""

from __future__ import annotations

import pytest

from builders import DAY, HOUR, MINUTE, T0
from jiefeng.domain import effects as E
from jiefeng.domain.holds import CASH_OUT_SUSPECTED

T = T0 + 10 * DAY


def signals(account):
    return [s["signal"] for s in account.state.holds[CASH_OUT_SUSPECTED].evidence["signals"]]


@pytest.mark.parametrize("kind", ["transfer", "cash_withdrawal"])
def test_disallowed_kinds_are_declined_and_place_the_hold(account, kind):
    decided = account.purchase(T, "10.00", kind=kind)
    assert not decided.data["approved"]
    # The hold the attempt itself placed comes first: holds precede the request's own codes.
    assert decided.data["codes"] == ["cash_out_suspected", "kind_not_allowed"]
    hold = account.state.holds[CASH_OUT_SUSPECTED]
    assert hold.since == T and hold.placed_by == account.last_event_id()
    assert hold.releases_at == T + 60 * DAY
    assert signals(account) == ["kind_not_allowed"]
    assert account.state.unbilled_fen == 0
    assert account.state.purchases == {}


def test_authorize_declines_a_disallowed_kind_without_placing_anything(account):
    decision = account.authorize(T, 1000, kind="transfer")
    assert not decision.approved and decision.codes == ["kind_not_allowed"]
    assert account.holds() == set()


def test_three_round_purchases_at_one_merchant_within_a_day(account):
    assert account.purchase(T, "1000.00", "M-A").data["approved"]
    assert account.purchase(T + 5 * HOUR, "2000.00", "M-A").data["approved"]
    assert account.holds() == set()
    third = account.purchase(T + 24 * HOUR, "1000.00", "M-A")  # exactly 24h: still inside
    assert not third.data["approved"]  # the attempt that completes the pattern is declined
    assert CASH_OUT_SUSPECTED in third.data["codes"]
    assert signals(account) == ["rapid_merchant"]
    assert account.state.unbilled_fen == 300000


def test_two_round_purchases_do_not(account):
    account.purchase(T, "1000.00", "M-A")
    account.purchase(T + HOUR, "1000.00", "M-A")
    account.purchase(T + 2 * HOUR, "1000.00", "M-B")
    account.purchase(T + 3 * HOUR, "999.99", "M-A")
    assert account.holds() == set()


def test_three_round_purchases_spread_over_more_than_a_day_do_not(account):
    account.purchase(T, "1000.00", "M-A")
    account.purchase(T + 13 * HOUR, "1000.00", "M-A")
    account.purchase(T + 24 * HOUR + MINUTE, "1000.00", "M-A")
    assert account.holds() == set()


def test_three_near_limit_purchases_at_one_merchant(account):
    for i in range(3):
        decided = account.purchase(T + i * 4 * HOUR, "9500.50", "M-A")
        account.repay(T + i * 4 * HOUR + 2 * HOUR, "9500.50")
    assert [d["approved"] for d in
            (e.data for e in account.of_kind(E.PURCHASE_DECIDED))] == [True, True, False]
    assert not decided.data["approved"]
    assert signals(account) == ["rapid_merchant"]


def test_a_high_risk_merchant_purchase(account):
    decided = account.purchase(T, "12.00", "M-HIGHRISK-002")
    assert not decided.data["approved"]
    assert signals(account) == ["high_risk_merchant"]


def buy_and_refund(account, bought_at, refund_after, amount="123.45", refund="100.00"):
    account.purchase(bought_at, amount, f"M-{bought_at:%d%H}")
    pid = account.last_event_id()
    account.send("refund", bought_at + refund_after, amount=refund, purchase_event_id=pid)
    return pid


def test_three_quick_refunds_within_a_week(account):
    buy_and_refund(account, T, 47 * HOUR)
    buy_and_refund(account, T + 2 * DAY, 47 * HOUR)
    assert account.holds() == set()
    pid = buy_and_refund(account, T + 4 * DAY, 48 * HOUR, refund="123.45")  # exactly 48h counts
    assert signals(account) == ["quick_refunds"]
    assert account.state.purchases[pid].refunded_fen == 12345


def test_slow_or_spread_refunds_do_not_count(account):
    buy_and_refund(account, T, 49 * HOUR)  # too slow
    buy_and_refund(account, T + 4 * DAY, HOUR)
    buy_and_refund(account, T + 8 * DAY, HOUR)
    assert account.holds() == set()
    buy_and_refund(account, T + 12 * DAY, HOUR)  # the first quick one is 8 days old
    assert account.holds() == set()


def brushing_cycles(account, count, start=T, gap=HOUR * 20):
    for i in range(count):
        at = start + i * gap
        assert account.purchase(at, "88.00", "M-BRUSH").data["approved"]
        account.repay(at + 59 * MINUTE, "88.00")


def test_five_brushing_cycles_within_a_week(account):
    brushing_cycles(account, 4)
    assert account.holds() == set()
    brushing_cycles(account, 1, start=T + 5 * DAY)
    assert signals(account) == ["score_brushing"]
    # The repayment completing the pattern is still applied.
    assert account.owed_fen() == 0


def test_four_cycles_do_not_and_slow_repayments_are_not_cycles(account):
    brushing_cycles(account, 4)
    account.purchase(T + 4 * DAY, "88.00", "M-BRUSH")
    account.repay(T + 4 * DAY + 61 * MINUTE, "88.00")  # outside the hour
    account.purchase(T + 5 * DAY, "88.00", "M-BRUSH")
    account.repay(T + 5 * DAY + 10 * MINUTE, "80.00")  # not in full
    assert account.holds() == set()


def test_cycles_spread_over_more_than_a_week_do_not(account):
    brushing_cycles(account, 5, gap=2 * DAY)
    assert account.holds() == set()


def test_released_after_sixty_quiet_days(account):
    account.purchase(T, "10.00", kind="transfer")
    assert account.holds(T + 60 * DAY - MINUTE) == {CASH_OUT_SUSPECTED}
    assert account.holds(T + 60 * DAY) == set()
    account.advance(T + 60 * DAY)
    released = account.of_kind(E.HOLD_RELEASED, CASH_OUT_SUSPECTED)
    assert released[0].data["path"] == "expired" and released[0].cause == "clock:" + (
        CASH_OUT_SUSPECTED)
    assert account.authorize(T + 61 * DAY).approved


def test_a_new_signal_extends_the_quiet_period(account):
    account.purchase(T, "10.00", kind="transfer")
    account.purchase(T + 30 * DAY, "10.00", "M-HIGHRISK-001")
    hold = account.state.holds[CASH_OUT_SUSPECTED]
    assert hold.since == T
    assert hold.releases_at == T + 90 * DAY
    assert signals(account) == ["kind_not_allowed", "high_risk_merchant"]
    assert account.holds(T + 60 * DAY) == {CASH_OUT_SUSPECTED}
    assert account.holds(T + 90 * DAY) == set()


def appeal(account, when, decision):
    account.send("appeal_submitted", when, appeal_id="ap-1", hold_code=CASH_OUT_SUSPECTED,
                 statement="I bought a fridge")
    return account.send("appeal_decided", when + DAY, appeal_id="ap-1", decision=decision,
                        account_id=account.account_id, reason="checked")


def test_an_approved_appeal_releases_at_once(account):
    account.purchase(T, "10.00", kind="transfer")
    effects = appeal(account, T + DAY, "approve")
    assert account.holds() == set()
    (released,) = [e for e in effects if e.kind == E.HOLD_RELEASED]
    assert released.data["path"] == "appeal_approved"
    assert account.state.appeals["ap-1"].status == "approved"
    assert account.state.appeals["ap-1"].decided_by == "ops-1"
    assert account.authorize(T + 2 * DAY).approved


def test_an_approved_appeal_forgets_the_old_signals(account):
    account.purchase(T, "1000.00", "M-A")
    account.purchase(T + HOUR, "1000.00", "M-A")
    account.purchase(T + 2 * HOUR, "1000.00", "M-A")
    appeal(account, T + 3 * HOUR, "approve")
    # One more round purchase at the same merchant does not re-trigger from stale signals.
    assert account.purchase(T + 3 * HOUR + DAY + MINUTE, "1000.00", "M-A").data["approved"]
    assert account.holds() == set()


def test_a_rejected_appeal_keeps_the_hold(account):
    account.purchase(T, "10.00", kind="transfer")
    effects = appeal(account, T + DAY, "reject")
    assert [e.kind for e in effects] == [E.APPEAL_DECIDED]
    assert account.holds() == {CASH_OUT_SUSPECTED}
    assert account.state.appeals["ap-1"].status == "rejected"
    assert account.holds(T + 60 * DAY) == set()  # the quiet period still runs


def test_a_decision_without_a_pending_appeal_is_ignored(account):
    account.purchase(T, "10.00", kind="transfer")
    effects = account.send("appeal_decided", T + DAY, appeal_id="nope", decision="approve",
                           account_id="A1")
    assert [e.kind for e in effects] == [E.EVENT_IGNORED]
    assert account.holds() == {CASH_OUT_SUSPECTED}


def test_repaying_one_purchase_again_and_again_is_one_cycle(account):
    account.purchase(T, "88.00", "M-BRUSH")
    for i in range(5):
        account.repay(T + (i + 1) * 5 * MINUTE, "88.00")  # duplicate auto-pay, say
    assert account.holds() == set()
    assert len(account.state.brushing_cycles) == 1
    assert account.state.credit_balance_fen == 4 * 8800


def test_two_purchases_repaid_in_full_are_two_cycles(account):
    account.purchase(T, "88.00", "M-BRUSH")
    account.purchase(T + MINUTE, "88.00", "M-BRUSH")
    account.repay(T + 2 * MINUTE, "88.00")
    account.repay(T + 3 * MINUTE, "88.00")
    assert len(account.state.brushing_cycles) == 2


def test_the_signal_and_the_decision_judge_the_credit_available_before_the_purchase(account):
    """Computed once before the causes react, read by the cash-out check and by the decision,
    and gone once the purchase is decided (never pickled, never compared)."""
    import pickle

    from jiefeng.domain.invariants import InvariantViolation, check_invariants

    account.purchase(T, "1000.00", "M-A")
    account.purchase(T + 5 * HOUR, "2000.00", "M-A")
    available_fen = account.state.available_credit_fen
    third = account.purchase(T + 6 * HOUR, "1000.00", "M-A")
    facts = account.state.holds[CASH_OUT_SUSPECTED].trace.facts
    assert facts["available_fen"] == available_fen
    assert third.data["codes"] == [CASH_OUT_SUSPECTED]  # not insufficient_credit
    assert account.state.purchase_available_fen is None
    # Too large for what is available: the decision reads the same figure.
    declined = account.purchase(T + 30 * DAY, f"{available_fen / 100 + 0.01:.2f}", "M-B")
    assert "insufficient_credit" in declined.data["codes"]
    assert account.state.purchase_available_fen is None

    state = account.state.clone()
    state.purchase_available_fen = 5
    restored = pickle.loads(pickle.dumps(state))
    assert restored.purchase_available_fen is None and restored == state
    with pytest.raises(InvariantViolation, match="outlived its decision"):
        check_invariants(state)

"""Several holds at once, authorize, repayment never blocked, purity of decide and advance."""

from __future__ import annotations

import pytest

from builders import DAY, HOUR, MINUTE, T0, World, codes, local, snapshot
from jiefeng.domain import effects as E
from jiefeng.domain import holds as H
from jiefeng.domain.core import active_holds, advance, decide, fold, new_account
from jiefeng.domain.holds import derive_status

T = T0 + 10 * DAY


def busy_account(world: World):
    """An account with a past-due statement, late fees, windows of signals and several holds."""
    account = world.account("A1", segment="mass")
    account.purchase(T0 + DAY, "600.00")
    account.purchase(T0 + 2 * DAY, "1000.00", "M-A")
    account.send("login", T0 + 3 * DAY, device_id="dev-1")
    account.send("profile_change", T0 + 4 * DAY, field="bank_card")
    account.send("activity", T0 + 5 * DAY, category="payment")
    account.advance(local(2026, 2, 14))  # overdue since 2026-02-10, fees accrued
    account.score(local(2026, 2, 15), 580)
    account.wrong_password(local(2026, 2, 15, 9), times=5)
    return account


def test_several_holds_freeze_and_releasing_one_keeps_the_others(world):
    account = busy_account(world)
    at = local(2026, 2, 15, 12)
    assert account.holds() == {H.OVERDUE, H.SCORE_BELOW_THRESHOLD, H.PASSWORD_LOCKED}
    assert account.status() == "frozen"
    account.send("password_reset", at, identity_verified=True)
    assert account.holds() == {H.OVERDUE, H.SCORE_BELOW_THRESHOLD}
    account.score(at + HOUR, 650)
    assert account.holds() == {H.OVERDUE}
    assert account.status() == "frozen"
    decision = account.authorize(at + 2 * HOUR)
    assert decision.hold_codes == [H.OVERDUE]


def test_closed_beats_frozen(world):
    account = world.account()
    account.score(T, 500)
    account.wrong_password(T, times=5)
    assert account.status() == "frozen"
    world.command("policy_sweep", T + DAY, sweep_id="s1", criteria="score < 550",
                  reopen_criteria="score >= 700")
    account.advance(T + DAY)
    assert account.holds() == {H.SCORE_BELOW_THRESHOLD, H.PASSWORD_LOCKED, H.POLICY_TIGHTENING}
    assert account.status() == "closed"
    account.score(T + 100 * DAY, 720)  # reopens the line and lifts the score hold
    assert account.holds() == set()
    assert account.status() == "active"


def test_derive_status():
    def hold(code):
        return H.Hold(code, T, "e1", {"x": 1})

    assert derive_status([]) == "active"
    assert derive_status([hold(H.OVERDUE)]) == "frozen"
    assert derive_status([hold(H.OVERDUE), hold(H.DORMANT)]) == "closed"
    assert derive_status((hold(H.POLICY_TIGHTENING),)) == "closed"


def test_every_hold_code_has_a_release_path():
    assert set(H.RELEASE_PATHS) == set(H.HOLD_CODES)
    assert all(H.RELEASE_PATHS[code] for code in H.HOLD_CODES)


def test_a_hold_must_release_after_it_is_placed():
    with pytest.raises(AssertionError):
        H.Hold(H.CURE_PROBATION, T, "e1", {"x": 1}, releases_at=T)


def test_authorize_never_changes_the_state(world):
    account = busy_account(world)
    window_at = local(2026, 3, 3, 10)
    world.command("maintenance_scheduled", window_at - DAY, window_id="w1",
                  start=window_at.isoformat(), end=(window_at + HOUR).isoformat())
    before = snapshot(account.state)
    for when in (local(2026, 2, 15, 10), window_at + MINUTE, local(2027, 6, 1)):
        for request in ({}, {"kind": "transfer"}, {"password_ok": False},
                        {"merchant_id": "M-HIGHRISK-001"}):
            account.authorize(when, 100_000_000, **request)
    assert account.state == before


def test_authorize_lists_every_code_in_order(world):
    account = busy_account(world)
    decision = account.authorize(local(2026, 2, 15, 10), 100_000_000, kind="cash_withdrawal",
                                 password_ok=False)
    # Descending precedence (docs/reason-codes.md): holds in the catalog's order, then the
    # request's own codes.
    assert decision.codes == [H.OVERDUE, H.SCORE_BELOW_THRESHOLD, H.PASSWORD_LOCKED,
                              "kind_not_allowed", "wrong_password", "insufficient_credit"]
    assert decision.to_dict()["decision"] == "declined"


def test_authorize_approves_within_the_available_credit(account):
    assert account.authorize(T, 1_000_000).approved
    assert not account.authorize(T, 1_000_001).approved
    account.purchase(T, "100.00")
    decision = account.authorize(T + HOUR, 990_001)
    assert decision.codes == ["insufficient_credit"]
    assert decision.to_dict()["available_credit"] == "9900.00"


def test_repayment_is_never_blocked(world):
    account = busy_account(world)
    at = local(2026, 2, 20, 10)
    world.command("maintenance_scheduled", at - HOUR, window_id="w1",
                  start=(at - HOUR).isoformat(), end=(at + HOUR).isoformat())
    world.command("migration_started", at - HOUR, campaign_id="c1", account_ids=["A1"])
    account.purchase(at - 30 * MINUTE, "5.00", kind="transfer")
    account.wrong_password(at - 20 * MINUTE, times=5)
    assert account.holds() >= {H.OVERDUE, H.MAINTENANCE, H.MIGRATION, H.CASH_OUT_SUSPECTED,
                               H.PASSWORD_LOCKED, H.SCORE_BELOW_THRESHOLD}
    owed = account.owed_fen(at)
    effects = account.repay(at, "123.45")
    assert not [e for e in effects if e.kind == E.EVENT_IGNORED]
    assert account.owed_fen() == owed - 12345
    assert account.state.repayments_total_fen == 12345


def test_repayment_is_applied_on_a_closed_line(world):
    account = world.account()
    account.purchase(T, "100.00")
    account.send("activity", T + DAY, category="payment")
    world.command("policy_sweep", T + 2 * DAY, sweep_id="s1", criteria="utilization > 0",
                  reopen_criteria="score >= 900")
    account.advance(T + 3 * DAY)
    assert account.status() == "closed"
    account.repay(T + 4 * DAY, "150.00")
    assert account.owed_fen() == 0 and account.state.credit_balance_fen == 5000


def test_decide_and_advance_do_not_mutate_their_input(world):
    account = busy_account(world)
    state = account.state
    before = snapshot(state)
    later = local(2026, 2, 16, 10)
    for raw in (("repayment", {"amount": "700.00"}),
                ("purchase", {"amount": "1000.00", "merchant_id": "M-A"}),
                ("refund", {"amount": "1.00", "purchase_event_id": account.events[1].event_id}),
                ("login", {"device_id": "dev-9"}),
                ("profile_change", {"field": "phone"}),
                ("score_update", {"score": 900}),
                ("password_reset", {"identity_verified": True}),
                ("activity", {"category": "payment"}),
                ("bureau_record", {"product": "mybank", "status": "overdue",
                                   "days_past_due": 40, "amount": "1.00"})):
        event = world.event(raw[0], later, account_id="A1", **raw[1])
        decide(state, event, account.policy, world.scopes)
    advance(state, local(2028, 1, 1), account.policy, world.scopes)
    assert state == before
    assert state.statements[0] is not before.statements[0]  # a real comparison, not identity


def test_an_event_older_than_the_state_is_refused(account):
    account.advance(T)
    event = account.world.event("login", T - HOUR, account_id="A1", device_id="d")
    with pytest.raises(ValueError, match="older than the state"):
        decide(account.state, event, account.policy, account.scopes)


def test_advance_to_the_past_is_a_no_op(account):
    account.advance(T)
    state, effects = advance(account.state, T - DAY, account.policy, account.scopes)
    assert state == account.state and effects == []


def test_events_before_opening_are_ignored(world):
    event = world.event("repayment", T, account_id="A1", amount="1.00")
    state, effects = decide(new_account("A1"), event, world.policy)
    assert [e.kind for e in effects] == [E.EVENT_IGNORED]
    assert not state.opened and state.repayments_total_fen == 0


def test_a_second_opening_is_ignored(account):
    effects = account.send("account_opened", T, credit_limit="1.00", id_expires_on="2030-01-01")
    assert [e.kind for e in effects] == [E.EVENT_IGNORED]
    assert account.state.credit_limit_fen == 1_000_000


def test_manual_holds(account):
    account.send("manual_hold_placed", T, reason="police request")
    hold = account.state.holds[H.MANUAL_REVIEW]
    assert hold.placed_by_actor == "ops-1" and hold.evidence == {"reason": "police request"}
    account.send("manual_hold_released", T + DAY)
    assert account.holds() == set()


def test_fold_equals_the_events_applied_one_by_one(world):
    account = busy_account(world)
    end = local(2026, 9, 1)
    account.advance(end)
    replayed, effects = fold("A1", account.events, world.policy, world.scopes, until=end)
    assert replayed == account.state
    assert effects == account.effects
    assert codes(active_holds(replayed, end, world.scopes)) == account.holds()

"""password_locked: five consecutive wrong passwords lock the line for 24 hours."""

from __future__ import annotations

from builders import DAY, HOUR, MINUTE, T0
from jiefeng.domain import effects as E
from jiefeng.domain.holds import PASSWORD_LOCKED

T = T0 + DAY


def test_four_wrong_passwords_do_not_lock(account):
    account.wrong_password(T, times=4)
    assert account.holds() == set()
    assert account.state.password_failures == 4
    assert account.authorize(T + HOUR).approved


def test_five_wrong_passwords_lock(account):
    account.wrong_password(T, times=5)
    hold = account.state.holds[PASSWORD_LOCKED]
    fifth = T + 4 * MINUTE
    assert hold.since == fifth
    assert hold.releases_at == fifth + 24 * HOUR
    assert hold.placed_by == account.last_event_id()
    assert hold.evidence["failures"] == 5
    assert account.status() == "frozen"
    assert [e.code for e in account.of_kind(E.HOLD_PLACED)] == [PASSWORD_LOCKED]


def test_a_correct_password_in_between_resets_the_count(account):
    account.wrong_password(T, times=4)
    account.send("password_attempt", T + HOUR, ok=True)
    account.wrong_password(T + 2 * HOUR, times=4)
    assert PASSWORD_LOCKED not in account.holds()
    account.send("password_attempt", T + 3 * HOUR, ok=False)
    assert PASSWORD_LOCKED in account.holds()


def test_purchases_carry_password_attempts(account):
    for i in range(4):
        decided = account.purchase(T + i * MINUTE, "10.00", password_ok=False)
        assert decided.data["codes"] == ["wrong_password"]
    decided = account.purchase(T + 10 * MINUTE, "10.00", password_ok=False)
    assert not decided.data["approved"]
    assert PASSWORD_LOCKED in decided.data["codes"]
    assert PASSWORD_LOCKED in account.holds()


def test_a_correct_purchase_password_resets_the_count(account):
    account.wrong_password(T, times=4)
    assert account.purchase(T + HOUR, "10.00", password_ok=True).data["approved"]
    account.wrong_password(T + 2 * HOUR, times=4)
    assert account.holds() == set()


def test_still_locked_at_23h59_released_at_exactly_24h(account):
    account.wrong_password(T, times=5)
    locked_at = T + 4 * MINUTE
    almost = locked_at + 24 * HOUR - MINUTE
    decision = account.authorize(almost)
    assert not decision.approved
    assert PASSWORD_LOCKED in decision.codes
    assert account.holds(almost) == {PASSWORD_LOCKED}
    assert account.status(almost) == "frozen"

    exactly = locked_at + 24 * HOUR
    assert account.holds(exactly) == set()
    assert account.authorize(exactly).approved
    account.advance(exactly)
    released = account.of_kind(E.HOLD_RELEASED, PASSWORD_LOCKED)
    assert len(released) == 1 and released[0].at == exactly
    assert released[0].data["path"] == "expired"
    assert account.status() == "active"
    assert account.state.password_failures == 0


def test_attempts_while_locked_neither_count_nor_unlock(account):
    account.wrong_password(T, times=5)
    account.send("password_attempt", T + HOUR, ok=True)
    assert PASSWORD_LOCKED in account.holds()
    account.wrong_password(T + 2 * HOUR, times=3)
    hold = account.state.holds[PASSWORD_LOCKED]
    assert hold.releases_at == T + 4 * MINUTE + 24 * HOUR  # not extended
    # After the lock the count starts afresh: four more wrong ones do not lock again.
    account.wrong_password(T + 2 * DAY, times=4)
    assert account.holds() == set()


def test_verified_password_reset_releases_at_once(account):
    account.wrong_password(T, times=5)
    account.send("password_reset", T + HOUR, identity_verified=True)
    assert account.holds() == set()
    released = account.of_kind(E.HOLD_RELEASED, PASSWORD_LOCKED)
    assert released[0].data["path"] == "password_reset"
    assert released[0].cause == account.last_event_id()
    assert account.authorize(T + HOUR).approved


def test_unverified_password_reset_changes_nothing(account):
    account.wrong_password(T, times=5)
    before = account.state.holds[PASSWORD_LOCKED]
    account.send("password_reset", T + HOUR, identity_verified=False)
    assert account.state.holds[PASSWORD_LOCKED] == before
    assert not account.authorize(T + 2 * HOUR).approved


def test_verified_reset_also_clears_a_partial_count(account):
    account.wrong_password(T, times=4)
    account.send("password_reset", T + HOUR, identity_verified=True)
    account.send("password_attempt", T + 2 * HOUR, ok=False)
    assert account.holds() == set()
    assert account.state.password_failures == 1

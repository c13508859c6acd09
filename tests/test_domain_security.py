"""account_security (takeover signals) and id_expired."""

from __future__ import annotations

import datetime as dt

from builders import DAY, HOUR, MINUTE, T0, midnight
from jiefeng.domain import effects as E
from jiefeng.domain.holds import ACCOUNT_SECURITY, ID_EXPIRED

T = T0 + 20 * DAY


def with_known_device(account):
    account.send("login", T0 + HOUR, device_id="dev-home")
    account.send("login", T0 + 5 * DAY, device_id="dev-home")  # known: no signal
    assert account.holds() == set()
    return account


def signals(account):
    return account.state.holds[ACCOUNT_SECURITY].evidence["signals"]


# --- account_security -------------------------------------------------------------------------


def test_two_bank_card_changes_within_thirty_days(account):
    account.send("profile_change", T, field="bank_card")
    assert account.holds() == set()
    account.send("profile_change", T + 30 * DAY, field="bank_card")
    hold = account.state.holds[ACCOUNT_SECURITY]
    assert signals(account) == ["bank_card_changes"]
    assert hold.since == T + 30 * DAY
    assert hold.releases_at == T + 60 * DAY
    assert account.status() == "frozen"


def test_bank_card_changes_more_than_thirty_days_apart_do_not(account):
    account.send("profile_change", T, field="bank_card")
    account.send("profile_change", T + 30 * DAY + MINUTE, field="bank_card")
    account.send("profile_change", T + 31 * DAY, field="address")
    assert account.holds() == set()


def test_phone_change_and_new_device_within_72_hours(account):
    with_known_device(account)
    account.send("profile_change", T, field="phone")
    assert account.holds() == set()
    account.send("login", T + 72 * HOUR, device_id="dev-new")
    assert signals(account) == ["phone_and_new_device"]


def test_new_device_then_phone_change_also_counts(account):
    with_known_device(account)
    account.send("login", T, device_id="dev-new")
    account.send("profile_change", T + 71 * HOUR, field="phone")
    assert signals(account) == ["phone_and_new_device"]


def test_phone_change_and_new_device_further_apart_do_not(account):
    with_known_device(account)
    account.send("profile_change", T, field="phone")
    account.send("login", T + 72 * HOUR + MINUTE, device_id="dev-new")
    account.send("login", T + 73 * HOUR, device_id="dev-home")
    assert account.holds() == set()


def test_three_new_devices_in_seven_days(account):
    with_known_device(account)
    account.send("login", T, device_id="dev-1")
    account.send("login", T + 3 * DAY, device_id="dev-2")
    account.send("login", T + 4 * DAY, device_id="dev-1")  # known by now
    assert account.holds() == set()
    account.send("login", T + 7 * DAY, device_id="dev-3")
    assert signals(account) == ["new_devices"]


def test_three_new_devices_over_more_than_seven_days_do_not(account):
    with_known_device(account)
    for i in range(3):
        account.send("login", T + i * 4 * DAY, device_id=f"dev-{i}")
    assert account.holds() == set()


def test_identity_verification_releases_and_starts_the_windows_afresh(account):
    account.send("profile_change", T, field="bank_card")
    account.send("profile_change", T + DAY, field="bank_card")
    account.send("identity_verified", T + 2 * DAY, method="face")
    assert account.holds() == set()
    released = account.of_kind(E.HOLD_RELEASED, ACCOUNT_SECURITY)
    assert released[0].data["path"] == "identity_verified"
    account.send("profile_change", T + 3 * DAY, field="bank_card")
    assert account.holds() == set()


def test_released_after_thirty_quiet_days(account):
    account.send("profile_change", T, field="bank_card")
    account.send("profile_change", T + DAY, field="bank_card")
    assert account.holds(T + 31 * DAY - MINUTE) == {ACCOUNT_SECURITY}
    assert account.holds(T + 31 * DAY) == set()
    account.advance(T + 31 * DAY)
    assert account.of_kind(E.HOLD_RELEASED, ACCOUNT_SECURITY)[0].data["path"] == "expired"
    # The windows were cleared with the release: one more change is not a pattern.
    account.send("profile_change", T + 32 * DAY, field="bank_card")
    assert account.holds() == set()


def test_a_sensitive_change_while_held_extends_the_quiet_period(account):
    account.send("profile_change", T, field="bank_card")
    account.send("profile_change", T + DAY, field="bank_card")
    account.send("profile_change", T + 10 * DAY, field="phone")
    hold = account.state.holds[ACCOUNT_SECURITY]
    assert hold.since == T + DAY
    assert hold.releases_at == T + 40 * DAY
    assert account.holds(T + 31 * DAY) == {ACCOUNT_SECURITY}
    assert account.holds(T + 40 * DAY) == set()


# --- id_expired ---------------------------------------------------------------------------------

EXPIRES = dt.date(2026, 6, 30)


def test_the_day_after_expiry_freezes(world):
    account = world.account(id_expires_on=EXPIRES.isoformat())
    day_after = midnight(EXPIRES + DAY)
    assert account.holds(day_after - MINUTE) == set()
    assert account.holds(day_after) == {ID_EXPIRED}
    account.advance(day_after)
    hold = account.state.holds[ID_EXPIRED]
    assert hold.since == day_after and hold.placed_by == "clock:id_expiry"
    assert hold.evidence == {"expires_on": EXPIRES}
    assert account.status() == "frozen"


def test_notice_sixty_days_before(world):
    account = world.account(id_expires_on=EXPIRES.isoformat())
    account.advance(midnight(EXPIRES - 60 * DAY) - MINUTE)
    assert account.of_kind(E.NOTICE) == []
    account.advance(midnight(EXPIRES + 10 * DAY))
    (notice,) = account.of_kind(E.NOTICE, ID_EXPIRED)
    assert notice.at == midnight(EXPIRES - 60 * DAY)
    assert notice.data["expires_on"] == "2026-06-30"


def test_an_updated_document_releases(world):
    account = world.account(id_expires_on=EXPIRES.isoformat())
    account.advance(midnight(EXPIRES + 3 * DAY))
    account.send("id_document_updated", midnight(EXPIRES + 3 * DAY) + HOUR,
                 expires_on="2046-06-30")
    assert account.holds() == set()
    assert account.of_kind(E.HOLD_RELEASED, ID_EXPIRED)[0].data["path"] == "id_document_updated"
    assert account.state.id_expires_on == dt.date(2046, 6, 30)


def test_an_already_expired_new_document_is_ignored(world):
    account = world.account(id_expires_on=EXPIRES.isoformat())
    at = midnight(EXPIRES + 3 * DAY) + HOUR
    effects = account.send("id_document_updated", at, expires_on=(EXPIRES + 3 * DAY).isoformat())
    assert [e.kind for e in effects if e.kind == E.EVENT_IGNORED] == [E.EVENT_IGNORED]
    assert ID_EXPIRED in account.holds()


def test_opened_with_an_expired_document(world):
    account = world.account(id_expires_on="2026-01-04")
    assert account.holds() == {ID_EXPIRED}
    assert account.state.holds[ID_EXPIRED].since == T0


def test_renewing_before_expiry_moves_the_deadline(world):
    account = world.account(id_expires_on=EXPIRES.isoformat())
    account.send("id_document_updated", midnight(EXPIRES - 10 * DAY), expires_on="2036-06-30")
    assert account.holds(midnight(EXPIRES + 5 * DAY)) == set()

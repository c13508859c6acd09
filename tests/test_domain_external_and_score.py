"""external_overdue (sibling products on the bureau) and score_below_threshold."""

from __future__ import annotations

from builders import DAY, T0, local
from jiefeng.domain import effects as E
from jiefeng.domain.holds import CURE_PROBATION, EXTERNAL_OVERDUE, SCORE_BELOW_THRESHOLD
from jiefeng.domain.money import format_fen
from jiefeng.policy.schema import default_policy_text, parse_policy_text

T = T0 + 10 * DAY


def bureau(account, when, days, status="overdue", product="jiebei", amount="1200.00"):
    return account.send("bureau_record", when, product=product, status=status,
                        days_past_due=days, amount=amount)


# --- external_overdue ---------------------------------------------------------------------------


def test_twenty_nine_days_past_due_elsewhere_is_not_a_hold(account):
    bureau(account, T, 29)
    assert account.holds() == set()


def test_thirty_days_past_due_elsewhere_freezes(account):
    bureau(account, T, 30)
    hold = account.state.holds[EXTERNAL_OVERDUE]
    assert hold.since == T and hold.placed_by == account.last_event_id()
    assert hold.evidence["threshold_days"] == 30
    assert hold.evidence["products"][0]["product"] == "jiebei"
    assert hold.evidence["products"][0]["days_past_due"] == 30
    assert hold.evidence["products"][0]["amount_fen"] == 120000
    assert account.status() == "frozen"
    assert EXTERNAL_OVERDUE in account.authorize(T + DAY).codes


def test_settled_releases_and_places_cure_probation(account):
    bureau(account, T, 45)
    settled_at = T + 20 * DAY
    bureau(account, settled_at, 0, status="settled", amount="0.00")
    released = account.of_kind(E.HOLD_RELEASED, EXTERNAL_OVERDUE)
    assert released[0].data["path"] == "settled"
    cure = account.state.holds[CURE_PROBATION]
    assert cure.evidence["source"] == "external"
    assert cure.releases_at == settled_at + 90 * DAY
    assert account.holds() == {CURE_PROBATION}
    assert account.holds(settled_at + 90 * DAY) == set()


def test_the_hold_stays_while_another_product_is_still_overdue(account):
    bureau(account, T, 40, product="jiebei")
    bureau(account, T + DAY, 35, product="mybank")
    assert len(account.state.holds[EXTERNAL_OVERDUE].evidence["products"]) == 2
    bureau(account, T + 2 * DAY, 0, status="settled", product="jiebei")
    hold = account.state.holds[EXTERNAL_OVERDUE]
    assert [p["product"] for p in hold.evidence["products"]] == ["mybank"]
    assert hold.since == T  # refreshed, not re-placed
    bureau(account, T + 3 * DAY, 0, status="settled", product="mybank")
    assert account.holds() == {CURE_PROBATION}


def test_a_growing_record_crosses_the_threshold(account):
    bureau(account, T, 29)
    bureau(account, T + DAY, 30)
    assert account.holds() == {EXTERNAL_OVERDUE}
    assert account.state.holds[EXTERNAL_OVERDUE].since == T + DAY


def test_a_new_bureau_overdue_during_probation_restarts_it(account):
    bureau(account, T, 45)
    bureau(account, T + DAY, 0, status="settled")
    bureau(account, T + 30 * DAY, 5, product="mybank")  # below threshold, but a new overdue
    cure = account.state.holds[CURE_PROBATION]
    assert cure.releases_at == T + 30 * DAY + 90 * DAY
    assert EXTERNAL_OVERDUE not in account.holds()


# --- score_below_threshold ----------------------------------------------------------------------


def test_599_places_the_hold(account):
    account.send("score_update", T, score=599,
                 dimensions={"compliance": 40, "behaviour": 90, "identity": 20, "assets": 70})
    hold = account.state.holds[SCORE_BELOW_THRESHOLD]
    assert hold.evidence["score"] == 599 and hold.evidence["threshold"] == 600
    assert [d["dimension"] for d in hold.evidence["weakest_dimensions"]] == ["identity",
                                                                             "compliance"]
    assert account.status() == "frozen"


def test_600_does_not(account):
    account.score(T, 600)
    assert account.holds() == set()


def test_a_later_600_releases(account):
    account.score(T, 599)
    account.score(T + DAY, 600)
    assert account.holds() == set()
    released = account.of_kind(E.HOLD_RELEASED, SCORE_BELOW_THRESHOLD)
    assert released[0].data["path"] == "score_recovered"
    assert account.authorize(T + DAY).approved


def test_599_again_keeps_it_and_a_later_drop_places_it_again(account):
    account.score(T, 550)
    account.score(T + DAY, 599)
    hold = account.state.holds[SCORE_BELOW_THRESHOLD]
    assert hold.since == T and hold.evidence["score"] == 599
    account.score(T + 2 * DAY, 600)
    account.score(T + 3 * DAY, 599)
    assert account.state.holds[SCORE_BELOW_THRESHOLD].since == T + 3 * DAY
    assert len(account.of_kind(E.HOLD_PLACED, SCORE_BELOW_THRESHOLD)) == 2


def test_hysteresis_with_a_stricter_release(world):
    world.policy = parse_policy_text(
        default_policy_text().replace("release_at = 600", "release_at = 620"))
    account = world.account()
    account.score(T, 590)
    account.score(T + DAY, 610)  # above threshold, below release_at: held
    assert account.holds() == {SCORE_BELOW_THRESHOLD}
    account.score(T + 2 * DAY, 620)
    assert account.holds() == set()
    account.score(T + 3 * DAY, 610)  # not held, at/above threshold: no hold
    assert account.holds() == set()


def test_repeat_probation_after_an_outside_overdue_looks_at_its_own_start(account):
    """Two line overdues close together long ago do not make a later outside one a repeat."""
    def line_overdue(bought, repaid):
        account.purchase(bought, "100.00")
        account.repay(repaid, format_fen(account.owed_fen(repaid)))

    line_overdue(T, local(2026, 2, 12, 10))  # overdue from 2026-02-10
    account.advance(local(2026, 5, 14))
    line_overdue(local(2026, 5, 20), local(2026, 7, 12, 10))  # overdue from 2026-07-10
    assert account.state.holds[CURE_PROBATION].evidence["probation_days"] == 180
    account.advance(local(2027, 1, 10))
    assert account.holds() == set()

    bureau(account, local(2027, 10, 1), 40)  # 15 months after the last line overdue
    bureau(account, local(2027, 10, 5), 0, status="settled")
    cure = account.state.holds[CURE_PROBATION]
    assert cure.evidence["probation_days"] == 90 and cure.evidence["repeat"] is False


def test_an_outside_overdue_soon_after_a_line_overdue_is_a_repeat(account):
    account.purchase(T, "100.00")
    account.repay(local(2026, 2, 12, 10), format_fen(account.owed_fen(local(2026, 2, 12, 10))))
    account.advance(local(2026, 6, 1))
    bureau(account, local(2026, 8, 1), 40)
    bureau(account, local(2026, 8, 20), 0, status="settled")
    cure = account.state.holds[CURE_PROBATION]
    assert cure.evidence["probation_days"] == 180
    assert cure.releases_at == local(2026, 8, 20) + 180 * DAY

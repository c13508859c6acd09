"""Scoped holds: maintenance windows, migration campaigns, and policy sweeps."""

from __future__ import annotations

import datetime as dt

from builders import DAY, FIRST_DUE_DAY, HOUR, MINUTE, T0, local, midnight
from jiefeng.domain import effects as E
from jiefeng.domain.holds import MAINTENANCE, MIGRATION, OVERDUE, POLICY_TIGHTENING

S = T0 + 10 * DAY  # 2026-01-15 10:00
OVERDUE_AT = midnight(FIRST_DUE_DAY + DAY)


def window(world, start, end, known=None, window_id="w1", **fields):
    return world.command("maintenance_scheduled", known or start - DAY, window_id=window_id,
                         start=start.isoformat(), end=end.isoformat(), **fields)


# --- maintenance ------------------------------------------------------------------------------


def test_maintenance_covers_every_account_during_the_window(world):
    a1 = world.account("A1", segment="mass")
    a2 = world.account("A2", segment="affluent")
    event = window(world, S, S + 2 * HOUR)
    for account in (a1, a2):
        assert account.holds(S - MINUTE) == set()
        assert account.holds(S) == {MAINTENANCE}
        assert account.holds(S + 2 * HOUR - MINUTE) == {MAINTENANCE}
        assert account.holds(S + 2 * HOUR) == set()
        assert account.status(S + HOUR) == "frozen"
    hold = a1.hold(MAINTENANCE, S + HOUR)
    assert hold.since == S and hold.releases_at == S + 2 * HOUR
    assert hold.placed_by == event.event_id and hold.placed_by_actor == "ops-1"
    assert hold.evidence["window_id"] == "w1"
    assert a1.state.holds == {}  # scoped holds are derived, never stored on the account


def test_a_segment_window_covers_only_that_segment(world):
    mass = world.account("A1", segment="mass")
    affluent = world.account("A2", segment="affluent")
    plain = world.account("A3")
    window(world, S, S + 2 * HOUR, segment="mass")
    assert mass.holds(S + HOUR) == {MAINTENANCE}
    assert affluent.holds(S + HOUR) == set()
    assert plain.holds(S + HOUR) == set()


def test_purchases_are_declined_and_repayments_applied_during_maintenance(world):
    account = world.account()
    account.purchase(S - DAY, "50.00")
    window(world, S, S + 2 * HOUR)
    decision = account.authorize(S + HOUR)
    assert not decision.approved and decision.codes == [MAINTENANCE]
    assert account.purchase(S + HOUR, "10.00").data["codes"] == [MAINTENANCE]
    account.repay(S + HOUR, "50.00")
    assert account.owed_fen() == 0
    assert account.purchase(S + 2 * HOUR, "10.00").data["approved"]


def test_a_window_announced_late_covers_from_when_it_was_known(world):
    account = world.account()
    window(world, S, S + 4 * HOUR, known=S + HOUR)
    assert account.holds(S + 30 * MINUTE) == set()
    assert account.hold(MAINTENANCE, S + 2 * HOUR).since == S + HOUR


def test_a_cancelled_window_no_longer_applies_after_cancellation(world):
    account = world.account()
    window(world, S, S + 4 * HOUR)
    world.command("maintenance_cancelled", S + HOUR, window_id="w1")
    assert account.holds(S + HOUR - MINUTE) == {MAINTENANCE}
    assert account.holds(S + HOUR) == set()
    assert account.holds(S + 3 * HOUR) == set()


def overdue_candidate(world, **fields):
    account = world.account(**fields)
    account.purchase(T0 + 5 * DAY, "600.00")  # billed 2026-02-01, due 2026-02-09
    return account


def test_a_due_date_inside_maintenance_moves_past_it(world):
    account = overdue_candidate(world)
    window(world, local(2026, 2, 9, 10), local(2026, 2, 9, 14))
    assert account.holds(OVERDUE_AT + 12 * HOUR) == set()
    state = account.peek(OVERDUE_AT + 12 * HOUR)
    assert state.statements[0].due_date == dt.date(2026, 2, 10)
    assert state.ledger.late_fee_units == 0
    # Still unpaid once the moved due date has passed: overdue from then.
    account.advance(OVERDUE_AT + DAY)
    assert account.holds() == {OVERDUE}
    assert account.state.holds[OVERDUE].since == OVERDUE_AT + DAY


def test_a_window_running_past_midnight_moves_the_due_date_past_its_last_day(world):
    account = overdue_candidate(world)
    window(world, local(2026, 2, 9, 22), local(2026, 2, 11, 2))
    # Moved once, straight to the first day the window does not touch.
    assert account.peek(OVERDUE_AT + HOUR).statements[0].due_date == dt.date(2026, 2, 12)
    account.advance(local(2026, 2, 12, 12))
    assert account.state.statements[0].due_date == dt.date(2026, 2, 12)
    assert account.holds() == set()
    assert account.holds(local(2026, 2, 13)) == {OVERDUE}


def test_a_window_ending_at_midnight_moves_the_due_date_to_that_day(world):
    account = overdue_candidate(world)
    window(world, local(2026, 2, 9, 22), local(2026, 2, 11))
    assert account.peek(OVERDUE_AT + HOUR).statements[0].due_date == dt.date(2026, 2, 11)
    assert account.holds(local(2026, 2, 11, 23)) == set()
    assert account.holds(local(2026, 2, 12)) == {OVERDUE}


def test_a_window_for_another_segment_does_not_move_the_due_date(world):
    account = overdue_candidate(world, segment="mass")
    window(world, local(2026, 2, 9, 10), local(2026, 2, 9, 14), segment="affluent")
    assert account.holds(OVERDUE_AT) == {OVERDUE}


def test_a_window_cancelled_before_the_due_date_does_not_move_it(world):
    account = overdue_candidate(world)
    window(world, local(2026, 2, 9, 10), local(2026, 2, 9, 14))
    world.command("maintenance_cancelled", local(2026, 2, 8), window_id="w1")
    assert account.holds(local(2026, 2, 9, 11)) == set()
    assert account.holds(OVERDUE_AT) == {OVERDUE}


def test_a_window_the_day_after_the_due_date_does_not_move_it(world):
    account = overdue_candidate(world)
    window(world, OVERDUE_AT + 10 * HOUR, OVERDUE_AT + 12 * HOUR)
    assert account.holds(OVERDUE_AT) == {OVERDUE}


# --- migration --------------------------------------------------------------------------------


def test_a_migration_covers_the_listed_accounts_only(world):
    a1, a2, a3 = (world.account(f"A{i}") for i in (1, 2, 3))
    started = world.command("migration_started", S, campaign_id="c1", account_ids=["A1", "A2"])
    for account in (a1, a2):
        assert account.holds(S - MINUTE) == set()
        assert account.holds(S) == {MIGRATION}
        hold = account.hold(MIGRATION, S + 30 * DAY)
        assert hold.since == S and hold.placed_by == started.event_id
        assert hold.releases_at is None
    assert a3.holds(S + HOUR) == set()
    assert not a1.authorize(S + HOUR).approved and a3.authorize(S + HOUR).approved


def test_completing_one_account_lifts_it_for_that_one(world):
    a1, a2 = world.account("A1"), world.account("A2")
    world.command("migration_started", S, campaign_id="c1", account_ids=["A1", "A2"])
    world.command("migration_completed", S + DAY, campaign_id="c1", account_ids=["A1"])
    assert a1.holds(S + DAY - MINUTE) == {MIGRATION}
    assert a1.holds(S + DAY) == set()
    assert a2.holds(S + 5 * DAY) == {MIGRATION}
    world.command("migration_completed", S + 6 * DAY, campaign_id="c1")
    assert a2.holds(S + 6 * DAY) == set()
    assert a1.holds(S + 6 * DAY) == set()


def test_completing_without_account_ids_lifts_all(world):
    accounts = [world.account(f"A{i}", segment="mass") for i in range(3)]
    other = world.account("B1", segment="affluent")
    world.command("migration_started", S, campaign_id="c1", segment="mass")
    assert all(a.holds(S + HOUR) == {MIGRATION} for a in accounts)
    assert other.holds(S + HOUR) == set()
    world.command("migration_completed", S + 2 * DAY, campaign_id="c1")
    assert all(a.holds(S + 2 * DAY) == set() for a in accounts)


def test_a_completion_naming_outsiders_is_ignored(world):
    a1 = world.account("A1")
    world.command("migration_started", S, campaign_id="c1", account_ids=["A1"])
    world.command("migration_completed", S + DAY, campaign_id="c1", account_ids=["A1", "Z9"])
    assert a1.holds(S + 2 * DAY) == {MIGRATION}


def test_a_due_date_inside_a_migration_moves_past_it(world):
    account = overdue_candidate(world)
    world.command("migration_started", local(2026, 2, 8, 20), campaign_id="c1",
                  account_ids=["A1"])
    account.advance(local(2026, 2, 11, 12))
    assert account.holds() == {MIGRATION}
    assert OVERDUE not in account.state.holds
    world.command("migration_completed", local(2026, 2, 12, 10), campaign_id="c1")
    assert account.holds(local(2026, 2, 13, 12)) == set()
    assert account.peek(local(2026, 2, 13, 12)).statements[0].due_date == dt.date(2026, 2, 13)
    assert account.holds(local(2026, 2, 14)) == {OVERDUE}


def test_repaying_during_a_migration_prevents_the_overdue(world):
    account = overdue_candidate(world)
    world.command("migration_started", local(2026, 2, 8, 20), campaign_id="c1",
                  account_ids=["A1"])
    account.repay(local(2026, 2, 11, 12), "600.00")
    world.command("migration_completed", local(2026, 2, 12, 10), campaign_id="c1")
    assert account.holds(local(2026, 3, 1)) == set()


# --- policy sweeps ------------------------------------------------------------------------------


def swept(world, at=S, criteria="score < 650", reopen="score >= 700"):
    matching = world.account("A1")
    matching.score(T0 + HOUR, 620)
    other = world.account("A2")
    other.score(T0 + HOUR, 700)
    never_scored = world.account("A3")
    sweep = world.command("policy_sweep", at, sweep_id="s1", criteria=criteria,
                          reopen_criteria=reopen)
    return matching, other, never_scored, sweep


def test_a_sweep_closes_matching_lines_at_the_sweep_time(world):
    matching, other, never_scored, sweep = swept(world)
    assert matching.holds(S - MINUTE) == set()
    assert matching.status(S) == "closed"
    matching.advance(S + HOUR)
    hold = matching.state.holds[POLICY_TIGHTENING]
    assert hold.since == S and hold.placed_by == sweep.event_id
    assert hold.placed_by_actor == "ops-1"
    assert hold.evidence["matched"] == {"score": 620}
    assert hold.evidence["earliest_reopen_at"] == S + 90 * DAY
    assert other.holds(S + HOUR) == set()
    assert never_scored.holds(S + HOUR) == set()  # NULL score: UNKNOWN is not a match


def test_features_are_read_at_the_sweep_time(world):
    matching, *_ = swept(world)
    matching.score(S - HOUR, 700)  # recovered just before the sweep
    assert matching.holds(S + HOUR) == set()


def test_a_sweep_before_opening_does_not_apply(world):
    world.command("policy_sweep", S, sweep_id="s1", criteria="account_age_days >= 0",
                  reopen_criteria="score >= 700")
    late = world.account("A9", opened_at=S + DAY)
    assert late.holds(S + 10 * DAY) == set()


def test_not_reopened_at_89_days_even_when_the_criteria_hold(world):
    matching, *_ = swept(world)
    matching.score(S + 89 * DAY, 720)
    assert matching.status() == "closed"
    assert matching.status(S + 90 * DAY - MINUTE) == "closed"
    # From day 90 the reopen criteria are checked as time passes.
    assert matching.status(S + 90 * DAY) == "active"
    matching.advance(S + 90 * DAY)
    released = matching.of_kind(E.HOLD_RELEASED, POLICY_TIGHTENING)
    assert released[0].data["path"] == "reopen_criteria_met"
    assert released[0].cause == "clock:reopen"


def test_reopened_after_90_days_when_a_score_update_makes_it_true(world):
    matching, *_ = swept(world)
    matching.score(S + 95 * DAY, 690)
    assert matching.status() == "closed"
    matching.score(S + 100 * DAY, 700)
    assert matching.status() == "active"
    released = matching.of_kind(E.HOLD_RELEASED, POLICY_TIGHTENING)
    assert released[0].at == S + 100 * DAY
    assert released[0].cause == matching.last_event_id()
    # The sweep that closed it does not close it again.
    assert matching.holds(S + 200 * DAY) == set()


def test_an_approved_appeal_reopens_a_swept_line(world):
    matching, *_ = swept(world)
    matching.send("appeal_submitted", S + DAY, appeal_id="ap", hold_code=POLICY_TIGHTENING)
    matching.send("appeal_decided", S + 2 * DAY, appeal_id="ap", decision="approve",
                  account_id="A1")
    assert matching.status() == "active"


def test_the_quick_bounds_answer_as_every_window_and_campaign_would() -> None:
    """Scopes answer most maintenance and migration questions from bounds computed once; the
    answers must be those of asking every window and campaign."""
    import random

    from jiefeng.domain import events as ev
    from jiefeng.domain.scopes import Scopes, apply_scope_command

    def command(n: int, type_: str, at: dt.datetime, **fields) -> object:
        return ev.parse_event({"event_id": f"op-{n}", "type": type_, "at": at.isoformat(),
                               "actor": "ops.test", **fields})

    scopes = Scopes()
    commands = [
        command(1, "maintenance_scheduled", T0, window_id="all", start=(T0 + DAY).isoformat(),
                end=(T0 + DAY + 4 * HOUR).isoformat()),
        command(2, "maintenance_scheduled", T0, window_id="young", segment="young",
                start=(T0 + 30 * DAY).isoformat(), end=(T0 + 31 * DAY).isoformat()),
        command(3, "maintenance_cancelled", T0 + 30 * DAY + HOUR, window_id="young"),
        command(4, "migration_started", T0 + 10 * DAY, campaign_id="listed",
                account_ids=["A1", "A2"]),
        command(5, "migration_started", T0 + 20 * DAY, campaign_id="legacy", segment="legacy"),
        command(6, "migration_completed", T0 + 40 * DAY, campaign_id="listed",
                account_ids=["A1"]),
        command(7, "migration_completed", T0 + 50 * DAY, campaign_id="legacy"),
    ]
    for item in commands:
        scopes = apply_scope_command(scopes, item)
    rng = random.Random(5)
    for _ in range(3_000):
        at = T0 + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 60))
        account = rng.choice(["A1", "A2", "A3", "A4"])
        segment = rng.choice([None, "young", "legacy", "standard"])
        windows = [w for w in scopes.windows.values() if w.covers(at, segment)]
        campaigns = [c for c in scopes.campaigns.values() if c.covers(at, account, segment)]
        assert scopes.in_maintenance(at, segment) == bool(windows)
        assert scopes.maintenance_at(at, segment) == windows
        assert scopes.migrating(at, account, segment) == bool(campaigns)
        assert scopes.migrations_at(at, account, segment) == campaigns
    assert any(scopes.in_maintenance(T0 + DAY + HOUR, s) for s in (None, "young"))
    assert scopes.migrating(T0 + 25 * DAY, "A3", "legacy")

"""The state's invariants (jiefeng.domain.invariants): a broken state is caught, the checks
run after every event in the tests, and a snapshot that breaks them is not trusted."""

from __future__ import annotations

import copy

import pytest

from builders import DAY, MINUTE, T0, World
from jiefeng.domain import holds as H
from jiefeng.domain import invariants
from jiefeng.domain.invariants import InvariantViolation, check_invariants


def _released_at_placement(hold):
    """The hold as a broken fold could leave it (its constructor refuses this shape)."""
    broken = copy.copy(hold)
    object.__setattr__(broken, "releases_at", hold.since)
    return broken


def _locked(world: World):
    account = world.account()
    account.wrong_password(T0 + MINUTE, times=5)
    assert H.PASSWORD_LOCKED in account.state.holds
    return account


def test_the_tests_run_with_invariants_on() -> None:
    assert invariants.ENABLED


def test_a_hold_past_its_release_time_is_caught(world: World) -> None:
    account = _locked(world)
    state = account.state.clone()
    hold = state.holds[H.PASSWORD_LOCKED]
    state.clock = hold.releases_at + MINUTE  # time moved without the release running
    with pytest.raises(InvariantViolation, match="should have lifted"):
        check_invariants(state)


def test_a_release_before_placement_is_caught(world: World) -> None:
    account = _locked(world)
    state = account.state.clone()
    hold = state.holds[H.PASSWORD_LOCKED]
    state.holds[H.PASSWORD_LOCKED] = _released_at_placement(hold)
    with pytest.raises(InvariantViolation, match="not after its placement"):
        check_invariants(state)


def test_a_pending_appeal_for_a_hold_not_held_is_caught(world: World) -> None:
    account = world.account()
    account.purchase(T0 + 20 * MINUTE, "500.00", kind="transfer")
    account.send("appeal_submitted", T0 + DAY, appeal_id="ap-1",
                 hold_code=H.CASH_OUT_SUSPECTED, statement="rent")
    state = account.state.clone()
    del state.holds[H.CASH_OUT_SUSPECTED]
    with pytest.raises(InvariantViolation, match="pending"):
        check_invariants(state)


def test_a_statement_paid_beyond_what_it_billed_is_caught(world: World) -> None:
    account = world.account()
    account.purchase(T0 + DAY, "100.00")
    account.advance(T0 + 30 * DAY)  # the Feb 1 statement is issued
    state = account.state.clone()
    statement = state.ledger.statements[0]
    statement.paid_principal_fen = statement.principal_fen + 1
    with pytest.raises(InvariantViolation, match="principal paid"):
        check_invariants(state)


def test_a_fen_lost_from_the_books_is_caught(world: World) -> None:
    """Owed less credit must equal everything charged (plus accrued) less everything credited:
    a fen that vanishes from what is owed, with no payment for it, breaks the books."""
    account = world.account()
    account.purchase(T0 + DAY, "100.00")
    state = account.state.clone()
    state.ledger.unbilled_fen -= 1
    with pytest.raises(InvariantViolation, match="charged 10000"):
        check_invariants(state)


def test_a_payment_credited_twice_is_caught(world: World) -> None:
    account = world.account()
    account.purchase(T0 + DAY, "100.00")
    account.repay(T0 + 2 * DAY, "40.00")
    state = account.state.clone()
    state.ledger.credited_fen += 4_000
    with pytest.raises(InvariantViolation, match="credited 8000"):
        check_invariants(state)


def _books_fen(ledger) -> int:
    return (ledger.charged_fen + ledger.accrued_fees_fen + ledger.accrued_interest_fen
            - ledger.credited_fen)


def test_the_books_balance_through_interest_fees_installments_refunds_and_credit() -> None:
    """Revolving interest paid before its bill, a late fee, an installment fee billed month by
    month, a refund into the plan and an overpayment: the lifetime totals move with every
    fen (the invariants also run after each event here)."""
    from builders import local

    world = World()
    account = world.account(credit_limit="20000.00")
    account.purchase(T0 + DAY, "1000.00")
    account.purchase(T0 + 2 * DAY, "1200.00")
    plan_purchase = account.last_event_id()
    account.send("installment_plan_created", T0 + 3 * DAY, plan_id="P1",
                 purchase_event_id=plan_purchase, months=3)
    account.repay(local(2026, 2, 8, 10), "110.00")  # the minimum of the Feb 1 statement
    account.advance(local(2026, 3, 20, 10))  # revolving interest accrues, a late fee too
    ledger = account.state.ledger
    assert ledger.charged_fen > 220_000  # purchases, then interest and the plan's fee
    account.send("refund", local(2026, 3, 21, 10), amount="300.00",
                 purchase_event_id=plan_purchase)
    account.repay(local(2026, 3, 22, 10), "5000.00")  # everything, and a credit
    ledger = account.state.ledger
    assert ledger.credit_balance_fen > 0
    assert ledger.credited_fen == 11_000 + 30_000 + 500_000
    assert ledger.total_owed_fen - ledger.credit_balance_fen == _books_fen(ledger)
    assert -ledger.credit_balance_fen == ledger.charged_fen - ledger.credited_fen


def test_a_window_out_of_time_order_is_caught(world: World) -> None:
    account = world.account()
    account.purchase(T0 + MINUTE, "10.00")
    account.purchase(T0 + 2 * MINUTE, "11.00")
    account.repay(T0 + 3 * MINUTE, "1.00")
    account.repay(T0 + 4 * MINUTE, "2.00")
    state = account.state.clone()
    state.recent_repayments.reverse()
    with pytest.raises(InvariantViolation, match="recent_repayments"):
        check_invariants(state)


def test_remembered_purchases_out_of_time_order_are_caught(world: World) -> None:
    """A snapshot whose remembered purchases lost their order (or their instants) is not
    trusted: the 90-day window and refunds read them by time."""
    account = world.account()
    account.purchase(T0 + MINUTE, "10.00")
    account.purchase(T0 + 2 * MINUTE, "11.00")
    state = account.state.clone()
    state.purchases._at_us.reverse()
    with pytest.raises(InvariantViolation, match="remembered purchases: instants out of step"):
        check_invariants(state)
    state = account.state.clone()
    state.purchases._at_us.pop()
    with pytest.raises(InvariantViolation, match="2 purchases but 1 instants"):
        check_invariants(state)


def test_a_broken_snapshot_is_not_trusted(tmp_path) -> None:
    """A stored snapshot whose state breaks an invariant stops the read, naming the account,
    instead of serving a wrong answer."""
    import datetime as dt

    from jiefeng.service.engine import Engine
    from jiefeng.store import schema as t
    from jiefeng.store.sql import SqlStore, decode_state, encode_state

    engine = Engine(SqlStore(str(tmp_path / "s.db")),
                    now=lambda: dt.datetime(2026, 1, 6, 12, tzinfo=dt.UTC))
    events = [{"event_id": "o", "type": "account_opened", "at": T0.isoformat(),
               "account_id": "S1", "credit_limit": "100.00", "id_expires_on": "2035-01-01"}]
    events += [{"event_id": f"p{i}", "type": "password_attempt", "account_id": "S1",
                "at": (T0 + (i + 1) * MINUTE).isoformat(), "ok": False} for i in range(5)]
    assert engine.ingest_events(events).accepted == 6
    engine.replay()  # writes a snapshot for every account
    with engine.store.transaction() as connection:
        blob = connection.execute(t.accounts.select()).first().snapshot
        state = decode_state(blob)
        hold = state.holds[H.PASSWORD_LOCKED]
        state.holds[H.PASSWORD_LOCKED] = _released_at_placement(hold)
        connection.execute(t.accounts.update().values(snapshot=encode_state(state)))
    engine.cache.clear()
    with pytest.raises(InvariantViolation, match="S1"):
        engine.explain("S1")


def test_every_release_path_of_every_cause_is_known() -> None:
    for code, paths in H.RELEASE_PATHS.items():
        assert paths and set(paths) <= {H.RELEASE_TIME, H.RELEASE_CONDITION, H.RELEASE_EVENT,
                                        H.RELEASE_REVIEW}, code
    assert set(H.RELEASE_PATHS) == set(H.HOLD_CODES)

"""The deadline floor (`AccountState.deadline_floor`, `core.advance_to`): an advance before the
next deadline skips asking every cause for it again. It must never change a decision: a
deadline it hid would never fire."""

from __future__ import annotations

import pickle

import pytest

from builders import DAY, HOUR, MINUTE, T0, World, synthetic_by_account
from jiefeng import native
from jiefeng.batch.limits import MIN_ACCOUNTS
from jiefeng.batch.synthetic import MIN_MONTHS
from jiefeng.domain import core, invariants, rules
from jiefeng.domain import holds as H
from jiefeng.domain.invariants import InvariantViolation, check_invariants
from jiefeng.domain.scopes import Scopes
from jiefeng.policy.schema import default_policy

POLICY = default_policy()
# These replace a function of the core or the rules to count or change its calls: calls
# between compiled modules are bound when compiled and never see the replacement.
patches_the_core = pytest.mark.skipif(
    bool({"jiefeng.domain.core", "jiefeng.domain.rules"} & set(native.compiled_modules())),
    reason="replaces a function that compiled modules call directly (JIEFENG_NATIVE=0 runs it)")


def _portfolio(accounts: int = MIN_ACCOUNTS,
               months: int = MIN_MONTHS) -> tuple[Scopes, dict[str, list]]:
    return synthetic_by_account(accounts, months, seed=5)


def _without_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every advance asks for the next deadline again, as before the floor existed."""
    run_deadlines = core._run_deadlines

    def forgetting(state, *args):
        run_deadlines(state, *args)
        state.deadline_floor = None

    monkeypatch.setattr(core, "_run_deadlines", forgetting)


@patches_the_core
def test_the_floor_changes_no_decision_on_a_portfolio(monkeypatch: pytest.MonkeyPatch) -> None:
    scopes, by_account = _portfolio()
    until = max(e.at for events in by_account.values() for e in events) + 400 * DAY
    with_floor = {a: core.fold(a, events, POLICY, scopes, until=until)
                  for a, events in by_account.items()}
    _without_floor(monkeypatch)
    for account_id, events in by_account.items():
        state, effects = core.fold(account_id, events, POLICY, scopes, until=until)
        assert (state, effects) == with_floor[account_id], account_id
    # Enough happened for the comparison to mean something: statements, holds, releases.
    kinds = {effect.kind for _, effects in with_floor.values() for effect in effects}
    assert {"statement_issued", "hold_placed", "hold_released"} <= kinds


@patches_the_core
def test_most_advances_skip_the_deadline_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    scopes, by_account = _portfolio()
    events = sum(len(v) for v in by_account.values())
    calls = 0
    next_deadline = rules.next_deadline

    def counted(*args):
        nonlocal calls
        calls += 1
        return next_deadline(*args)

    monkeypatch.setattr(rules, "next_deadline", counted)
    monkeypatch.setattr(invariants, "ENABLED", False)  # its check asks for the deadline too
    for account_id, account_events in by_account.items():
        core.fold(account_id, account_events, POLICY, scopes)
    # Without the floor it is asked at least once per event; deadlines themselves (statements,
    # judgements, releases) still ask for the next one.
    assert calls < events / 2


def test_a_floor_that_hides_a_deadline_is_caught(world: World) -> None:
    account = world.account()
    account.wrong_password(T0 + MINUTE, times=5)
    state = account.state.clone()
    lifts_at = state.holds[H.PASSWORD_LOCKED].releases_at
    state.deadline_floor = (lifts_at + MINUTE, POLICY, world.scopes)
    with pytest.raises(InvariantViolation, match="deadline floor"):
        check_invariants(state)
    state.deadline_floor = (None, POLICY, world.scopes)  # "no deadline at all": also wrong
    with pytest.raises(InvariantViolation, match="deadline floor"):
        check_invariants(state)
    state.deadline_floor = (lifts_at, POLICY, world.scopes)
    check_invariants(state)


def test_a_hold_placed_after_the_floor_still_lifts_on_time(world: World) -> None:
    account = world.account()
    account.advance(T0 + HOUR)  # a floor: the first statement, weeks ahead
    assert account.state.deadline_floor is not None
    account.wrong_password(T0 + 2 * HOUR, times=5)  # a lock of hours, before that statement
    lifts_at = account.state.holds[H.PASSWORD_LOCKED].releases_at
    assert H.PASSWORD_LOCKED in account.holds(lifts_at - MINUTE)
    assert H.PASSWORD_LOCKED not in account.holds(lifts_at)


def test_new_scopes_are_not_judged_by_an_old_floor(world: World) -> None:
    account = world.account()
    account.score(T0 + HOUR, 600)
    account.advance(T0 + 2 * HOUR)
    floor_at = account.state.deadline_floor[0]
    sweep_at = T0 + 3 * HOUR
    assert floor_at > sweep_at  # the floor knew of no sweep
    world.command("policy_sweep", sweep_at, sweep_id="s1", criteria="score < 650",
                  reopen_criteria="score >= 700")
    assert H.POLICY_TIGHTENING in account.holds(sweep_at + MINUTE)


def test_a_floor_is_never_pickled_nor_compared(world: World) -> None:
    account = world.account()
    account.advance(T0 + HOUR)
    state = account.state
    assert state.deadline_floor is not None
    copied = pickle.loads(pickle.dumps(state, protocol=5))
    assert copied.deadline_floor is None
    assert copied == state
    assert b"Policy" not in pickle.dumps(state, protocol=5)
    assert state.clone().deadline_floor == state.deadline_floor


def test_no_floor_under_policy_activations() -> None:
    from jiefeng.domain.scopes import PolicyActivation

    tight = default_policy()
    scopes = Scopes(policy_activations=[
        PolicyActivation(T0 + 10 * DAY, tight.version, "0" * 64, "pa-1", "ops-1", tight)])
    _, by_account = _portfolio()
    account_id, events = next(iter(by_account.items()))
    state, _ = core.fold(account_id, events, POLICY, scopes)
    assert state.deadline_floor is None

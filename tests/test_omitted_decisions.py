"""A fold whose caller never reads purchase decisions (`core.fold(..., decisions=False)`: a
backtest's runs, a state as of a moment, the features export) builds none. It must decide and
apply every purchase as the full fold does: the same state, the same other effects."""

from __future__ import annotations

import pickle
from collections import Counter

from builders import DAY, synthetic_by_account
from jiefeng.batch.synthetic import MIN_MONTHS
from jiefeng.domain import core
from jiefeng.domain.effects import PURCHASE_DECIDED
from jiefeng.domain.scopes import Scopes
from jiefeng.policy.schema import default_policy

POLICY = default_policy()


def _portfolio() -> tuple[Scopes, dict[str, list]]:
    return synthetic_by_account(120, MIN_MONTHS + 2, seed=17)


def test_without_decisions_the_fold_gives_the_same_state_and_every_other_effect() -> None:
    scopes, by_account = _portfolio()
    until = max(e.at for events in by_account.values() for e in events) + 200 * DAY
    outcomes: Counter[str] = Counter()
    for account_id, events in by_account.items():
        full_state, full_effects = core.fold(account_id, events, POLICY, scopes, until=until)
        state, effects = core.fold(account_id, events, POLICY, scopes, until=until,
                                   decisions=False)
        assert state == full_state, account_id
        assert effects == [e for e in full_effects if e.kind != PURCHASE_DECIDED], account_id
        outcomes.update("approved" if e.data["approved"] else "declined"
                        for e in full_effects if e.kind == PURCHASE_DECIDED)
    # The portfolio decides both ways, so a decision that moved the state would show above.
    assert outcomes["approved"] > 100 and outcomes["declined"] > 5, outcomes


def test_the_returned_state_decides_as_usual_when_folded_further() -> None:
    scopes, by_account = _portfolio()
    account_id, events = next((a, evs) for a, evs in by_account.items()
                              if sum(e.type == "purchase" for e in evs) > 3)
    purchases = [i for i, e in enumerate(events) if e.type == "purchase"]
    cut = purchases[-1]  # the last purchase is folded in a second step
    state, effects = core.fold(account_id, events[:cut], POLICY, scopes, decisions=False)
    assert not any(e.kind == PURCHASE_DECIDED for e in effects)
    assert state.omits_decisions is False
    later: list = []
    for event in events[cut:]:
        core.apply_event(state, event, POLICY, scopes, later)
    assert [e.cause for e in later if e.kind == PURCHASE_DECIDED] == [events[cut].event_id]


def test_the_setting_is_never_pickled_nor_compared() -> None:
    scopes, by_account = _portfolio()
    account_id, events = next(iter(by_account.items()))
    state, _ = core.fold(account_id, events, POLICY, scopes)
    state.omits_decisions = True
    restored = pickle.loads(pickle.dumps(state))
    assert restored.omits_decisions is False
    assert restored == state
    assert b"omits_decisions" not in pickle.dumps(state)

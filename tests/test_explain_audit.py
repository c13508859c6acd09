"""The outside audit of the explanations (issue 9, hardening items 27, 28 and 29).

Every state is built the real way (events through `parse_event` and `fold`, operator commands
through the scopes); each test names the audit finding it pins.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jiefeng.domain import holds as H
from jiefeng.domain.core import fold
from jiefeng.domain.scopes import PolicyActivation, Scopes
from jiefeng.explain import render as R
from jiefeng.explain.structured import build_explanation
from jiefeng.policy.schema import Policy, default_policy
from test_explain import (
    ACCOUNT,
    DAY,
    T0,
    Events,
    hold_of,
)


def policy_with(version: str, **sections: dict[str, Any]) -> Policy:
    from jiefeng.policy.schema import parse_policy

    document = default_policy().model_dump()
    document["version"] = version
    for name, values in sections.items():
        document[name] = {**document[name], **values}
    return parse_policy(document)


def texts(explanation: dict[str, Any]) -> dict[str, str]:
    return {lang: R.render_text(explanation, lang) for lang in R.SUPPORTED_LANGS}


# --- item 27: a score hold keeps the numbers it was placed under ------------------------------

OLD = policy_with("score-old", score={"threshold": 600, "release_at": 620})
NEW = policy_with("score-new", score={"threshold": 650, "release_at": 680})
SWITCH = T0 + 10 * DAY  # the new policy is active from here


def _switched_scopes() -> Scopes:
    activation = PolicyActivation(SWITCH, NEW.version, "0" * 64, "pa-1", "ops-1", NEW)
    return Scopes(policy_activations=[activation])


def _score_life(*scores: tuple[dt.timedelta, int]) -> list[Any]:
    e = Events()
    events = [e.opened()]
    events += [e.account("score_update", T0 + offset, score=score,
                         dimensions={"compliance": 40, "behaviour": 70, "identity": 90,
                                     "assets": 35, "connections": 60})
               for offset, score in scores]
    return events


def test_a_score_hold_is_explained_with_the_numbers_it_was_placed_under() -> None:
    """Placed under threshold 600 / release 620; the policy then moves to 650 / 680 and a new
    low score refreshes the hold: evidence, release, steps and tip all say 600 and 620."""
    scopes = _switched_scopes()
    events = _score_life((DAY, 580), (SWITCH - T0 + DAY, 590))
    at = SWITCH + 2 * DAY
    state, _ = fold(ACCOUNT, events, OLD, scopes, until=at)
    explanation = build_explanation(state, at, OLD, scopes)
    assert explanation["policy_version"] == NEW.version  # the version in effect now
    hold = hold_of(explanation, H.SCORE_BELOW_THRESHOLD)
    assert hold["evidence"][0] == {"fact": "score", "value": 590, "threshold": 600}
    assert hold["release"][0] == {"path": "condition", "condition": "score_at_least",
                                  "required": 620, "current": 590}
    assert hold["steps"][0] == {"step": "improve_score", "required": 620}
    assert hold["counterfactual"] == {"if": "score_at_least", "value": 620}
    assert state.holds[H.SCORE_BELOW_THRESHOLD].evidence["policy_version"] == OLD.version
    for lang, text in texts(explanation).items():
        assert "680" not in text and "650" not in text, lang


def test_a_score_hold_is_released_under_the_numbers_it_was_placed_under() -> None:
    """The rule agrees with the explanation: 630 clears the hold placed under release 620,
    though the policy in effect now would ask 680."""
    scopes = _switched_scopes()
    events = _score_life((DAY, 580), (SWITCH - T0 + DAY, 630))
    state, _ = fold(ACCOUNT, events, OLD, scopes, until=SWITCH + 2 * DAY)
    assert H.SCORE_BELOW_THRESHOLD not in state.holds
    # A hold placed under the new policy uses the new numbers.
    events = _score_life((SWITCH - T0 + DAY, 640), (SWITCH - T0 + 2 * DAY, 670))
    state, _ = fold(ACCOUNT, events, OLD, scopes, until=SWITCH + 3 * DAY)
    hold = state.holds[H.SCORE_BELOW_THRESHOLD]
    assert (hold.evidence["threshold"], hold.evidence["release_at"]) == (650, 680)
    assert hold.evidence["policy_version"] == NEW.version


def test_a_score_hold_from_an_old_snapshot_without_a_policy_version_still_explains() -> None:
    """Holds folded before the version was recorded keep their threshold and release value."""
    events = _score_life((DAY, 580))
    state, _ = fold(ACCOUNT, events, OLD, Scopes(), until=T0 + 2 * DAY)
    hold = state.holds[H.SCORE_BELOW_THRESHOLD]
    evidence = {k: v for k, v in hold.evidence.items() if k != "policy_version"}
    state.holds[H.SCORE_BELOW_THRESHOLD] = H.Hold(hold.code, hold.since, hold.placed_by, evidence)
    explanation = build_explanation(state, T0 + 2 * DAY, NEW, Scopes())
    assert hold_of(explanation, H.SCORE_BELOW_THRESHOLD)["release"][0]["required"] == 620

"""The scenarios in tests/scenarios/*.yaml (see its README): one account's timeline and what
must hold at given times, readable and extendable without Python. Every hold code has one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from builders import Account, World, policy_with
from jiefeng.domain import holds as H
from jiefeng.explain.structured import build_explanation
from jiefeng.policy.schema import default_policy

SCENARIOS = sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert {"name", "timeline"} <= set(scenario), f"{path.name}: needs name and timeline"
    return scenario


def _time(value: Any) -> dt.datetime:
    # YAML reads an unquoted timestamp as a datetime already; a quoted one as text.
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    assert when.tzinfo is not None, f"{value}: give the UTC offset"
    return when


def _fields(raw: dict[str, Any]) -> dict[str, Any]:
    """YAML dates and timestamps back to the wire's text."""
    return {k: v.isoformat() if isinstance(v, dt.date | dt.datetime) else v
            for k, v in raw.items()}


def _check(account: Account, at: dt.datetime, expect: dict[str, Any], where: str) -> None:
    account.advance(at)
    if "holds" in expect:
        assert account.holds(at) == set(expect["holds"]), where
    if "status" in expect:
        assert account.status(at) == expect["status"], where
    for effect in expect.get("effects", []):
        assert any(e.kind == effect["kind"] and e.code == effect.get("code")
                   and e.at <= at for e in account.effects), f"{where}: no {effect}"
    if "primary_code" in expect or "plan_actions" in expect:
        explanation = build_explanation(account.peek(at), at, account.policy, account.scopes)
        if "primary_code" in expect:
            assert explanation["primary_code"] == expect["primary_code"], where
        if "plan_actions" in expect:
            actions = [a["action"] for a in (explanation["plan"] or {"actions": []})["actions"]]
            assert actions == expect["plan_actions"], where


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario(path: Path) -> None:
    scenario = _load(path)
    world = World(policy_with(default_policy(), **scenario.get("policy", {})))
    account = world.account("A1", opened_at=None)
    checked = 0
    for number, step in enumerate(scenario["timeline"], 1):
        at = _time(step["at"])
        where = f"{path.name}, step {number} at {at.isoformat()}"
        if "event" in step:
            fields = _fields(step["event"])
            kind = fields.pop("type")
            account.send(kind, at, **fields)
        elif "command" in step:
            fields = _fields(step["command"])
            kind = fields.pop("type")
            world.command(kind, at, **fields)
        elif "expect" in step:
            _check(account, at, step["expect"], where)
            checked += 1
        else:
            raise AssertionError(f"{where}: an entry needs event, command or expect")
    assert checked, f"{path.name}: expects nothing"


def test_every_hold_code_has_a_scenario() -> None:
    seen: set[str] = set()
    for path in SCENARIOS:
        for step in _load(path)["timeline"]:
            seen.update(step.get("expect", {}).get("holds", []))
    assert seen >= set(H.HOLD_CODES), sorted(set(H.HOLD_CODES) - seen)

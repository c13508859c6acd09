"""The JSON examples in the docs run as tests: every block parses, every example event is a
valid event, and the documented answers have the keys the service returns."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jiefeng.domain.events import parse_event
from test_api_support import Api, api, opened, wrong_passwords  # noqa: F401  (fixture)

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _blocks(name: str) -> list[str]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return [body for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S)
            if lang == "json"]


def _values(body: str) -> list:
    """One JSON value, or JSON Lines."""
    try:
        return [json.loads(body)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in body.splitlines() if line.strip()]


@pytest.mark.parametrize("name", ["events.md", "api.md", "reason-codes.md", "policy.md",
                                  "backtest.md", "criteria.md", "ledger.md"])
def test_every_json_block_parses(name: str) -> None:
    for body in _blocks(name):
        _values(body)  # raises on a broken example


def test_every_event_example_in_events_md_is_a_valid_event() -> None:
    events = [value for body in _blocks("events.md") for value in _values(body)]
    assert len(events) >= 5
    for raw in events:
        parse_event(raw)  # EventRejected names the field of a stale example


def _documented(marker: str) -> dict:
    found = [v for body in _blocks("api.md") for v in _values(body)
             if isinstance(v, dict) and marker in json.dumps(v)]
    assert found, marker
    return found[0]


def test_the_documented_decision_has_the_keys_authorize_returns(api: Api) -> None:  # noqa: F811
    api.ingest(opened("A1"), *wrong_passwords("A1", api.clock() - 30 * 60 * _MINUTE))
    answer = api.client.post("/v1/accounts/A1/authorize", headers=api.as_role("ingest"),
                             json={"amount": "120.50", "merchant_id": "M-1001"}).json()
    documented = _documented('"decision": "declined"')
    assert set(documented) == set(answer)


def test_the_documented_batch_gets_the_documented_answer(api: Api) -> None:  # noqa: F811
    batch = next(v for body in _blocks("api.md") for v in _values(body)
                 if isinstance(v, dict) and "events" in v and '"p-bad"' in json.dumps(v))
    documented = _documented('"accepted": 2')
    response = api.client.post("/v1/events", json=batch, headers=api.as_role("ingest"))
    assert response.status_code == 200, response.text
    assert response.json() == documented


_MINUTE = __import__("datetime").timedelta(minutes=1)

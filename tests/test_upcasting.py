"""Stored events keep replaying after the contract for new events tightened: every historical
shape in tests/fixtures/historical_events.jsonl parses (read from the log) to the event its
current shape gives, while the same shapes sent as new events are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jiefeng.domain.events import EventRejected, parse_event
from jiefeng.domain.upcasting import SCHEMA_VERSION, upcast

FIXTURE = Path(__file__).parent / "fixtures" / "historical_events.jsonl"
HISTORICAL = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]

# What each historical body means today, in the current shape.
CURRENT = {
    "h-1": {"credit_limit": "5000.00"},
    "h-2": {"amount": "120.50"},
    "h-3": {"amount": "80.00"},
    "h-4": {"amount": "20.00"},
    "h-5": {"amount": "180.50"},
    "h-6": {"deposits": "10000.00", "wealth_balance": "2500.25"},
    "h-7": {"amount": "0.00"},
    "h-8": {},
}


@pytest.mark.parametrize("raw", HISTORICAL, ids=[r["event_id"] for r in HISTORICAL])
def test_every_historical_shape_parses_from_the_log_as_its_current_shape(raw: dict) -> None:
    current = {k: v for k, v in {**raw, **CURRENT[raw["event_id"]]}.items()
               if k != "schema_version"}
    assert parse_event(raw, stored=True) == parse_event(current)


def test_the_old_shapes_are_refused_as_new_events() -> None:
    for raw in HISTORICAL[:6]:
        with pytest.raises(EventRejected):
            parse_event(raw)


def test_upcasting_leaves_the_current_shape_alone() -> None:
    current = {"event_id": "c", "type": "purchase", "at": "2025-01-05T10:00:00+08:00",
               "account_id": "A", "amount": "12.30", "merchant_id": "M"}
    assert upcast(current) == current
    assert upcast({**current, "schema_version": SCHEMA_VERSION}) == current
    # What the old contract refused too is left for validation to name.
    assert upcast({**current, "amount": 1.234})["amount"] == 1.234
    with pytest.raises(EventRejected, match="amount"):
        parse_event({**current, "amount": 1.234}, stored=True)


def test_a_log_written_under_the_old_contract_replays(tmp_path) -> None:
    """Rows stored before the money contract tightened (numbers as amounts) still fold:
    `jiefeng replay` and every read of the account work."""
    import datetime as dt

    from jiefeng.service.engine import Engine
    from jiefeng.store import schema as t
    from jiefeng.store.sql import SqlStore

    store = SqlStore(str(tmp_path / "old.db"))
    with store.transaction() as connection:
        connection.execute(t.events.insert(), [{
            "event_id": raw["event_id"], "account_id": raw["account_id"], "type": raw["type"],
            "at_utc": t.utc_text(dt.datetime.fromisoformat(raw["at"])), "actor": None,
            "body": json.dumps(raw), "outcome": None,
            "ingested_at_utc": "2025-03-01T00:00:00.000000+00:00"} for raw in HISTORICAL])
    engine = Engine(store, now=lambda: dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    report = engine.replay()
    assert report.accounts == 1 and report.events == len(HISTORICAL)
    explanation = engine.explain("H1")
    assert explanation["ledger"]["credit_limit"] == "5000.00"

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


# --- every stored body carries its version ---------------------------------------------------

PURCHASE = {"event_id": "v-2", "type": "purchase", "at": "2025-01-05T10:00:00+08:00",
            "account_id": "V1", "amount": "12.30", "merchant_id": "M"}
OPENED = {"event_id": "v-1", "type": "account_opened", "at": "2025-01-01T09:00:00+08:00",
          "account_id": "V1", "credit_limit": "5000.00", "id_expires_on": "2035-01-01"}


def _engine(tmp_path):
    import datetime as dt

    from jiefeng.service.engine import Engine
    from jiefeng.store.sql import SqlStore

    return Engine(SqlStore(str(tmp_path / "v.db")),
                  now=lambda: dt.datetime(2025, 3, 1, tzinfo=dt.UTC))


def _stored_bodies(engine) -> dict[str, str]:
    from jiefeng.store import schema as t

    with engine.store.transaction() as connection:
        return {row.event_id: row.body for row in connection.execute(t.events.select())}


def test_a_new_event_is_stored_with_the_version_it_was_validated_in(tmp_path) -> None:
    engine = _engine(tmp_path)
    line = json.dumps(PURCHASE, ensure_ascii=False)
    report = engine.ingest_file(list(enumerate([json.dumps(OPENED), line], 1)))
    assert report.accepted == 2
    body = _stored_bodies(engine)["v-2"]
    assert json.loads(body) == {**PURCHASE, "schema_version": SCHEMA_VERSION}
    assert body.endswith(line[1:])  # the rest exactly as received
    # An object posted (the API's form) is stored canonically, with its version too.
    engine.ingest_events([{**PURCHASE, "event_id": "v-3"}])
    assert json.loads(_stored_bodies(engine)["v-3"])["schema_version"] == SCHEMA_VERSION


def test_a_retried_event_is_applied_once_whatever_version_it_declares(tmp_path) -> None:
    engine = _engine(tmp_path)
    engine.ingest_file(list(enumerate([json.dumps(OPENED), json.dumps(PURCHASE)], 1)))
    again = engine.ingest_file(list(enumerate(
        [json.dumps(PURCHASE), json.dumps({**PURCHASE, "schema_version": SCHEMA_VERSION})], 1)))
    assert (again.accepted, again.duplicates) == (0, 2)
    assert engine.explain("V1")["ledger"]["revolving"] == "12.30"  # once, not twice


def test_a_new_event_may_declare_an_older_shape_and_is_upcast(tmp_path) -> None:
    """A log replayed from an older system: money as a JSON number, declared version 1, is
    read as it was meant then; without the declaration the same body is refused."""
    old = {**PURCHASE, "amount": 12.3, "schema_version": 1}
    assert parse_event(old) == parse_event(PURCHASE)
    with pytest.raises(EventRejected, match="amount"):
        parse_event({k: v for k, v in old.items() if k != "schema_version"})
    engine = _engine(tmp_path)
    report = engine.ingest_file(list(enumerate([json.dumps(OPENED), json.dumps(old)], 1)))
    assert report.accepted == 2
    assert json.loads(_stored_bodies(engine)["v-2"])["schema_version"] == 1
    engine.cache.clear()
    engine.replay()
    assert engine.explain("V1")["ledger"]["revolving"] == "12.30"  # once, not twice


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION + 1, "2", True, 1.0, None])
def test_a_version_that_cannot_be_read_is_refused_naming_the_field(version) -> None:
    for stored in (False, True):
        with pytest.raises(EventRejected) as refused:
            parse_event({**PURCHASE, "schema_version": version}, stored=stored)
        assert refused.value.problems[0][0] == "schema_version"
        assert "whole number from 1 to" in refused.value.problems[0][1]

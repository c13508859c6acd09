"""Reading stored events from their rows (`parse_stored_rows`): the store's `type` and
`at_utc` columns pick the type's own validator and give the instant. It must give exactly the
event the body alone gives (`parse_stored_json`), and whatever that reading refuses or does not
cover (an older shape, an operator event, a body of another type than its column) must still
take the body's path."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest

from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
from jiefeng.domain import events as events_module
from jiefeng.domain import stored_schema
from jiefeng.domain.events import EventRejected, parse_event, parse_stored_json, parse_stored_rows
from jiefeng.domain.upcasting import SCHEMA_VERSION, stamped
from jiefeng.store.schema import utc_text
from stored_events import PURCHASE, RARE_SHAPES, assert_same_event, rare_shape


def _row(raw: dict) -> tuple[str, str, dt.datetime]:
    """(type, body, at_utc) as the store writes them for a line received as `raw`."""
    event = parse_event(raw)
    body = stamped(orjson.dumps(raw).decode())
    return event.type, body, dt.datetime.fromisoformat(utc_text(event.at))


def parse_stored_row(event_type: str, body: str, at_utc: dt.datetime, fallback=None):
    """One row, read as a backtest reads many."""
    fallback = fallback or (lambda text, _account_id: parse_stored_json(text))
    return parse_stored_rows([("A1", event_type, at_utc, body)], lambda at: at, fallback)[0]


def test_every_row_reads_as_its_body_reads() -> None:
    raws = generate_portfolio(PortfolioSpec(accounts=100, months=18, seed=8)) + RARE_SHAPES
    rows = [_row(raw) for raw in raws]
    expected = [parse_stored_json(body) for _, body, _ in rows]
    read_by_type = {row[0] for row in rows} & stored_schema.ROW_TYPES
    assert {"purchase", "repayment", "login", "activity", "score_update", "refund",
            "asset_update", "password_attempt", "installment_plan_created"} <= read_by_type

    def only_for_others(body: str, account_id: str):
        assert orjson.loads(body)["type"] not in stored_schema.ROW_TYPES, body
        return parse_stored_json(body)

    read = parse_stored_rows([(raw.get("account_id"), *row[:1], row[2], row[1])
                              for raw, row in zip(raws, rows, strict=True)],
                             lambda at: at, only_for_others)
    assert len(read) == len(expected)
    for event, wanted in zip(read, expected, strict=True):
        assert_same_event(event, wanted)


def test_the_rows_of_the_service_read_as_their_bodies(tmp_path) -> None:
    """`states.parse_stored_rows` of what the store returns: an appeal decision also gets the
    account the store routed it to, as `parse_stored` gives it."""
    from jiefeng.service.engine import Engine
    from jiefeng.service.states import parse_stored
    from jiefeng.service.states import parse_stored_rows as service_rows
    from jiefeng.store.sql import SqlStore

    engine = Engine(SqlStore(str(tmp_path / "rows.db")))
    raws = generate_portfolio(PortfolioSpec(accounts=100, months=18, seed=9))
    assert engine.ingest_events(raws).rejected == 0
    store = engine.store
    with store.read() as connection:
        ids = store.account_ids(connection)
        rows = store.accounts_event_rows(connection, ids)
    assert {event_type for account_rows in rows.values() for _, event_type, _, _ in account_rows
            } >= {"appeal_decided", "account_opened", "purchase"}
    for account_id, account_rows in rows.items():
        read = service_rows(account_rows)
        for event, (_, _, _, body) in zip(read, account_rows, strict=True):
            assert_same_event(event, parse_stored(body, account_id))
    store.close()


def test_the_instant_is_the_stores_in_utc() -> None:
    event_type, body, at_utc = _row(PURCHASE)
    read = parse_stored_row(event_type, body, at_utc)
    assert read.at == dt.datetime(2025, 1, 5, 2, 0, tzinfo=dt.UTC)
    assert read.at.tzinfo is dt.UTC and read.amount_fen == 1230


def test_a_body_of_another_type_than_its_column_is_read_as_the_body_says() -> None:
    _, body, at_utc = _row(PURCHASE)
    read = parse_stored_row("login", body, at_utc)
    assert type(read) is events_module.Purchase
    assert_same_event(read, parse_stored_json(body))


def test_a_body_without_the_current_stamp_takes_the_bodys_path() -> None:
    older = orjson.dumps({"schema_version": 1, **PURCHASE, "amount": 12.3}).decode()
    read = parse_stored_row("purchase", older, dt.datetime(2025, 1, 5, 2, tzinfo=dt.UTC))
    assert read.amount_fen == 1230  # upcast from a JSON number
    unstamped = orjson.dumps(PURCHASE).decode()
    at_utc = dt.datetime(2025, 1, 5, 2, tzinfo=dt.UTC)
    assert_same_event(parse_stored_row("purchase", unstamped, at_utc), parse_event(PURCHASE))


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": "12.345"}, "amount"),
    ({"amount": "0.00"}, "amount"),
    ({"amount": 12.3}, "amount"),
    ({"merchant_id": ""}, "merchant_id"),
    ({"merchant_id": "two words"}, "merchant_id"),
    ({"colour": "red"}, "colour"),
    ({"kind": "loan"}, "kind"),
    ({"at": 1736042400}, "at"),
])
def test_a_damaged_body_is_refused_naming_the_field(change, field) -> None:
    body = stamped(orjson.dumps({**PURCHASE, **change}).decode())
    assert f'"schema_version":{SCHEMA_VERSION},' in body
    with pytest.raises((ValueError, TypeError)):
        stored_schema.read_row("purchase", body, dt.datetime(2025, 1, 5, 2, tzinfo=dt.UTC))
    with pytest.raises(EventRejected) as raised:
        parse_stored_row("purchase", body, dt.datetime(2025, 1, 5, 2, tzinfo=dt.UTC))
    assert raised.value.field == field


def test_operator_events_and_models_with_validators_of_their_own_are_not_read_by_type() -> None:
    assert "manual_hold_placed" not in stored_schema.ROW_TYPES
    assert "account_opened" not in stored_schema.ROW_TYPES  # a model validator of its own
    raw = rare_shape("manual_hold_placed")
    event_type, body, at_utc = _row(raw)
    assert_same_event(parse_stored_row(event_type, body, at_utc), parse_stored_json(body))


def test_a_type_without_a_reader_of_its_own_is_refused_by_the_row_reading() -> None:
    with pytest.raises(ValueError, match="account_opened"):
        stored_schema.read_row("account_opened", "{}", dt.datetime(2025, 1, 5, tzinfo=dt.UTC))


def test_an_exports_rows_read_with_their_instants_in_microseconds() -> None:
    """The Spark engine's rows: at_utc as microseconds since the epoch (what pyarrow gives
    cheaply), to the same events, in datetime.UTC."""
    from jiefeng.service.states import parse_exported_rows, parse_stored

    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    raws = [PURCHASE, *RARE_SHAPES]
    rows = []
    for raw in raws:
        event_type, body, at_utc = _row(raw)
        rows.append((raw.get("account_id"), event_type, (at_utc - epoch) // dt.timedelta(
            microseconds=1), body))
    for event, (account_id, _, micros, body) in zip(parse_exported_rows(rows), rows,
                                                    strict=True):
        assert_same_event(event, parse_stored(body, account_id))
        assert event.at == epoch + dt.timedelta(microseconds=micros)


def test_the_row_reading_takes_only_a_body_stamped_with_the_current_version() -> None:
    at_utc = dt.datetime(2025, 1, 5, 2, tzinfo=dt.UTC)
    current = stamped(orjson.dumps(PURCHASE).decode())
    read = stored_schema.read_row("purchase", current, at_utc)
    assert "schema_version" not in read.__dict__
    assert "schema_version" not in read.model_fields_set
    assert_same_event(read, parse_stored_json(current))
    for body in (orjson.dumps(PURCHASE).decode(),  # unstamped
                 orjson.dumps({"schema_version": 1, **PURCHASE}).decode()):  # an older one
        with pytest.raises((ValueError, TypeError)):
            stored_schema.read_row("purchase", body, at_utc)
        # and the rows' reading takes the body's path, which upcasts or reads it
        assert_same_event(parse_stored_row("purchase", body, at_utc), parse_stored_json(body))
    damaged = orjson.dumps({"schema_version": "2", **PURCHASE}).decode()
    with pytest.raises(EventRejected) as raised:
        parse_stored_row("purchase", damaged, at_utc)
    assert raised.value.field == "schema_version"

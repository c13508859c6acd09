"""Reading a stored body back (`parse_stored_json`): a body in the current shape is validated
straight from its text without its version stamp; it must give exactly the event the dict path
gives (`parse_event(orjson.loads(body), stored=True)`), and every other body must still take
that path (older shapes upcast, bad bodies named)."""

from __future__ import annotations

import datetime as dt

import orjson
import pydantic
import pytest

from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
from jiefeng.domain import events as events_module
from jiefeng.domain import stored_schema
from jiefeng.domain.events import EventRejected, parse_event, parse_stored_json
from jiefeng.domain.upcasting import SCHEMA_VERSION, stamped
from stored_events import PURCHASE, RARE_SHAPES, assert_same_event, rare_shape

OVERFLOWING = "999999999999999" + " * 999999999999999" * 29 + " * credit_limit > 1"
def _wire_events() -> list[dict]:
    return generate_portfolio(PortfolioSpec(accounts=100, months=18, seed=5)) + RARE_SHAPES


def _stored_forms(raw: dict) -> list[str]:
    """The two ways a body in the current shape is stored: a line as received, stamped
    first; an event given as a dict, in sorted keys with its stamp among them."""
    line = orjson.dumps(raw).decode()
    by_dict = orjson.dumps({**raw, "schema_version": SCHEMA_VERSION},
                           option=orjson.OPT_SORT_KEYS).decode()
    return [stamped(line), by_dict]


def _without_the_dict_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("a body in the current shape went through the dict path")

    monkeypatch.setattr(events_module, "parse_event", refuse)


def test_every_stored_body_in_the_current_shape_reads_as_the_dict_path_reads_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    raws = _wire_events()
    types = {raw["type"] for raw in raws}
    assert len(types) >= 20  # the portfolio and the extras cover nearly every event type
    bodies = [body for raw in raws for body in _stored_forms(raw)]
    expected = [parse_event(orjson.loads(body), stored=True) for body in bodies]
    _without_the_dict_path(monkeypatch)  # and none of them needs it
    for body, event in zip(bodies, expected, strict=True):
        assert '"schema_version":2,' in body
        assert_same_event(parse_stored_json(body), event)


@pytest.mark.parametrize("body", [
    # The stamp last (no comma after it), spaced, or of an older version: the dict path.
    '{"event_id":"p1","type":"purchase","at":"2025-01-05T10:00:00+08:00","account_id":"A1",'
    '"amount":"12.30","merchant_id":"M1","schema_version":2}',
    '{"schema_version": 2, "event_id":"p1","type":"purchase","at":"2025-01-05T10:00:00+08:00",'
    '"account_id":"A1","amount":"12.30","merchant_id":"M1"}',
    '{"event_id":"p1","type":"purchase","at":"2025-01-05T10:00:00+08:00","account_id":"A1",'
    '"amount":"12.30","merchant_id":"M1"}',
])
def test_other_stored_forms_read_the_same(body: str) -> None:
    assert_same_event(parse_stored_json(body), parse_event(PURCHASE))


def test_an_older_shape_with_its_stamp_is_still_upcast() -> None:
    body = orjson.dumps({"schema_version": 1, **PURCHASE, "amount": 12.3}).decode()
    assert parse_stored_json(body).amount_fen == 1230


def test_the_stamp_inside_a_text_value_is_not_taken_for_the_key() -> None:
    """A quote inside a string is escaped, so the stamp's text cannot match there; the body's
    own stamp is the one removed."""
    raw = {**rare_shape("appeal_submitted"), "statement": '"schema_version":2, is in this text'}
    for body in _stored_forms(raw):
        assert parse_stored_json(body).statement == '"schema_version":2, is in this text'


def test_a_stored_sweep_whose_criteria_are_refused_today_still_reads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks tightened after a sweep was accepted are not applied to it again."""
    raw = {"event_id": "s1", "type": "policy_sweep", "at": "2025-03-01T00:00:00+08:00",
           "actor": "ops-1", "sweep_id": "S1", "criteria": OVERFLOWING,
           "reopen_criteria": "score >= 700"}
    with pytest.raises(EventRejected, match="criteria"):
        parse_event(raw)
    _without_the_dict_path(monkeypatch)
    for body in _stored_forms(raw):
        assert parse_stored_json(body).criteria == OVERFLOWING


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": "12.345"}, "amount"),
    ({"amount": 12.3}, "amount"),  # a number in a body that says it is of the current shape
    ({"merchant_id": ""}, "merchant_id"),
    ({"colour": "red"}, "colour"),
])
def test_a_damaged_body_in_the_current_shape_is_refused_naming_the_field(change, field) -> None:
    for body in _stored_forms({**PURCHASE, **change}):
        with pytest.raises(EventRejected) as raised:
            parse_stored_json(body)
        assert raised.value.field == field


# --- the stored-body validator (jiefeng.domain.stored_schema) ----------------------------------


def test_the_stored_body_validator_leaves_instants_and_amounts_to_its_conversions() -> None:
    """Built from its own schema, not the models' validators: pydantic-core would otherwise
    reuse each complete model's validator and the saving would silently vanish."""
    text = orjson.dumps(PURCHASE).decode()
    built = stored_schema._VALIDATOR.validate_json(text, context=events_module._STORED)
    assert type(built) is events_module.Purchase
    assert built.__dict__["amount_fen"] == "12.30"  # the text, converted afterwards
    assert built.__dict__["at"].utcoffset().total_seconds() == 8 * 3600  # not in UTC yet
    read = stored_schema.read_current(text)
    assert read.amount_fen == 1230 and read.at.tzinfo is dt.UTC
    assert_same_event(read, parse_event(PURCHASE))
    # The models themselves still validate in full.
    assert events_module.Purchase.__pydantic_complete__ is True
    with pytest.raises(pydantic.ValidationError):
        events_module.Purchase.model_validate({**PURCHASE, "amount": "0.00"})


def test_the_stored_body_validator_covers_the_account_events() -> None:
    covered = {cls.__name__ for cls in stored_schema._PLANS}
    assert {"Purchase", "Refund", "Repayment", "Login", "Activity", "AssetUpdate",
            "ScoreUpdate", "PasswordAttempt", "InstallmentPlanCreated"} <= covered
    # A model with a validator of its own, and the operator events, keep their schema.
    assert "AccountOpened" not in covered and "PolicySweep" not in covered
    plan = dict(stored_schema._PLANS[events_module.AssetUpdate])
    assert set(plan) == {"at", "deposits_fen", "wealth_balance_fen"}


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"amount": "0.00"}, "amount", "greater than zero"),
    ({"amount": "0"}, "amount", "greater than zero"),
    ({"amount": "100000000001.00"}, "amount", "implausibly large"),
    ({"amount": "1e3"}, "amount", "not a decimal amount"),
    ({"amount": "１２.30"}, "amount", "not a decimal amount"),  # full-width digits
    ({"amount": " 12.30"}, "amount", "spaces"),
    ({"amount": "-12.30"}, "amount", "negative"),
    ({"at": "2025-01-05T10:00:00"}, "at", "timezone"),
    ({"at": "2301-01-05T10:00:00+08:00"}, "at", "between the years"),
    ({"at": 1736042400}, "at", "RFC 3339"),
])
def test_what_the_stored_body_validator_refuses_is_refused_as_on_the_way_in(
        change, field, reason) -> None:
    """Every value the conversions stand in for is refused as the full validator refuses it,
    naming the field: the stored reading never accepts what ingest would not."""
    raw = {**PURCHASE, **change}
    with pytest.raises(EventRejected) as on_the_way_in:
        parse_event(raw)
    assert on_the_way_in.value.field == field and reason in on_the_way_in.value.reason
    for body in _stored_forms(raw):
        with pytest.raises((ValueError, TypeError, pydantic.ValidationError)):
            stored_schema.read_current(body.replace('"schema_version":2,', "", 1))
        with pytest.raises(EventRejected) as read_back:
            parse_stored_json(body)
        assert (read_back.value.field, read_back.value.reason) == (
            on_the_way_in.value.field, on_the_way_in.value.reason)


def test_zero_balances_read_back_and_amounts_keep_their_places() -> None:
    raw = {"event_id": "a1", "type": "asset_update", "at": "2025-01-05T10:00:00Z",
           "account_id": "A1", "deposits": "0", "wealth_balance": "1234.5"}
    for body in _stored_forms(raw):
        read = parse_stored_json(body)
        assert (read.deposits_fen, read.wealth_balance_fen) == (0, 123450)
        assert_same_event(read, parse_event(raw))
    for amount, fen in (("7", 700), ("0.01", 1), ("012.30", 1230), ("99999999.99", 9999999999)):
        body = _stored_forms({**PURCHASE, "amount": amount})[1]
        assert parse_stored_json(body).amount_fen == fen


# --- new lines read by the lighter validator (`parse_event_json`) -------------------------------


def test_every_new_line_reads_as_the_full_validator_reads_it(monkeypatch) -> None:
    """`parse_event_json` reads a line with the stored-body validator first: the same event,
    values and fields set as the full validator gives, for every event type."""
    lines = [orjson.dumps(raw) for raw in _wire_events()]
    expected = [events_module._EVENT_ADAPTER.validate_json(line) for line in lines]
    taken = []
    read_current = stored_schema.read_current

    def counted(text, *, stored=True):
        event = read_current(text, stored=stored)
        taken.append(stored)
        return event

    monkeypatch.setattr(stored_schema, "read_current", counted)
    for line, event in zip(lines, expected, strict=True):
        assert_same_event(events_module.parse_event_json(line), event)
    assert len(taken) == len(lines) and not any(taken)  # every line, as a new one


def test_a_new_sweep_whose_criteria_are_refused_is_refused() -> None:
    """Read as a new line, not a stored one: its criteria are compiled and refused."""
    raw = {"event_id": "s1", "type": "policy_sweep", "at": "2025-03-01T00:00:00+08:00",
           "actor": "ops-1", "sweep_id": "S1", "criteria": OVERFLOWING,
           "reopen_criteria": "score >= 700"}
    with pytest.raises(EventRejected, match="criteria") as as_dict:
        parse_event(raw)
    with pytest.raises(EventRejected) as as_line:
        events_module.parse_event_json(orjson.dumps(raw))
    assert (as_line.value.field, as_line.value.reason) == (as_dict.value.field,
                                                           as_dict.value.reason)


@pytest.mark.parametrize("change", [
    {"amount": "0.00"}, {"amount": "0"}, {"amount": "100000000001.00"}, {"amount": "1e3"},
    {"amount": "１２.30"}, {"amount": " 12.30"}, {"amount": "-12.30"}, {"amount": 12.3},
    {"at": "2025-01-05T10:00:00"}, {"at": "2301-01-05T10:00:00+08:00"}, {"at": 1736042400},
    {"at": "2025-01-05"}, {"at": "1969-12-31T23:59:59+08:00"}, {"at": "1736042400"},
    {"at": " 2025-01-05T10:00:00+08:00"},
])
def test_a_new_line_the_lighter_reading_refuses_is_read_in_full(change) -> None:
    """What the lighter reading refuses goes to the full validator: the same event, or the
    same field and reason, as a dict sent through the API."""
    raw = {**PURCHASE, **change}
    line = orjson.dumps(raw)
    with pytest.raises((ValueError, TypeError, pydantic.ValidationError)):
        stored_schema.read_current(line, stored=False)
    try:
        expected = parse_event(raw)
    except EventRejected as as_dict:
        with pytest.raises(EventRejected) as as_line:
            events_module.parse_event_json(line)
        assert (as_line.value.field, as_line.value.reason) == (as_dict.field,
                                                               as_dict.reason)
    else:
        assert_same_event(events_module.parse_event_json(line), expected)


@pytest.mark.parametrize("at", ["1736042400", "1736042400.5", " 2025-01-05T10:00:00+08:00",
                                "20250105T100000+0800"])
def test_a_new_line_s_instant_that_is_not_rfc_3339_is_refused_both_ways(at) -> None:
    """pydantic reads a Unix time in a text ("1736042400") as an instant in UTC, strictly or
    not; the contract asks for RFC 3339 with an offset: a new event is refused, as a line and
    as a dict, naming `at`."""
    raw = {**PURCHASE, "at": at}
    for read in (lambda: events_module.parse_event_json(orjson.dumps(raw)),
                 lambda: parse_event(raw)):
        with pytest.raises(EventRejected) as refused:
            read()
        assert refused.value.field == "at" and "RFC 3339" in refused.value.reason


def test_a_stored_body_with_a_unix_time_in_a_text_still_reads_back() -> None:
    """Taken before the rule above, such a body stays in the log: a replay still reads it,
    in the current shape and in an older one (upcast, then the full validator)."""
    raw = {**PURCHASE, "at": "1736042400"}
    expected = dt.datetime(2025, 1, 5, 2, 0, tzinfo=dt.UTC)
    for body in _stored_forms(raw):
        assert parse_stored_json(body).at == expected
    assert parse_event(raw, stored=True).at == expected
    old_shape = {key: value for key, value in raw.items() if key != "schema_version"}
    assert parse_event({**old_shape, "schema_version": 1}, stored=True).at == expected

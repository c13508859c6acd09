"""The input contract: every event type parses; malformed events are rejected naming the field."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from jiefeng.domain import events as ev
from jiefeng.domain.events import (
    EVENT_TYPES,
    OPERATOR_TYPES,
    EventRejected,
    event_to_json_dict,
    parse_event,
    parse_event_json,
    routing_account_id,
)

AT = "2026-01-05T10:00:00+08:00"

VALID: dict[str, dict] = {
    "account_opened": {"account_id": "A1", "credit_limit": "10000.00", "statement_day": 1,
                       "due_day": 9, "id_expires_on": "2030-01-01", "segment": "mass"},
    "purchase": {"account_id": "A1", "amount": "12.34", "merchant_id": "M1", "kind": "purchase",
                 "password_ok": True},
    "refund": {"account_id": "A1", "amount": "1.00", "purchase_event_id": "p1"},
    "repayment": {"account_id": "A1", "amount": "100.00"},
    "installment_plan_created": {"account_id": "A1", "plan_id": "P1", "purchase_event_id": "p1",
                                 "months": 6},
    "score_update": {"account_id": "A1", "score": 700,
                     "dimensions": {"compliance": 80, "behaviour": 70, "identity": 90,
                                    "assets": 50, "connections": 60}},
    "bureau_record": {"account_id": "A1", "product": "jiebei", "status": "overdue",
                      "days_past_due": 31, "amount": "0.00"},
    "activity": {"account_id": "A1", "category": "payment"},
    "asset_update": {"account_id": "A1", "deposits": "0.00", "wealth_balance": "12.00"},
    "password_attempt": {"account_id": "A1", "ok": False},
    "password_reset": {"account_id": "A1", "identity_verified": True},
    "login": {"account_id": "A1", "device_id": "dev-1"},
    "profile_change": {"account_id": "A1", "field": "bank_card"},
    "identity_verified": {"account_id": "A1", "method": "face"},
    "id_document_updated": {"account_id": "A1", "expires_on": "2036-01-01"},
    "appeal_submitted": {"account_id": "A1", "appeal_id": "ap1", "hold_code": "dormant",
                         "statement": "I was abroad", "purchase_event_ids": ["p1"]},
    "maintenance_scheduled": {"actor": "ops", "window_id": "w1",
                              "start": "2026-01-06T01:00:00+08:00",
                              "end": "2026-01-06T03:00:00+08:00", "segment": "mass"},
    "maintenance_cancelled": {"actor": "ops", "window_id": "w1"},
    "migration_started": {"actor": "ops", "campaign_id": "c1", "account_ids": ["A1", "A2"]},
    "migration_completed": {"actor": "ops", "campaign_id": "c1", "account_ids": ["A1"]},
    "policy_sweep": {"actor": "ops", "sweep_id": "s1", "criteria": "score < 650",
                     "reopen_criteria": "score >= 700"},
    "appeal_decided": {"actor": "ops", "appeal_id": "ap1", "decision": "approve",
                       "account_id": "A1"},
    "manual_hold_placed": {"actor": "ops", "account_id": "A1", "reason": "fraud ring"},
    "manual_hold_released": {"actor": "ops", "account_id": "A1"},
    "policy_activated": {"actor": "ops", "version": "tight-1", "sha256": "0" * 64},
}


def raw(type_: str, **overrides) -> dict:
    body = {"event_id": "e1", "type": type_, "at": AT, **VALID[type_]}
    for key, value in overrides.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def rejected(body: dict) -> EventRejected:
    with pytest.raises(EventRejected) as info:
        parse_event(body)
    return info.value


def fields(error: EventRejected) -> list[str]:
    return [field for field, _ in error.problems]


def test_every_event_type_has_a_sample():
    assert set(VALID) == set(EVENT_TYPES)


@pytest.mark.parametrize("type_", sorted(VALID))
def test_every_type_parses_and_round_trips(type_):
    event = parse_event(raw(type_))
    assert event.type == type_
    assert isinstance(event, EVENT_TYPES[type_])
    assert event.at == dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)
    assert event.is_operator == (type_ in OPERATOR_TYPES)
    again = parse_event(event_to_json_dict(event))
    assert again == event


def test_money_is_integer_fen_and_serialises_back_as_a_decimal_string():
    event = parse_event(raw("purchase", amount="12.3"))
    assert event.amount_fen == 1230
    assert event_to_json_dict(event)["amount"] == "12.30"
    assert parse_event(raw("bureau_record", amount="0")).amount_fen == 0


def test_defaults_and_routing():
    opened = parse_event(raw("account_opened", statement_day=..., due_day=..., segment=...))
    assert (opened.statement_day, opened.due_day, opened.segment) == (1, 9, None)
    purchase = parse_event(raw("purchase", kind=..., password_ok=...))
    assert purchase.kind == ev.PurchaseKind.PURCHASE and purchase.password_ok is None
    assert routing_account_id(purchase) == "A1"
    assert routing_account_id(parse_event(raw("maintenance_scheduled"))) is None


def test_utc_and_other_offsets_are_accepted():
    event = parse_event(raw("login", at="2026-01-05T02:00:00Z"))
    assert event.at == parse_event(raw("login")).at


# --- rejections ---------------------------------------------------------------------------------


def test_not_an_object():
    assert fields(rejected(["purchase"])) == ["(event)"]  # type: ignore[arg-type]


def test_unknown_type():
    error = rejected({"event_id": "e1", "type": "purchse", "at": AT, "account_id": "A1"})
    assert error.field == "type"
    assert "purchse" in error.reason


def test_missing_type():
    error = rejected({"event_id": "e1", "at": AT, "account_id": "A1"})
    assert error.field == "type"


def test_unknown_field_is_rejected_by_name():
    error = rejected(raw("repayment", amout="1.00"))
    assert error.problems == [("amout", "unknown field")]
    assert error.event_id == "e1"


@pytest.mark.parametrize(
    ("type_", "missing"),
    [("repayment", "amount"), ("purchase", "merchant_id"), ("account_opened", "credit_limit"),
     ("account_opened", "id_expires_on"), ("login", "account_id"), ("login", "at"),
     ("login", "event_id"), ("policy_sweep", "actor"), ("score_update", "score")],
)
def test_missing_field_is_named(type_, missing):
    error = rejected(raw(type_, **{missing: ...}))
    assert (missing, "is required") in error.problems


@pytest.mark.parametrize(
    ("amount", "reason"),
    [("-1.00", "negative"), ("1.005", "2 decimal places"), ("0", "greater than zero"),
     ("0.00", "greater than zero"), ("abc", "not a decimal"), (1.5, "decimal string"),
     ("NaN", "not a decimal amount"), (True, "decimal string"), ("1e3", "not a decimal"),
     ("1.", "not a decimal"), (".5", "not a decimal"), ("１２.００", "not a decimal"),
     ("100000000000.01", "implausibly large"),
     # A producer sending fen as a JSON number would be booked at 100 times the amount.
     (12, 'decimal string such as "123.45", not the number 12'),
     (5000, "not the number 5000"), (" 5.00 ", "spaces around it"), ("5.00 ", "spaces"),
     ("\t5.00", "spaces")],
)
def test_bad_amounts(amount, reason):
    error = rejected(raw("purchase", amount=amount))
    assert error.field == "amount"
    assert reason in error.reason


@pytest.mark.parametrize(("amount", "fen"), [("12.3", 1230), ("0.01", 1), ("007.10", 710),
                                            ("100000000000", 10**13)])
def test_amounts_in_fen(amount, fen):
    assert parse_event(raw("purchase", amount=amount)).amount_fen == fen
    line = json.dumps(raw("purchase", amount=amount))
    assert parse_event_json(line).amount_fen == fen  # the ingest path agrees


@pytest.mark.parametrize("field", ["credit_limit"])
def test_a_credit_limit_as_a_json_number_is_rejected_on_both_paths(field):
    event = raw("account_opened", **{field: 5000})
    assert rejected(event).field == field
    with pytest.raises(EventRejected) as error:
        parse_event_json(json.dumps(event))
    assert error.value.field == field and "not the number 5000" in error.value.reason


def test_zero_is_allowed_only_for_balances():
    assert rejected(raw("repayment", amount="0.00")).field == "amount"
    assert rejected(raw("asset_update", deposits="-0.01")).field == "deposits"
    assert parse_event(raw("asset_update", deposits="0.00")).deposits_fen == 0


@pytest.mark.parametrize(
    "at", ["2026-01-05T10:00:00", "2026-01-05", 1767578400, 1767578400.0, None, "yesterday"]
)
def test_timestamps_must_be_rfc3339_with_offset(at):
    error = rejected(raw("login", at=at))
    assert error.field == "at"


def test_nested_timestamp_field_is_named():
    error = rejected(raw("maintenance_scheduled", start="2026-01-06T01:00:00"))
    assert error.field == "start"


@pytest.mark.parametrize("score", [349, 951, "700", 700.0])
def test_score_bounds_and_type(score):
    assert rejected(raw("score_update", score=score)).field == "score"


@pytest.mark.parametrize("score", [350, 950])
def test_score_bounds_inclusive(score):
    assert parse_event(raw("score_update", score=score)).score == score


def test_score_dimension_out_of_range_is_named():
    error = rejected(raw("score_update", dimensions={"compliance": 101}))
    assert error.field == "dimensions.compliance"


@pytest.mark.parametrize(("field", "value"), [("statement_day", 29), ("statement_day", 0),
                                              ("due_day", 29)])
def test_statement_and_due_day_range(field, value):
    assert rejected(raw("account_opened", **{field: value})).field == field


def test_due_day_must_differ_from_statement_day():
    assert rejected(raw("account_opened", statement_day=9, due_day=9)).field == "due_day"


def test_dates_must_be_plain_dates():
    assert rejected(raw("account_opened", id_expires_on="2030-1-1")).field == "id_expires_on"
    assert rejected(raw("id_document_updated", expires_on=20300101)).field == "expires_on"


@pytest.mark.parametrize("end", ["2026-01-06T01:00:00+08:00", "2026-01-06T00:59:59+08:00"])
def test_maintenance_end_must_follow_start(end):
    error = rejected(raw("maintenance_scheduled", end=end))
    assert error.field == "end"
    assert "after start" in error.reason


def test_maintenance_window_is_bounded():
    assert rejected(raw("maintenance_scheduled", end="2026-01-14T01:00:00+08:00")).field == "end"


def test_migration_scope_is_account_ids_or_segment():
    both = rejected(raw("migration_started", segment="mass"))
    assert both.field == "account_ids"
    neither = rejected(raw("migration_started", account_ids=...))
    assert neither.field == "account_ids"
    assert rejected(raw("migration_started", account_ids=[])).field == "account_ids"
    assert parse_event(raw("migration_started", account_ids=..., segment="mass")).segment == "mass"


def test_strict_flags():
    assert rejected(raw("password_attempt", ok="false")).field == "ok"
    assert rejected(raw("purchase", password_ok=1)).field == "password_ok"


def test_enums_are_checked():
    assert rejected(raw("purchase", kind="loan")).field == "kind"
    assert rejected(raw("profile_change", field="email")).field == "field"
    assert rejected(raw("appeal_decided", decision="maybe")).field == "decision"


def test_identifiers_must_be_non_blank():
    assert rejected(raw("login", device_id="")).field == "device_id"
    assert rejected(raw("login", account_id="a b")).field == "account_id"


def test_criteria_are_checked_at_the_edge():
    error = rejected(raw("policy_sweep", criteria="score < 650; DROP TABLE x"))
    assert error.field == "criteria"


def test_several_problems_are_all_reported():
    error = rejected(raw("purchase", amount="-1", merchant_id=..., colour="red"))
    assert {"amount", "merchant_id", "colour"} <= set(fields(error))


# --- poison lines (issue 9, item 10) and stored events (item 9) ------------------------------


def test_a_line_that_is_not_utf8_is_rejected_with_the_byte() -> None:
    with pytest.raises(EventRejected) as rejected:
        ev.parse_event_json(b'{"event_id": "a\xff"}')
    assert rejected.value.problems == [
        ("(line)", "not valid UTF-8 (byte 0xff at byte 16); send UTF-8 text")]


@pytest.mark.parametrize("text", ["[" * 100_000 + "]" * 100_000,
                                  '{"a":' * 5_000 + "1" + "}" * 5_000])
def test_a_deeply_nested_line_is_rejected_not_a_recursion_error(text: str) -> None:
    for item in (text, text.encode()):
        with pytest.raises(EventRejected) as rejected:
            ev.parse_event_json(item)
        assert rejected.value.field == "(line)"
        assert rejected.value.reason.startswith("nested too deeply")


def test_stored_sweeps_parse_even_when_their_criteria_no_longer_check() -> None:
    raw = {"event_id": "s1", "type": "policy_sweep", "at": "2026-01-05T10:00:00+08:00",
           "actor": "ops", "sweep_id": "S1", "criteria": "credit_limit * credit_limit > 1",
           "reopen_criteria": "score >= 600"}
    with pytest.raises(EventRejected) as rejected:
        parse_event(raw)
    assert rejected.value.field == "criteria"
    assert parse_event(raw, stored=True).criteria == "credit_limit * credit_limit > 1"

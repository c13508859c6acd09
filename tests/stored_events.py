"""Events in their wire form for the tests that read stored events back (`test_stored_reads`,
`test_stored_rows`), and the check that two readings gave the same event."""

from __future__ import annotations

import datetime as dt
from typing import Any

PURCHASE = {"event_id": "p1", "type": "purchase", "at": "2025-01-05T10:00:00+08:00",
            "account_id": "A1", "amount": "12.30", "merchant_id": "M1"}

# Types and fields the synthetic portfolio does not send: operator commands, optional and
# nested fields, instants with fractions and other offsets, a zero amount.
RARE_SHAPES = [
    {"event_id": "o1", "type": "manual_hold_placed", "at": "2025-02-01T09:00:00+08:00",
     "actor": "ops-1", "account_id": "A1", "reason": "复核 review"},
    {"event_id": "o2", "type": "manual_hold_released", "at": "2025-02-02T09:00:00Z",
     "actor": "ops-1", "account_id": "A1"},
    {"event_id": "o3", "type": "policy_activated", "at": "2025-02-03T09:00:00.123456+00:00",
     "actor": "ops-1", "version": "v2", "sha256": "a" * 64},
    {"event_id": "o4", "type": "score_update", "at": "2025-02-04T09:00:00.5-05:30",
     "account_id": "A1", "score": 640, "dimensions": {"identity": 40, "assets": 0}},
    {"event_id": "o5", "type": "purchase", "at": "2025-02-05T09:00:00+08:00",
     "account_id": "A1", "amount": "7", "merchant_id": "M1", "kind": "cash_withdrawal",
     "password_ok": False, "authorization": "approved"},
    {"event_id": "o6", "type": "appeal_submitted", "at": "2025-02-06T09:00:00+08:00",
     "account_id": "A1", "appeal_id": "AP1", "hold_code": "cash_out",
     "statement": "我没有套现 \"quoted\" \\ back", "purchase_event_ids": ["p1", "p2"]},
    {"event_id": "o7", "type": "bureau_record", "at": "2025-02-07T23:59:59.999999+08:00",
     "account_id": "A1", "product": "mybank", "status": "overdue",
     "days_past_due": 31, "amount": "0"},
]


def rare_shape(event_type: str) -> dict[str, Any]:
    return next(raw for raw in RARE_SHAPES if raw["type"] == event_type)


def assert_same_event(read: Any, expected: Any) -> None:
    """Equal, of the same class, with the same fields set in the same order, each value of
    the same type, the instant in datetime.UTC."""
    assert read == expected
    assert type(read) is type(expected)
    assert read.model_fields_set == expected.model_fields_set
    assert list(read.__dict__) == list(expected.__dict__)
    for name, value in expected.__dict__.items():
        assert type(read.__dict__[name]) is type(value), name
    assert read.at.tzinfo is dt.UTC

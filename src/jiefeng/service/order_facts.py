"""What a raw line's place in the decision order needs (its id, instant, type and account),
read without validating it.

A module of its own, light to import (orjson and the decision order's packing): the index of
a file (`jiefeng.service.event_file.scan_range`) reads these facts from every line, and may run
in a process that has not imported the event models, the store or the engine. Only a line the
quick read cannot take is handed to validation, imported then (rare: a line that validation
may still accept, or reject with its reason).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import orjson

from jiefeng.domain.event_kinds import SCOPE_TYPES
from jiefeng.service.decision_order import packed_key


def tie_rank(event_type: str) -> int:
    """The order of events at one instant: operator commands that change the scopes first (a
    maintenance window known at t covers a purchase at t, as a replay has it), then account
    openings, then the rest as sent."""
    if event_type in SCOPE_TYPES:
        return 0
    return 1 if event_type == "account_opened" else 2


UNREADABLE = (dt.datetime.min.replace(tzinfo=dt.UTC), 0)  # rejected wherever it goes
UNREADABLE_KEY = packed_key(*UNREADABLE)


class OrderFacts(NamedTuple):
    """What deciding a raw item's place needs, read without validating it."""

    event_id: str
    at: dt.datetime  # in UTC
    rank: int  # `tie_rank`
    kind: str
    account_id: str | None  # as sent (None if absent or not a string)
    appeal_id: str | None  # of an appeal submission or decision


def order_facts(raw: Any) -> OrderFacts | None:
    """The item's `OrderFacts`, or None if its time or id cannot be read."""
    try:
        fields = raw if isinstance(raw, dict) else orjson.loads(raw)
        at, event_id, kind = fields["at"], fields["event_id"], fields["type"]
        if isinstance(at, str) and isinstance(event_id, str) and isinstance(kind, str):
            instant = dt.datetime.fromisoformat(at)
            if instant.tzinfo is not None:
                account_id, appeal_id = fields.get("account_id"), fields.get("appeal_id")
                # One tzinfo for all: datetimes that share it compare several times faster.
                return OrderFacts(
                    event_id, instant.astimezone(dt.UTC), tie_rank(kind), kind,
                    account_id if isinstance(account_id, str) else None,
                    appeal_id if isinstance(appeal_id, str) else None)
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError):
        pass  # Overflow: year 1 at +01:00; AttributeError: not an object (no .get)
    # What the quick read misses, validation may still accept: ask it (rare, so slow is fine).
    from jiefeng.service.ingest import ItemResult, _parse

    parsed = _parse(0, raw)
    if isinstance(parsed, ItemResult):
        return None
    event = parsed[0]
    fields = event.__dict__
    return OrderFacts(event.event_id, event.at, tie_rank(event.type), event.type,
                      fields.get("account_id"), fields.get("appeal_id"))


def order_key(raw: Any) -> tuple[str, tuple[dt.datetime, int]] | None:
    """(event_id, (at in UTC, tie rank)) of a raw item, read without validating it; None if
    it cannot be read."""
    facts = order_facts(raw)
    return None if facts is None else (facts.event_id, (facts.at, facts.rank))

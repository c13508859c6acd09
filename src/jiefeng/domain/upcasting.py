"""Old shapes of stored events, turned into the current one before validation.

The log is append-only: an event stored under an older contract must replay forever, even
after the contract for new events tightened. Each stored body is read through `upcast`, which
applies, in order, every upcaster newer than the body's `schema_version` (a body without one
is version 1: every body written before versions existed). Upcasters only rewrite what the
current contract refuses, so one applied to a body already in the current shape changes
nothing.

Every body is stored with its version: a new event that declares none is validated in the
current shape and stored stamped with SCHEMA_VERSION (`stamped`), so a later change of meaning
can tell the shapes apart. A new event may declare an older `schema_version` (a log replayed
from an older system): it is upcast from that version, then validated, and stored as received.

Versions:
- 1 → 2 (the hardening of the money contract): money given as a JSON number, or as a decimal
  string with spaces around it, was accepted and read as yuan; it is now a decimal string.
  `{"amount": 12}` becomes `{"amount": "12.00"}`, `" 5.5 "` becomes `"5.5"`.

A fixture of every historical shape (`tests/fixtures/historical_events.jsonl`) must keep
parsing to the same event.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

SCHEMA_VERSION = 2  # the shape new events are validated in
MONEY_FIELDS = ("amount", "credit_limit", "deposits", "wealth_balance")


def _money_as_decimal_strings(raw: dict[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] | None = None  # copied on the first change: most bodies have none
    for key in MONEY_FIELDS:
        value = raw.get(key)
        if value is None or isinstance(value, bool):
            continue
        fixed = value
        if isinstance(value, int | float):
            try:
                amount = Decimal(str(value))
            except InvalidOperation:  # pragma: no cover - str() of a number is a number
                continue
            # Only what the old contract took (two places at most); anything else is left for
            # validation to refuse, naming the field.
            if amount.is_finite() and amount == amount.quantize(Decimal("0.01")):
                fixed = f"{amount:.2f}"
        elif isinstance(value, str) and value != value.strip():
            fixed = value.strip()
        if fixed is not value:
            if changed is None:
                changed = dict(raw)
            changed[key] = fixed
    return raw if changed is None else changed


# (the version it upgrades from, the upgrade), oldest first.
UPCASTERS: tuple[tuple[int, Callable[[dict[str, Any]], dict[str, Any]]], ...] = (
    (1, _money_as_decimal_strings),
)


def version_problem(raw: dict[str, Any]) -> str | None:
    """Why a body's declared `schema_version` cannot be read, or None."""
    version = raw.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) \
            or not 1 <= version <= SCHEMA_VERSION:
        return f"must be a whole number from 1 to {SCHEMA_VERSION}"
    return None


def stamped(body: str) -> str:
    """A JSON object's text as stored: with the current `schema_version` first, the rest as
    received, unless it declares a version of its own. Only for a body that validated as an
    event (a non-empty JSON object: events refuse unknown fields, so none has the key by
    accident; a `"schema_version"` inside a text value only leaves it unstamped, which reads
    as version 1, harmless as upcasters change nothing in the current shape)."""
    if '"schema_version"' in body:
        return body
    start = body.index("{")
    return f'{{"schema_version":{SCHEMA_VERSION},{body[start + 1:]}'


def upcast(raw: Any) -> Any:
    """A stored body in the current shape (anything but a JSON object is left as it is)."""
    if not isinstance(raw, dict):
        return raw
    version = raw.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        return raw  # validation names the field
    body = raw
    if "schema_version" in raw:
        # A copy without the key (the caller's dict is left alone): once per stored event
        # read, and a copy then a delete is a quarter of a filtering comprehension's cost.
        body = dict(raw)
        del body["schema_version"]
    for from_version, upgrade in UPCASTERS:
        if version <= from_version:
            body = upgrade(body)
    return body

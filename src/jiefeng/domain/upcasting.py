"""Old shapes of stored events, turned into the current one before validation.

The log is append-only: an event stored under an older contract must replay forever, even
after the contract for new events tightened. Each stored body is read through `upcast`, which
applies, in order, every upcaster newer than the body's `schema_version` (a body without one
is version 1: every body written before versions existed). Upcasters only rewrite what the
current contract refuses, so one applied to a body already in the current shape changes
nothing. New events are validated as they arrive, without upcasting.

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


def upcast(raw: Any) -> Any:
    """A stored body in the current shape (anything but a JSON object is left as it is)."""
    if not isinstance(raw, dict):
        return raw
    version = raw.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        return raw  # validation names the field
    body = raw
    if "schema_version" in raw:
        body = {k: v for k, v in raw.items() if k != "schema_version"}
    for from_version, upgrade in UPCASTERS:
        if version <= from_version:
            body = upgrade(body)
    return body

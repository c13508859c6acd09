"""The order decline codes are listed in: descending precedence, one table (see
docs/reason-codes.md). Holds come first, in the causes' declared precedence (what a customer
must clear before anything else helps), then the request's own problems."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

REQUEST_CODES = ("kind_not_allowed", "wrong_password", "insufficient_credit")

_ranked: tuple[Any, dict[str, int]] | None = None  # (the tables ranked, code -> rank)


def _rank() -> dict[str, int]:
    global _ranked
    from jiefeng.domain import causes

    tables = causes.tables()
    if _ranked is None or _ranked[0] is not tables:
        precedence = (*tables.hold_codes, *REQUEST_CODES)
        _ranked = (tables, {code: rank for rank, code in enumerate(precedence)})
    return _ranked[1]


def decline_precedence() -> tuple[str, ...]:
    """Every hold and decline code, highest precedence first."""
    from jiefeng.domain import causes

    return (*causes.tables().hold_codes, *REQUEST_CODES)


def in_precedence(codes: Iterable[str]) -> list[str]:
    """The codes, highest precedence first; a code not in the table goes last, by name."""
    rank = _rank()
    return sorted(codes, key=lambda code: (rank.get(code, len(rank)), code))


"""The order decline codes are listed in: descending precedence, one table (see
docs/reason-codes.md). Holds come first, in the causes' declared precedence (what a customer
must clear before anything else helps), then the request's own problems."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jiefeng.domain import causes

REQUEST_CODES = ("kind_not_allowed", "wrong_password", "insufficient_credit")

_rank: dict[str, int] = {}  # code -> rank, rebuilt when the causes' tables change


def _rebuild(tables: Any) -> None:
    global _rank
    precedence = (*tables.hold_codes, *REQUEST_CODES)
    _rank = {code: rank for rank, code in enumerate(precedence)}


causes.on_change(_rebuild)


def decline_precedence() -> tuple[str, ...]:
    """Every hold and decline code, highest precedence first."""
    return (*causes.tables().hold_codes, *REQUEST_CODES)


def in_precedence(codes: Iterable[str]) -> list[str]:
    """The codes, highest precedence first; a code not in the table goes last, by name."""
    rank = _rank
    return sorted(codes, key=lambda code: (rank.get(code, len(rank)), code))


"""The order decline codes are listed in: descending precedence, one table (see
docs/reason-codes.md). Holds come first, in the hold catalog's order (what a customer must
clear before anything else helps), then the request's own problems."""

from __future__ import annotations

from collections.abc import Iterable

from jiefeng.domain.holds import HOLD_CODES

REQUEST_CODES = ("kind_not_allowed", "wrong_password", "insufficient_credit")
DECLINE_PRECEDENCE: tuple[str, ...] = (*HOLD_CODES, *REQUEST_CODES)
_RANK = {code: rank for rank, code in enumerate(DECLINE_PRECEDENCE)}


def in_precedence(codes: Iterable[str]) -> list[str]:
    """The codes, highest precedence first; a code not in the table goes last, by name."""
    return sorted(codes, key=lambda code: (_RANK.get(code, len(_RANK)), code))

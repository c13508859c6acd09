"""Money: integer fen inside, decimal strings at the edges.

Floats never touch money: a decimal string is parsed with `Decimal`, checked for at most two
places, and turned into an integer number of fen.
"""

from __future__ import annotations

import re
from decimal import Decimal

MAX_AMOUNT_FEN = 10**13  # 100 billion yuan: far above any consumer line; bounds arithmetic


_AMOUNT = re.compile(r"\d{1,15}(\.\d{1,2})?")


def parse_amount_fen(value: object, *, allow_zero: bool = False) -> int:
    """Parse a CNY decimal string ("123.45") into fen. Raises ValueError saying why.

    Only plain decimal notation is money: no exponents ("1e3"), no signs but a leading minus
    (refused as negative), no more than two places.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError('must be a decimal string such as "123.45"')
    text = str(value).strip()
    if text.startswith("-") and _AMOUNT.fullmatch(text[1:]):
        raise ValueError("must not be negative")
    if not _AMOUNT.fullmatch(text):
        if re.fullmatch(r"\d+\.\d{3,}", text):
            raise ValueError("must have at most 2 decimal places")
        raise ValueError(f'"{text[:40]}" is not a decimal amount such as "123.45"')
    fen = int(Decimal(text) * 100)
    if fen == 0 and not allow_zero:
        raise ValueError("must be greater than zero")
    if fen > MAX_AMOUNT_FEN:
        raise ValueError("is implausibly large")
    return fen


def format_fen(amount_fen: int) -> str:
    """Format fen as a decimal string with two places ("1234.50")."""
    sign = "-" if amount_fen < 0 else ""
    whole, part = divmod(abs(amount_fen), 100)
    return f"{sign}{whole}.{part:02d}"

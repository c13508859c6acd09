"""Money: integer fen inside, decimal strings at the edges.

Floats never touch money: a decimal string is parsed with `Decimal`, checked for at most two
places, and turned into an integer number of fen.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MAX_AMOUNT_FEN = 10**13  # 100 billion yuan: far above any consumer line; bounds arithmetic


def parse_amount_fen(value: object, *, allow_zero: bool = False) -> int:
    """Parse a CNY decimal string ("123.45") into fen. Raises ValueError saying why."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError('must be a decimal string such as "123.45"')
    text = str(value).strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f'"{text}" is not a decimal amount such as "123.45"') from None
    if not amount.is_finite():
        raise ValueError("must be a finite amount")
    if amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("must have at most 2 decimal places")
    if amount < 0:
        raise ValueError("must not be negative")
    if amount == 0 and not allow_zero:
        raise ValueError("must be greater than zero")
    fen = int(amount * 100)
    if fen > MAX_AMOUNT_FEN:
        raise ValueError("is implausibly large")
    return fen


def format_fen(amount_fen: int) -> str:
    """Format fen as a decimal string with two places ("1234.50")."""
    sign = "-" if amount_fen < 0 else ""
    whole, part = divmod(abs(amount_fen), 100)
    return f"{sign}{whole}.{part:02d}"

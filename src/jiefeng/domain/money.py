"""Money: integer fen inside, decimal strings at the edges.

Floats never touch money: a decimal string is matched digit by digit, checked for at most two
places, and turned into an integer number of fen.
"""

from __future__ import annotations

import re

MAX_AMOUNT_FEN = 10**13  # 100 billion yuan: far above any consumer line; bounds arithmetic


# ASCII digits only: "１２" (full-width) is not an amount a ledger should guess at.
_AMOUNT = re.compile(r"(\d{1,15})(?:\.(\d{1,2}))?", re.ASCII)
_TOO_PRECISE = re.compile(r"\d+\.\d{3,}", re.ASCII)


def parse_amount_fen(value: object, *, allow_zero: bool = False) -> int:
    """Parse a CNY decimal string ("123.45") into fen. Raises ValueError saying why.

    Only plain decimal notation is money: no exponents ("1e3"), no signs but a leading minus
    (refused as negative), no more than two places, no spaces around it. A JSON number is
    refused too: a producer that sends fen as a number would otherwise be booked at 100 times
    the amount.
    """
    # Runs for every amount of every event ingested: integer arithmetic on the matched digits,
    # not Decimal, and the checks for why a value is wrong only once it is.
    if not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f'must be a decimal string such as "123.45", not the number '
                             f'{str(value)[:20]}')
        raise ValueError('must be a decimal string such as "123.45"')
    text = value
    match = _AMOUNT.fullmatch(text)
    if match is None:
        if text != text.strip():
            raise ValueError("must not have spaces around it")
        if text.startswith("-") and _AMOUNT.fullmatch(text[1:]):
            raise ValueError("must not be negative")
        if _TOO_PRECISE.fullmatch(text):
            raise ValueError("must have at most 2 decimal places")
        raise ValueError(f'"{text[:40]}" is not a decimal amount such as "123.45"')
    return fen_of_digits(*match.groups(), allow_zero=allow_zero)


def fen_of_digits(whole: str, cents: str | None, *, allow_zero: bool = False) -> int:
    """Fen from an amount's ASCII digits (the yuan; then none, one or two places), checked as
    every amount is: above zero unless `allow_zero`, at most MAX_AMOUNT_FEN."""
    fen = int(whole) * 100
    if cents:
        fen += int(cents) * (10 if len(cents) == 1 else 1)
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

"""How much of a caller's own text an error message shows back.

An id of 10,000 characters, an unknown event type as long, a path of a megabyte: every message
that echoes what it was given (HTTP problem details, the CLI's rejected lines) cuts each long
word to its first `MAX_WORD_CHARS` characters and an ellipsis, and the whole to `MAX_TEXT_CHARS`
(which bounds a long value made of short words too).
The prefix stays, so the reader can still tell which id it was.
"""

from __future__ import annotations

import re
from typing import Any

MAX_WORD_CHARS = 64  # an echoed id, type or path is cut to this much and "…"
MAX_TEXT_CHARS = 1_000  # a whole message, after its long words are cut
ELLIPSIS = "…"

# A word ends at white space, a quote, a slash or a bracket (`'<id>'` keeps its quotes and
# `/v1/accounts/<id>/explanation` the path around the cut id) and before punctuation that ends
# it (`<field>: reason`, `<id>; next`).
_WORD_CHAR = r"""(?:[^\s'"/()\[\]{}<>:;,.]|[:;,.](?=\S))"""
_LONG_WORD = re.compile(rf"{_WORD_CHAR}{{{MAX_WORD_CHARS + 1},}}")


def cut(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` with every word longer than MAX_WORD_CHARS cut, and at most `limit` characters
    (plus the ellipsis). Cutting twice changes nothing."""
    if len(text) > MAX_WORD_CHARS:
        text = _LONG_WORD.sub(lambda word: word.group()[:MAX_WORD_CHARS] + ELLIPSIS, text)
    return text if len(text) <= limit + len(ELLIPSIS) else text[:limit] + ELLIPSIS


def cut_all(value: Any) -> Any:
    """Every string in a JSON-like value cut (keys too): for a problem's extra members."""
    if isinstance(value, str):
        return cut(value)
    if isinstance(value, list):
        return [cut_all(item) for item in value]
    if isinstance(value, dict):
        return {cut(str(key)) if isinstance(key, str) else key: cut_all(item)
                for key, item in value.items()}
    return value

"""JSON Lines input: a file or stdin as numbered lines of bytes, one event each.

Lines are cut on `\\n` only. `str.splitlines` would also cut on U+2028, U+0085 and other
separators, which may sit inside a JSON string, and so split one event in two. The bytes are
not decoded here: a line that is not UTF-8 is rejected on its own by validation, with its line
number, and the other lines are applied. A UTF-8 byte order mark at the start is skipped.
"""

from __future__ import annotations

UTF8_BOM = b"\xef\xbb\xbf"


def event_lines(data: bytes) -> list[tuple[int, bytes]]:
    """(line number from 1, line) for every line that is not blank."""
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    return [(number, line) for number, line in enumerate(data.split(b"\n"), start=1)
            if line.strip()]

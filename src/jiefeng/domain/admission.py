"""Admission: what ingest accepts as a *new* event, beyond what an event is.

`jiefeng.domain.events` says what an event is, and every stored event must keep parsing under
it. The rules here apply only when an event arrives, so tightening them never makes a stored
log unreadable:

* `text_problems`: no NUL character in any string (PostgreSQL cannot store one, and a C
  consumer reads it as the end of the text); in identifiers also no invisible characters and
  no bidirectional overrides, which make one id look like another on a screen.
* `time_problem`: `at` lies between the policy's floor date and a few minutes ahead of the
  clock at ingest. An event dated 2199 would make every later event of its account late, so
  every later batch would replay the account up to 2199.

Pure: the clock and the policy are arguments.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from typing import Any

from pydantic import BaseModel

from jiefeng.domain.events import PROSE

# Zero-width (U+200B-U+200D, U+2060, U+FEFF) and bidirectional embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069).
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]")


def may_need_text_check(body: str) -> bool:
    """False when the JSON text cannot hold a NUL or an invisible character: plain ASCII
    without escapes (most events), so the walk over the fields is skipped."""
    return "\\u" in body or "\x00" in body or not body.isascii()


@cache
def _prose_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, info in model.model_fields.items() if PROSE in info.metadata)


def text_problems(event: BaseModel) -> list[tuple[str, str]]:
    """(field, reason) for each string field that admission refuses; [] if none."""
    problems: list[tuple[str, str]] = []
    prose = _prose_fields(type(event))
    for name, value in event.__dict__.items():
        _check_value(name, value, name in prose, problems)
    return problems


def _check_value(path: str, value: Any, prose: bool, problems: list[tuple[str, str]]) -> None:
    if isinstance(value, str):
        reason = _text_reason(value, prose)
        if reason:
            problems.append((path, reason))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_value(f"{path}.{index}", item, prose, problems)
    elif isinstance(value, BaseModel):
        for name, item in value.__dict__.items():
            _check_value(f"{path}.{name}", item, name in _prose_fields(type(value)), problems)


def _text_reason(text: str, prose: bool) -> str | None:
    if "\x00" in text:
        return "must not contain a NUL character (U+0000)"
    if not prose:
        found = _INVISIBLE.search(text)
        if found:
            return (f"must not contain invisible or text-direction characters "
                    f"(U+{ord(found.group()):04X} at character {found.start() + 1})")
    return None


def time_window(now: dt.datetime, max_future_minutes: int,
                min_event_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """(earliest, latest) `at` ingest accepts at `now`, both inclusive (computed once a batch:
    each event then costs two comparisons)."""
    return (dt.datetime.combine(min_event_date, dt.time(), dt.UTC),
            now + dt.timedelta(minutes=max_future_minutes))


def time_problem(at: dt.datetime, now: dt.datetime, max_future_minutes: int,
                 min_event_date: dt.date) -> tuple[str, str] | None:
    """("at", reason) if `at` lies outside the window ingest accepts at `now`, else None."""
    floor, latest = time_window(now, max_future_minutes, min_event_date)
    if at > latest:
        return ("at", f"is more than {max_future_minutes} minutes ahead of the clock at ingest "
                      f"({now.astimezone(dt.UTC).isoformat()}); send events when they happen "
                      "(policy ingest.max_future_minutes)")
    if at < floor:
        return ("at", f"is before {min_event_date.isoformat()}, the earliest date accepted "
                      "(policy ingest.min_event_date)")
    return None

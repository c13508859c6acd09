"""Query parameters shared by several routes."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import Query

from jiefeng.api.models import check_time_range
from jiefeng.api.problems import field_problem

AtQuery = Annotated[str | None, Query(
    max_length=64, json_schema_extra={"format": "date-time"},
    description="RFC 3339 time with an offset (URL-encode `+` as `%2B`); default now.")]

# "...T10:00:00 08:00": a `+` that arrived unencoded in a query string reads as a space.
_SPACE_OFFSET = re.compile(r" (\d{2}:\d{2})$")


def parse_at(value: str | None, now: dt.datetime, field: str = "at") -> dt.datetime:
    if value is None:
        return now
    text = _SPACE_OFFSET.sub(r"+\1", value.strip())
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise field_problem(422, field, "not an RFC 3339 time, e.g. 2026-06-01T12:00:00+08:00"
                            ) from None
    if at.tzinfo is None:
        raise field_problem(422, field, "needs a UTC offset, e.g. 2026-06-01T12:00:00+08:00")
    try:
        return check_time_range(at)
    except ValueError as error:
        raise field_problem(422, field, str(error)) from None

"""The columns of an events export (`jiefeng export events`), in a module of their own: the
Spark engine's executors read an export with them and need nothing else of the exporter."""

from __future__ import annotations

import pyarrow as pa

EVENT_SCHEMA = pa.schema([
    ("seq", pa.int64()),
    ("event_id", pa.string()),
    ("account_id", pa.string()),
    ("type", pa.string()),
    ("at_utc", pa.timestamp("us", tz="UTC")),
    ("actor", pa.string()),
    ("body", pa.string()),  # the event as stored (JSON), the input of a fold
    ("outcome", pa.string()),  # a purchase's recorded decision (see domain/outcomes.py)
])

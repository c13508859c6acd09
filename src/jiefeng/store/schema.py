"""Table definitions (SQLAlchemy Core). Alembic migrations in `store/migrations` create them;
this module is what the code reads and writes through.

Times are stored as fixed-width UTC ISO strings (`2025-01-01T02:00:00.000000+00:00`): they sort
as text identically in SQLite and PostgreSQL, and no driver converts them behind our back.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

ID = String(128)
TIME = String(32)

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("event_id", ID, nullable=False, unique=True),
    Column("account_id", ID, nullable=True),
    Column("type", String(40), nullable=False),
    Column("at_utc", TIME, nullable=False),
    Column("actor", ID, nullable=True),
    Column("body", Text, nullable=False),
    # For purchases: "approved" or "declined:<codes>", the decision the fold made.
    Column("outcome", String(200), nullable=True),
    Column("ingested_at_utc", TIME, nullable=False),
)
Index("ix_events_account_time", events.c.account_id, events.c.at_utc, events.c.seq)
# Operator commands only (account_id IS NULL): the scope marker and the scopes read them, and
# a partial index costs account events nothing on insert (a full one cost ~15 % of the insert).
# Migration 0001 creates it on both databases. Only SQLite's condition is declared here (a new
# SQLite file is created from this metadata): naming a dialect's option makes SQLAlchemy
# import that dialect, and PostgreSQL's is 19 modules (15-20 ms) every process would load
# for nothing; Alembic's environment adds it (`with_postgresql_options`).
_OPERATOR_LINES = events.c.account_id.is_(None)
operator_type_index = Index("ix_events_operator_type", events.c.type, events.c.seq,
                            sqlite_where=_OPERATOR_LINES)


def with_postgresql_options() -> None:
    """Declare the PostgreSQL condition of the partial index too (what migration 0001 made),
    for a process that reads the metadata as PostgreSQL's (Alembic's environment)."""
    operator_type_index.dialect_options["postgresql"]["where"] = _OPERATOR_LINES

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", ID, primary_key=True),
    # Incremented on every write: a process-local cache entry is valid while it matches.
    Column("revision", BigInteger, nullable=False),
    # Account events folded into the current state (the log holds exactly these).
    Column("events_applied", BigInteger, nullable=False),
    # The pickled state, written every so many events, not every batch: a reader folds the
    # events after it (`snapshot_events` of them are inside) and advances to `clock_utc`.
    Column("snapshot", LargeBinary, nullable=True),
    Column("snapshot_format", Integer, nullable=False),
    Column("snapshot_events", BigInteger, nullable=False),
    Column("clock_utc", TIME, nullable=False),
    Column("status", String(16), nullable=False),
    Column("segment", ID, nullable=True),
    Column("hold_codes", String(400), nullable=False, default=""),
    Column("policy_version", String(64), nullable=False),
)

effects = Table(
    "effects",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("account_id", ID, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("code", String(40), nullable=True),
    Column("at_utc", TIME, nullable=False),
    Column("cause", ID, nullable=True),
    Column("data", Text, nullable=False),
)
Index("ix_effects_account", effects.c.account_id, effects.c.seq)
Index("ix_effects_kind_code", effects.c.kind, effects.c.code)

appeals = Table(
    "appeals",
    metadata,
    Column("appeal_id", ID, primary_key=True),
    Column("account_id", ID, nullable=False),
    Column("hold_code", String(40), nullable=False),
    Column("submitted_at_utc", TIME, nullable=False),
    Column("sla_due_at_utc", TIME, nullable=False),
    Column("status", String(16), nullable=False),
    Column("statement", Text, nullable=False, default=""),
    Column("decided_at_utc", TIME, nullable=True),
    Column("decided_by", ID, nullable=True),
    Column("reason", Text, nullable=True),
)
Index("ix_appeals_status", appeals.c.status, appeals.c.submitted_at_utc)


def utc_text(at: dt.datetime) -> str:
    """A fixed-width UTC ISO string that sorts like the instant it names."""
    assert at.tzinfo is not None, "store times are timezone-aware"
    if at.tzinfo is not dt.UTC:
        at = at.astimezone(dt.UTC)
    # isoformat renders UTC as +00:00 and is several times faster than strftime.
    return at.isoformat(timespec="microseconds")


def parse_utc_text(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)

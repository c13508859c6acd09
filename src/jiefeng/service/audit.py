"""The audit log: who did what, to what, when, why, under which request id.

Append-only by construction: this module can insert and read, nothing else, and the database
refuses UPDATE and DELETE on the table (triggers from migration 0002).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from jiefeng.store import schema as t
from jiefeng.store import service_tables as st
from jiefeng.store.sql import SqlStore

MAX_PAGE = 500
MAX_REASON_CHARS = 2_000
MAX_PATH_CHARS = 512


@dataclass(frozen=True)
class AuditEntry:
    at: dt.datetime
    request_id: str
    actor_kind: str  # api_key | customer
    actor: str  # key name or customer account id
    key_id: str | None
    roles: tuple[str, ...]
    action: str  # e.g. "appeals.decide"
    method: str
    path: str
    target: str | None
    reason: str | None
    status: int  # the HTTP status the caller got


class AuditLog:
    def __init__(self, store: SqlStore):
        self.store = store

    def append(self, entry: AuditEntry) -> None:
        self.append_many([entry])

    def append_many(self, entries: list[AuditEntry]) -> None:
        """All in one transaction: a batch of commands is audited whole or not at all."""
        if not entries:
            return
        with self.store.transaction() as connection:
            connection.execute(st.audit_log.insert(), [_row(entry) for entry in entries])

    def page(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Entries with seq > after, oldest first; `seq` is the cursor for the next page."""
        assert 1 <= limit <= MAX_PAGE
        query = (select(st.audit_log).where(st.audit_log.c.seq > after)
                 .order_by(st.audit_log.c.seq).limit(limit))
        with self.store.read() as connection:
            return [_entry_dict(row) for row in connection.execute(query)]


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at_utc": t.utc_text(entry.at),
        "request_id": entry.request_id[:128],
        "actor_kind": entry.actor_kind,
        "actor": entry.actor[:128],
        "key_id": entry.key_id,
        "roles": ",".join(entry.roles),
        "action": entry.action[:64],
        "method": entry.method,
        "path": entry.path[:MAX_PATH_CHARS],
        "target": entry.target[:128] if entry.target else None,
        "reason": entry.reason[:MAX_REASON_CHARS] if entry.reason else None,
        "status": entry.status,
    }


def _entry_dict(row: Any) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": t.parse_utc_text(row.at_utc).isoformat(),
        "request_id": row.request_id,
        "who": {"kind": row.actor_kind, "actor": row.actor, "key_id": row.key_id,
                "roles": [r for r in row.roles.split(",") if r]},
        "action": row.action,
        "method": row.method,
        "path": row.path,
        "target": row.target,
        "reason": row.reason,
        "status": row.status,
    }

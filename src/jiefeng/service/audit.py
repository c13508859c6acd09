"""The audit log: who did what, to what, when, why, under which request id.

Append-only by construction: this module can insert and read, nothing else, and the database
refuses UPDATE and DELETE on the table (triggers from migration 0002).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from jiefeng.domain.event_kinds import COMMAND_TYPES  # not via security: no jwt for a file ingest
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


    def search(self, *, actor: str | None = None, action: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        """The newest entries first that match every filter given (actor and action exactly,
        time as [since, until))."""
        assert 1 <= limit <= MAX_PAGE
        c = st.audit_log.c
        query = select(st.audit_log)
        if actor:
            query = query.where(c.actor == actor)
        if action:
            query = query.where(c.action == action)
        if since is not None:
            query = query.where(c.at_utc >= t.utc_text(since))
        if until is not None:
            query = query.where(c.at_utc < t.utc_text(until))
        with self.store.read() as connection:
            rows = connection.execute(query.order_by(c.seq.desc()).limit(limit))
            return [_entry_dict(row) for row in rows]


_COMMAND_TARGETS = ("account_id", "appeal_id", "window_id", "campaign_id", "sweep_id", "version")


def is_command(raw: Any) -> bool:
    """An operator command or a customer's appeal: audited whichever path it comes through."""
    return isinstance(raw, dict) and raw.get("type") in COMMAND_TYPES


def command_fields(raw: dict[str, Any]) -> tuple[str, str | None, str | None]:
    """The audit entry's (action, target, reason) for a command sent as an event: action
    `events.<type>`; target its account, appeal, window, campaign, sweep or policy version;
    reason its `reason`, `statement` or `criteria`."""
    target = next((str(raw[k]) for k in _COMMAND_TARGETS if isinstance(raw.get(k), str)), None)
    reason = next((raw[k] for k in ("reason", "statement", "criteria")
                   if isinstance(raw.get(k), str) and raw[k]), None)
    return f"events.{raw['type']}", target, reason


# One search for any command type: a third of the time of one `in` per type, on every line.
_COMMAND_TYPE_BYTES = re.compile(b"|".join(re.escape(c.encode()) for c in sorted(COMMAND_TYPES)))


def mentions_command(line: bytes) -> bool:
    """Whether a line of a file may hold a command: a substring search, no decoding. The
    CLI keeps these lines (few) to audit the accepted ones after the ingest."""
    return _COMMAND_TYPE_BYTES.search(line) is not None


def cli_command_entries(lines: Sequence[tuple[int, str | bytes]], accepted_lines: set[int],
                        user: str, at: dt.datetime) -> list[AuditEntry]:
    """Audit entries for the commands a CLI ingest applied (operator commands and appeals):
    kind `cli`, actor the OS user, as for the other CLI commands. The CLI is the trusted local
    path; this records what came through it. Only lines mentioning a command type are decoded
    again, so a file of customer activity costs a substring search per line."""
    request_id = f"cli-{uuid.uuid4().hex}"
    entries = []
    for number, line in lines:
        if number not in accepted_lines:
            continue
        # The CLI hands over the file's lines as bytes; other callers may pass text.
        if not (mentions_command(line) if isinstance(line, bytes)
                else any(c in line for c in COMMAND_TYPES)):
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            continue
        if not is_command(raw):
            continue
        action, target, reason = command_fields(raw)
        entries.append(AuditEntry(
            at=at, request_id=request_id, actor_kind="cli", actor=user, key_id=None,
            roles=(), action=action, method="CLI",
            path=f"jiefeng ingest (line {number})", target=target, reason=reason, status=0))
    return entries


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

"""What one ingest batch writes, computed apart from where it is written.

A batch folds its events against account states and produces a `WriteSet`: the accepted event
rows, the account rows (with snapshots where due), the effects and the appeal rows. The
sequential path applies it in the same transaction it was computed in. The pipelined file
ingest (see `jiefeng.service.pipeline`) computes it in one process and applies it in another;
there `verify` first checks, under the write lock, that nothing else wrote to those accounts or
to the portfolio's scopes in between. A write set is plain data, so it pickles cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from jiefeng.domain.scopes import SCOPE_TYPES
from jiefeng.store.sql import AccountValues, EventValues, SqlStore


@dataclass
class WriteSet:
    ingested_at_utc: str
    events: list[EventValues] = field(default_factory=list)
    accounts: AccountValues = field(default_factory=lambda: AccountValues([], [], []))
    # account_id -> the row revision the new state was computed from (None: a new account).
    base_revisions: dict[str, int | None] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)  # replayed whole: stored effects replaced
    effects: list[tuple] = field(default_factory=list)
    appeals: list[dict[str, Any]] = field(default_factory=list)
    exclusive: bool = False  # it holds operator commands that change the portfolio's scopes
    # The scope marker (SqlStore.scope_marker) of the scopes the batch was folded against
    # (pipelined batches only; None: computed under the locks, nothing to check).
    scope_marker: tuple[int, int] | None = None

    @property
    def account_ids(self) -> list[str]:
        return list(self.base_revisions)


def apply(store: SqlStore, connection: Connection, write_set: WriteSet) -> None:
    """Write it all in the caller's transaction."""
    store.append_events(connection, write_set.events, write_set.ingested_at_utc)
    store.write_account_values(connection, write_set.accounts)
    for account_id in write_set.rebuilt:
        store.delete_effects(connection, account_id)
    store.insert_effect_rows(connection, write_set.effects)
    for appeal in write_set.appeals:
        store.upsert_appeal(connection, appeal)


def verify(store: SqlStore, connection: Connection, write_set: WriteSet,
           scope_marker: tuple[int, int] | None) -> str | None:
    """Why this write set can no longer be applied as computed, or None if it can.

    `scope_marker` is the marker the scopes it was folded against correspond to (None: not
    checked). Run under the write lock (SQLite) or the account locks (PostgreSQL), before
    `apply`. Event ids already taken are caught by the log's unique key when the rows go in."""
    if scope_marker is not None:
        marker = store.scope_marker(connection, SCOPE_TYPES)
        if marker != scope_marker:
            return "operator commands were stored meanwhile"
    rows = store.account_rows(connection, write_set.account_ids)
    for account_id, base in write_set.base_revisions.items():
        row = rows.get(account_id)
        current = row.revision if row is not None else None
        if current != base:
            return f"account {account_id} was written meanwhile"
    return None

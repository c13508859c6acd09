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

from jiefeng.domain.event_kinds import SCOPE_TYPES
from jiefeng.store import checkpoints
from jiefeng.store.checkpoints import Checkpoint
from jiefeng.store.sql import SNAPSHOT_FORMAT, AccountValues, EventValues, SqlStore


@dataclass
class WriteSet:
    ingested_at_utc: str
    events: list[EventValues] = field(default_factory=list)
    # Each event's position in the batch it came in (a batch folded in parts is merged back
    # into one log order by it: see jiefeng.service.pipeline.merged).
    event_positions: list[int] = field(default_factory=list)
    accounts: AccountValues = field(default_factory=lambda: AccountValues([], [], []))
    # account_id -> the row revision the new state was computed from (None: a new account).
    base_revisions: dict[str, int | None] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)  # replayed: stored effects replaced
    # account_id -> its effect rows a replay kept (those before the checkpoint it started
    # from); absent: none kept.
    effects_kept: dict[str, int] = field(default_factory=dict)
    # account_id -> (the checkpoint a replay started from, or None, and those it took): the
    # account's checkpoints after the first are replaced by the others.
    checkpoints: dict[str, tuple[tuple[str, int] | None, list[Checkpoint]]] = field(
        default_factory=dict)
    # The earliest operator command of the batch that changes the scopes (UTC text): every
    # checkpoint from then on is dropped before this batch's own are written.
    checkpoints_stale_from: str | None = None
    effects: list[tuple] = field(default_factory=list)
    appeals: list[dict[str, Any]] = field(default_factory=list)
    exclusive: bool = False  # it holds operator commands that change the portfolio's scopes
    # The scope marker (SqlStore.scope_marker) of the scopes the batch was folded against
    # (pipelined batches only; None: computed under the locks, nothing to check). The pipeline
    # may send ("after", n): the marker its own batch n left (see jiefeng.service.pipeline).
    scope_marker: tuple | None = None
    # A batch with operator commands folded from a read snapshot (pipelined): (since, count),
    # the accounts whose clock is at or after `since` (UTC text; None: every account) the
    # batch saw. More at commit means another writer opened or moved an account past a
    # command meanwhile, without it: the batch is folded again under the locks.
    guard: tuple[str | None, int] | None = None

    @property
    def account_ids(self) -> list[str]:
        return list(self.base_revisions)


def apply(store: SqlStore, connection: Connection, write_set: WriteSet) -> None:
    """Write it all in the caller's transaction."""
    store.append_events(connection, write_set.events, write_set.ingested_at_utc)
    store.write_account_values(connection, write_set.accounts)
    for account_id in write_set.rebuilt:
        store.delete_effects(connection, account_id, write_set.effects_kept.get(account_id, 0))
    if write_set.checkpoints_stale_from is not None:
        checkpoints.drop_from(connection, write_set.checkpoints_stale_from)
    for account_id, (after, rows) in write_set.checkpoints.items():
        checkpoints.replace_after(connection, account_id, after, rows, SNAPSHOT_FORMAT)
    store.insert_effect_rows(connection, write_set.effects)
    for appeal in write_set.appeals:
        store.upsert_appeal(connection, appeal)


def verify(store: SqlStore, connection: Connection, write_set: WriteSet,
           scope_marker: tuple | None) -> str | None:
    """Why this write set can no longer be applied as computed, or None if it can.

    `scope_marker` is the marker the scopes it was folded against correspond to (None: not
    checked). Run under the write lock (SQLite) or the account locks (PostgreSQL), before
    `apply`. Event ids already taken are caught by the log's unique key when the rows go in."""
    if scope_marker is not None:
        marker = store.scope_marker(connection, SCOPE_TYPES)
        if marker != scope_marker:
            return "operator commands were stored meanwhile"
    if write_set.guard is not None:
        since, expected = write_set.guard
        if store.count_accounts(connection, clock_from=since) != expected:
            return "an account was opened or moved past an operator command meanwhile"
    rows = store.account_rows(connection, write_set.account_ids)
    for account_id, base in write_set.base_revisions.items():
        row = rows.get(account_id)
        current = row.revision if row is not None else None
        if current != base:
            return f"account {account_id} was written meanwhile"
    return None

"""Loading account states: process-local cache, snapshot blob, then the events after it.

An account row carries a `revision` bumped on every write. A state cached by this process is
reused while the row's revision still matches, so a process ingesting a stream never reloads
what it already holds. Otherwise the state is the stored snapshot plus the events logged after
it, folded in time order, advanced to the row's clock. Effects of that catch-up are discarded:
they were stored when the events were first applied. Purchases are folded with the outcome
recorded when they were first decided (`parse_recorded`): a catch-up never decides again.

Snapshots are written every SNAPSHOT_EVERY_EVENTS events (FILE_SNAPSHOT_EVERY_EVENTS when a
file is ingested), and whenever an account was replayed
for a late event (its events after the snapshot are then no longer a simple continuation).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection

from jiefeng.domain import core
from jiefeng.domain import events as ev
from jiefeng.domain.invariants import check_invariants
from jiefeng.domain.outcomes import Decided, outcome_from_text
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy
from jiefeng.service.decision_order import EPOCH
from jiefeng.store.sql import AccountRow, EventRecord, SqlStore, decode_state

SNAPSHOT_EVERY_EVENTS = 64  # bounds a reader's catch-up fold on a cache miss
# Bulk file ingest snapshots less often: pickling states was a tenth of its CPU. A reader that
# misses its cache after an import folds at most this many events once, then caches the state.
FILE_SNAPSHOT_EVERY_EVENTS = 256
# Accounts whose states a cache keeps (LRU). A state is about 10 KB once an account has 18
# months of history (statements, holds, appeals, purchases packed), about twice that resident
# with the allocator's overheads, so 50,000 accounts are up to about 1 GB a cache;
# `JIEFENG_CACHE_ACCOUNTS` lowers it on a small machine, at the cost of reloading (snapshot
# plus catch-up fold) the accounts it lets go.
MAX_CACHED_ACCOUNTS = 50_000
CACHE_ACCOUNTS_ENV = "JIEFENG_CACHE_ACCOUNTS"
MIN_CACHED_ACCOUNTS = 100
MAX_CACHE_ACCOUNTS_SETTING = 10_000_000


def cached_accounts_setting() -> int:
    """The accounts a state cache keeps: `JIEFENG_CACHE_ACCOUNTS` if set, else
    MAX_CACHED_ACCOUNTS. ValueError naming the variable if it is not a whole number in range."""
    text = os.environ.get(CACHE_ACCOUNTS_ENV, "").strip()
    if not text:
        return MAX_CACHED_ACCOUNTS
    if not text.isdigit() or not MIN_CACHED_ACCOUNTS <= int(text) <= MAX_CACHE_ACCOUNTS_SETTING:
        raise ValueError(f"{CACHE_ACCOUNTS_ENV}: give a whole number from {MIN_CACHED_ACCOUNTS} "
                         f"to {MAX_CACHE_ACCOUNTS_SETTING} (default {MAX_CACHED_ACCOUNTS})")
    return int(text)


class StateCache:
    """account_id -> (revision, state). The caller owns the states it gets: a failed
    transaction must `clear()` the cache, since its states may be half-updated."""

    def __init__(self, max_accounts: int = MAX_CACHED_ACCOUNTS):
        self.max_accounts = max_accounts
        self._entries: OrderedDict[str, tuple[int, AccountState]] = OrderedDict()
        # The API serves requests on several threads; entries and LRU order change together.
        self._lock = threading.Lock()

    def get(self, account_id: str, revision: int) -> AccountState | None:
        with self._lock:
            entry = self._entries.get(account_id)
            if entry is None or entry[0] != revision:
                return None
            self._entries.move_to_end(account_id)
            return entry[1]

    def put(self, account_id: str, revision: int, state: AccountState) -> None:
        with self._lock:
            self._entries[account_id] = (revision, state)
            self._entries.move_to_end(account_id)
            while len(self._entries) > self.max_accounts:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def parse_stored(body: str, account_id: str | None = None):
    """Parse a stored event; an appeal decision gets the account the store routed it to."""
    event = ev.parse_stored_json(body)
    if account_id is not None and isinstance(event, ev.AppealDecided) and event.account_id is None:
        event = event.model_copy(update={"account_id": account_id})
    return event


def parse_stored_rows(rows: Iterable[tuple[str, str, str, str]]) -> list[Any]:
    """Stored account events from their rows, (account_id, type, at_utc, body) as
    `SqlStore.accounts_event_rows` reads them: the same events as `parse_stored(body,
    account_id)` of each, most read by their type's own validator (see
    ev.parse_stored_rows)."""
    return ev.parse_stored_rows(rows, dt.datetime.fromisoformat, parse_stored)


def _utc_of_micros(micros: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=micros)


def parse_exported_rows(rows: Iterable[tuple[str, str, int, str]]) -> list[Any]:
    """`parse_stored_rows` of an export's rows, their at_utc as microseconds since the epoch
    (pyarrow turns a timestamp into a datetime in about 5 us, the integer in a few hundredths
    of that)."""
    return ev.parse_stored_rows(rows, _utc_of_micros, parse_stored)


def parse_recorded(record: EventRecord, account_id: str | None = None):
    """A stored event as a fold must see it: a purchase with a recorded outcome comes as
    `Decided`, so the fold reuses the decision (see jiefeng.domain.outcomes)."""
    body, outcome = record
    event = parse_stored(body, account_id)
    if outcome is not None and type(event) is ev.Purchase:
        return Decided(event, outcome_from_text(outcome))
    return event


def load_states(
    store: SqlStore,
    connection: Connection,
    account_ids: Iterable[str],
    policy: Policy,
    scopes: Scopes,
    cache: StateCache | None = None,
    remember: bool = False,
) -> tuple[dict[str, AccountState], dict[str, AccountRow]]:
    """States of the accounts that exist (absent ids are new), and their rows.

    With `remember`, states loaded from the store enter `cache` at once: for readers, who never
    mutate them. Writers put states back only after their transaction commits.
    """
    rows = store.account_rows(connection, account_ids)
    states: dict[str, AccountState] = {}
    to_load: list[str] = []
    for account_id, row in rows.items():
        cached = cache.get(account_id, row.revision) if cache is not None else None
        if cached is not None:
            states[account_id] = cached
        else:
            to_load.append(account_id)
    blobs = store.load_blobs(connection, to_load) if to_load else {}
    for account_id in to_load:
        row = rows[account_id]
        blob = blobs.get(account_id)
        if blob is not None and row.snapshot_format == rows[account_id].snapshot_format:
            state = decode_state(blob)
            check_invariants(state)  # a snapshot is trusted only once it passes them
        else:
            state = core.new_account(account_id)
        pending = store.account_event_records_from(connection, account_id,
                                                   state.events_applied)
        discarded: list = []
        for record in pending:
            core.apply_event(state, parse_recorded(record, account_id), policy, scopes,
                             discarded)
        core.advance_to(state, row.clock, policy, scopes, discarded)
        states[account_id] = state
        if remember and cache is not None:
            cache.put(account_id, row.revision, state)
    return states, rows

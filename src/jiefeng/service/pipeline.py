"""Pipelined file ingest: this process folds batch n+1 while a writer process commits batch n.

Ingesting a file is CPU work in Python (validate, fold, build rows) and then SQL work (insert,
commit). One process does them one after the other; here they overlap on two cores. The result
is the one the sequential path (`jiefeng.service.ingest.ingest`) gives, batch for batch:

- This process computes each batch exactly as the sequential path does, against the store as
  it will be once the batches still in flight have committed: `OverlayStore` adds their events,
  account rows and appeals to what the store returns. States of accounts in flight come from
  the state cache, which the batch updated.
- The writer applies each batch's `WriteSet` in its own transaction, in order, after checking
  under the write lock that nobody else wrote to those accounts or stored operator commands in
  between (`writeset.verify`); an event id stored meanwhile fails the log's unique key.
- A batch with operator commands (maintenance, migrations, sweeps) is pipelined too. It reads
  accounts beyond its own events (those a command reaches back to, every account a sweep
  advances), so its write set carries a guard: the number of accounts at or past its earliest
  command (every account, for a sweep) it saw. Another writer that opened or moved an account
  past the command meanwhile, without it, changes that number, and the writer reports a
  conflict: the batch is folded again under the locks. The batches after it are folded against
  the scopes it left, and the writer checks them against the marker its commit left
  (`("after", n)`). A batch that activates a policy version still goes under the locks once the
  batches before it commit (only the store resolves the version's policy).
- If the writer reports a conflict or an error, nothing after the last committed batch is
  kept: the writer skips the rest, this process drops its caches, and the remaining batches go
  through the sequential path, which takes the locks itself. A batch that committed but whose
  acknowledgement was lost is then reported as duplicates, as a retried file would be.

Why one long module: the folding side (the overlay of batches in flight, the guard) and the
writer side (the checks it runs under the lock) are one protocol; each check on one side is
read against what the other side sends.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import pickle
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from jiefeng.domain.scopes import SCOPE_TYPES, Scopes
from jiefeng.policy.schema import Policy
from jiefeng.service import writeset
from jiefeng.service.ingest import (
    BatchIngest,
    IngestReport,
    ItemResult,
    ScopeCache,
    _ingest_batch,
    _route,
    batch_results,
    decision_batches,
    fresh_candidates,
    ingest_batches,
    parse_items,
)
from jiefeng.service.states import SNAPSHOT_EVERY_EVENTS, StateCache
from jiefeng.store.checkpoints import Checkpoint
from jiefeng.store.schema import utc_text
from jiefeng.store.sql import AccountRow, EventRecord, LogRecord, SqlStore

log = logging.getLogger(__name__)

# Batches computed ahead of the writer. Three absorb the writer's start-up and a slow commit;
# more would only hold memory.
PIPELINE_DEPTH = 3

COMMITTED, CONFLICT, FAILED, SKIPPED = "committed", "conflict", "failed", "skipped"
AFTER_BATCH = "after"  # a scope marker given as "the one batch n of this file left"
# A batch that activates a policy version goes under the locks, after the batches before it
# commit: the activation carries the stored version's policy, which only the store resolves.
LOCKED_TYPES = frozenset({"policy_activated"})


@dataclass
class _InFlight:
    """What one batch sent to the writer adds to the store once it commits."""

    number: int
    results: list[ItemResult]
    size: int
    bodies: dict[str, str] = field(default_factory=dict)  # event_id -> body
    # account_id -> (body, outcome) of its events, in log order
    account_records: dict[str, list[EventRecord]] = field(default_factory=dict)
    rows: dict[str, AccountRow] = field(default_factory=dict)
    appeals: dict[str, str] = field(default_factory=dict)  # appeal_id -> account_id
    # The portfolio's scopes once its operator commands are in (None: it has none): the
    # batches after it are folded against these until it commits.
    scopes: Scopes | None = None


class OverlayStore:
    """The store's read side as a batch must see it: the store plus the batches in flight.

    Every merge is idempotent (by event id, body or revision), so a batch that commits while
    this process reads is neither missed nor counted twice. Locks are the writer's job."""

    def __init__(self, store: SqlStore, in_flight: Iterable[_InFlight]):
        self.store = store
        self.dialect = store.dialect
        self.in_flight = list(in_flight)

    def lock_portfolio(self, connection: Connection, *, exclusive: bool = True) -> None:
        return None

    def lock_accounts(self, connection: Connection, account_ids: Iterable[str]) -> None:
        return None

    def existing_bodies(self, connection: Connection, event_ids: Sequence[str]) -> dict[str, str]:
        found = self.store.existing_bodies(connection, event_ids)
        for batch in self.in_flight:
            for event_id in event_ids:
                body = batch.bodies.get(event_id)
                if body is not None:
                    found.setdefault(event_id, body)
        return found

    def appeal_account(self, connection: Connection, appeal_id: str) -> str | None:
        for batch in self.in_flight:
            if appeal_id in batch.appeals:
                return batch.appeals[appeal_id]
        return self.store.appeal_account(connection, appeal_id)

    def account_rows(self, connection: Connection,
                     account_ids: Iterable[str]) -> dict[str, AccountRow]:
        ids = list(account_ids)
        rows = self.store.account_rows(connection, ids)
        for batch in self.in_flight:  # oldest first: the newest revision wins
            for account_id in ids:
                row = batch.rows.get(account_id)
                if row is not None:
                    stored = rows.get(account_id)
                    if stored is None or stored.revision < row.revision:
                        rows[account_id] = row
        return rows

    def _in_flight_accounts(self) -> set[str]:
        return {a for batch in self.in_flight for a in batch.rows}

    def load_blobs(self, connection: Connection, account_ids: Sequence[str]) -> dict[str, bytes]:
        # The batch that put an account in flight left its state in the cache; a miss here
        # means the cache let it go, and the store's snapshot would be older than the row.
        if self._in_flight_accounts().intersection(account_ids):
            raise _Diverged("an account in flight left the state cache")
        return self.store.load_blobs(connection, account_ids)

    def nearest_checkpoint(self, connection: Connection, account_id: str,
                           before: dt.datetime) -> Checkpoint | None:
        # A batch in flight may replace the account's checkpoints: fold it from the start.
        if account_id in self._in_flight_accounts():
            return None
        return self.store.nearest_checkpoint(connection, account_id, before)

    def account_event_log(self, connection: Connection, account_id: str,
                          after: tuple[str, int] | None = None) -> list[LogRecord]:
        records = self.store.account_event_log(connection, account_id, after)
        if after is not None:  # only for accounts not in flight (see nearest_checkpoint)
            return records
        known = {body for _, body, _ in records}
        for batch in self.in_flight:  # not stored yet: no seq, so no checkpoint after them
            records.extend((None, body, outcome)
                           for body, outcome in batch.account_records.get(account_id, ())
                           if body not in known)
        return records

    def account_ids(self, connection: Connection, *, clock_after: dt.datetime | None = None,
                    segment: str | None = None) -> list[str]:
        assert segment is None, "ingest asks by clock only"
        found = set(self.store.account_ids(connection, clock_after=clock_after))
        for batch in self.in_flight:
            found.update(a for a, row in batch.rows.items()
                         if clock_after is None or row.clock >= clock_after)
        return sorted(found)

    def __getattr__(self, name: str) -> Any:
        # Anything else (account events after a snapshot) is read from the store as it is.
        return getattr(self.store, name)


class _Diverged(Exception):
    """This process can no longer compute the next batch as the sequential path would."""


def _writer_main(url: str, connection: Any) -> None:
    """The writer process: apply write sets in order, each in its own verified transaction."""
    store = SqlStore(url, upgrade=False)  # the parent brought the schema up to date
    failed = False
    produced: dict[int, Any] = {}  # batch number -> the scope marker its commit left
    try:
        while True:
            message = connection.recv_bytes()
            if not message:
                break
            number, write_set = pickle.loads(message)
            del message  # a sweep's batch is tens of MB: not held twice while it is written
            if failed:
                connection.send((SKIPPED, number, None))
                continue
            try:
                with store.transaction() as transaction:
                    store.lock_portfolio(transaction, exclusive=write_set.exclusive)
                    store.lock_accounts(transaction, write_set.account_ids)
                    # The scopes it was folded against must still be the store's: those read
                    # from it, or those an earlier batch of this file stored ("after", n).
                    expected = write_set.scope_marker
                    if expected is not None and expected[0] == AFTER_BATCH:
                        expected = produced.get(expected[1])
                        if expected is None:
                            raise _Diverged("folded against the commands of a batch that did "
                                            "not commit")
                    reason = writeset.verify(store, transaction, write_set, expected)
                    if reason is not None:
                        raise _Diverged(reason)
                    writeset.apply(store, transaction, write_set)
                    left = (store.scope_marker(transaction, SCOPE_TYPES)
                            if write_set.exclusive else None)
                if left is not None:
                    produced[number] = left  # committed: the next batches were folded on it
            except _Diverged as conflict:
                failed = True
                connection.send((CONFLICT, number, str(conflict)))
            except IntegrityError:
                failed = True
                connection.send((CONFLICT, number, "an event id was stored meanwhile"))
            except Exception as error:  # noqa: BLE001 - reported; the parent retries in order
                failed = True
                connection.send((FAILED, number, f"{type(error).__name__}: {error}"))
            else:
                connection.send((COMMITTED, number, None))
            del write_set
            _give_back_freed_memory()
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        store.close()


def _give_back_freed_memory() -> None:
    """Return to the system what a batch freed (glibc keeps it, fragmented, for reuse): a
    writer's peak otherwise creeps up batch after batch."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def _load_malloc_trim() -> Any:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to give back this way
        return None


_malloc_trim = _load_malloc_trim()


def _writer_process(url: str, connection: Any) -> None:
    _writer_main(url, connection)
    # Everything is committed and acknowledged: skip the interpreter's teardown, which the
    # parent would otherwise wait for at the end of every file.
    os._exit(0)


class _Writer:
    def __init__(self, url: str):
        context = multiprocessing.get_context("spawn")  # no inherited connections or threads
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_writer_process, args=(url, child), daemon=True,
                                       name="jiefeng-ingest-writer")
        self.process.start()
        child.close()
        # A write set is megabytes and the pipe holds kilobytes: a send waits until the writer
        # has read it all, which is after it committed the batch before. A thread does that
        # waiting, so this process goes on folding. Only that thread writes to the pipe.
        self.outbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.sender = threading.Thread(target=self._send_all, name="jiefeng-ingest-sender",
                                       daemon=True)
        self.sender.start()

    def _send_all(self) -> None:
        while True:
            message = self.outbox.get()
            try:
                self.connection.send_bytes(message)
            except OSError:
                return  # the writer is gone: receive() says so
            if not message:
                return

    def send(self, number: int, write_set: writeset.WriteSet) -> None:
        self.outbox.put(pickle.dumps((number, write_set), protocol=5))

    def receive(self) -> tuple[str, int, str | None]:
        try:
            return self.connection.recv()
        except (EOFError, OSError):
            return FAILED, -1, "the writer process ended"

    def close(self) -> None:
        self.outbox.put(b"")  # the end: the writer returns once it has read everything before
        self.sender.join(timeout=30)
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
        self.connection.close()


def ingest_pipelined(
    store: SqlStore,
    items: Sequence[tuple[int, Any]],
    policy: Policy,
    now: Callable[[], dt.datetime],
    cache: StateCache,
    scope_cache: ScopeCache,
    batch_events: int,
    progress: Callable[[int], None] | None = None,
    snapshot_every: int = SNAPSHOT_EVERY_EVENTS,
) -> IngestReport:
    """Ingest `items` in batches of `batch_events`, as `ingest` does, on two cores. The report
    holds the items' results; the effects are in the store."""
    return ingest_batches_pipelined(store, decision_batches(items, batch_events), policy, now,
                                    cache, scope_cache, progress, snapshot_every)


def ingest_batches_pipelined(
    store: SqlStore,
    batches: Sequence[Sequence[tuple[int, Any]]],
    policy: Policy,
    now: Callable[[], dt.datetime],
    cache: StateCache,
    scope_cache: ScopeCache,
    progress: Callable[[int], None] | None = None,
    snapshot_every: int = SNAPSHOT_EVERY_EVENTS,
    report: IngestReport | None = None,
) -> IngestReport:
    """Ingest batches already cut (`decision_batches`; a file's `Batches`, read as they are
    taken) on two cores, into `report` (default a new IngestReport)."""
    report = report if report is not None else IngestReport()
    in_flight: deque[_InFlight] = deque()
    writer = _Writer(store.url)
    resume_at: int | None = None  # first batch the sequential path must redo

    def settle(until_at_most: int) -> None:
        """Take acknowledgements until at most `until_at_most` batches are in flight."""
        nonlocal resume_at
        while len(in_flight) > until_at_most:
            status, number, reason = writer.receive()
            batch = in_flight.popleft()
            if status in (CONFLICT, FAILED):
                log.warning("pipelined ingest stops at batch %d (%s); the rest goes one "
                            "transaction at a time", batch.number, reason)
            if status == COMMITTED and number == batch.number and resume_at is None:
                report.add(batch.results)  # effects stay in the store only
                if progress:
                    progress(batch.size)
            elif resume_at is None:
                resume_at = batch.number
            if status == FAILED and number == -1:  # the writer is gone: nothing more comes
                in_flight.clear()

    try:
        for number, batch_items in enumerate(batches):
            results, candidates = parse_items(batch_items)
            if any(c.event.type in LOCKED_TYPES for c in candidates):
                # Folded under the locks, after everything before it has committed.
                settle(0)
                if resume_at is not None:
                    break
                done = _ingest_batch(store, batch_items, policy, now, cache, scope_cache,
                                     snapshot_every)
                report.add(done.results)
                if progress:
                    progress(len(batch_items))
                continue
            settle(PIPELINE_DEPTH - 1)
            if resume_at is not None:
                break
            try:
                sent = _compute(store, writer, number, batch_items, results, candidates, policy,
                                now, cache, scope_cache, in_flight, snapshot_every)
            except _Diverged as diverged:
                log.warning("pipelined ingest stops at batch %d (%s); the rest goes one "
                            "transaction at a time", number, diverged)
                settle(0)
                resume_at = number if resume_at is None else resume_at
                break
            in_flight.append(sent)
        settle(0)
    finally:
        writer.close()
    if resume_at is not None:
        # Start over from what the store holds, with the locks the sequential path takes.
        cache.clear()
        ingest_batches(store, batches[resume_at:], policy, now, cache, scope_cache,
                       snapshot_every, progress, keep_effects=False, report=report)
    if len(batches) > 1:
        report.results.sort(key=lambda result: result.position)  # as sent, not as decided
    return report


def _guard(overlay: OverlayStore, connection: Connection,
           fresh: Sequence[Any]) -> tuple[str | None, int] | None:
    """For a batch with operator commands: the accounts it must find unchanged in number at
    commit (see WriteSet.guard). A sweep reaches every account; another command, those whose
    clock is at or after it (they are folded again with it)."""
    commands = [c.event for c in fresh if c.event.type in SCOPE_TYPES]
    if not commands:
        return None
    if any(event.type == "policy_sweep" for event in commands):
        return None, len(overlay.account_ids(connection))
    earliest = min(event.at for event in commands)
    return utc_text(earliest), len(overlay.account_ids(connection, clock_after=earliest))


def _compute(store: SqlStore, writer: _Writer, number: int, items: Sequence[tuple[int, Any]],
             results: dict[int, ItemResult], candidates: list, policy: Policy,
             now: Callable[[], dt.datetime], cache: StateCache, scope_cache: ScopeCache,
             in_flight: deque[_InFlight], snapshot_every: int) -> _InFlight:
    """Fold one batch against the store plus what is in flight and hand it to the writer."""
    overlay = OverlayStore(store, in_flight)
    with store.read() as connection:
        for candidate in candidates:
            candidate.event = _route(overlay, connection, candidate.event)
        fresh = fresh_candidates(overlay, connection, items, candidates, results)
        # The scopes: those the newest batch in flight with operator commands left, else the
        # store's (every batch in flight was folded against them too).
        changed = next((b for b in reversed(in_flight) if b.scopes is not None), None)
        if changed is not None:
            marker, scopes = (AFTER_BATCH, changed.number), changed.scopes
        else:
            marker, scopes = scope_cache.marked(store, connection)
        guard = _guard(overlay, connection, fresh)
        batch = BatchIngest(overlay, connection, policy, now(), scopes, cache, snapshot_every)
        try:
            item_results = batch_results(batch, fresh, items, results)
            write_set = batch.write_set()
        except BaseException:
            cache.clear()  # states were updated in place and will not be written
            raise
    write_set.scope_marker = marker
    write_set.guard = guard
    sent = _InFlight(number, item_results, len(items), rows=batch.new_rows,
                     scopes=batch.scopes if guard is not None else None)
    for event_id, account_id, _kind, _at, _actor, body, outcome in write_set.events:
        sent.bodies[event_id] = body
        if account_id is not None:
            sent.account_records.setdefault(account_id, []).append((body, outcome))
    sent.appeals = {row["appeal_id"]: row["account_id"] for row in write_set.appeals}
    # The states move on now: the next batch folds on top of them. If the writer fails, the
    # cache is cleared before anything else reads it.
    for account_id, revision, state in batch.cache_updates:
        cache.put(account_id, revision, state)
    writer.send(number, write_set)
    return sent

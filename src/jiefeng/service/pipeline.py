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
import gc
import heapq
import importlib
import logging
import os
import pickle
import queue
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from jiefeng.domain.scopes import SCOPE_TYPES, Scopes
from jiefeng.policy.schema import Policy
from jiefeng.service import writeset
from jiefeng.service.decision_order import owner_of
from jiefeng.service.event_file import EventFile, named_file, scan_file_part
from jiefeng.service.ingest import (
    AcceptedLines,
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
    tie_rank,
)
from jiefeng.service.pipeline_processes import HELPER, WRITER, ChildProcess, Launched
from jiefeng.service.states import SNAPSHOT_EVERY_EVENTS, StateCache
from jiefeng.store.checkpoints import Checkpoint
from jiefeng.store.schema import utc_text
from jiefeng.store.sql import AccountRow, EventRecord, EventValues, LogRecord, SqlStore

log = logging.getLogger(__name__)

# Batches computed ahead of the writer. Three absorb the writer's start-up and a slow commit;
# more would only hold memory.
PIPELINE_DEPTH = 3

COMMITTED, CONFLICT, FAILED, SKIPPED = "committed", "conflict", "failed", "skipped"
SCAN = "scan"  # a message to the helper: index part of the file (`_FoldHelper.start_scan`)
WARM = "warm"  # a message to the helper: import modules now (`_FoldHelper.expect_commands`)
# What reading a command of these types imports on first use, and what its line always holds.
# A sweep's criteria are compiled with sqlglot: about 70 ms of CPU in each folding process.
_FIRST_READ_IMPORTS = {b'"policy_sweep"': ("jiefeng.policy.criteria",)}
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
    # The helper's accepted lines, compactly (`AcceptedLines`), besides `results`.
    accepted: list[AcceptedLines] = field(default_factory=list)
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
                if isinstance(write_set, list):  # a batch folded in parts, pickled apart
                    write_set = merged([pickle.loads(part) for part in write_set])
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


def merged(parts: list[writeset.WriteSet]) -> writeset.WriteSet:
    """The write set of a batch folded in parts (see `_FoldHelper`): each part holds the
    accounts one process owns, the batch's operator commands recorded by one of them. The log
    takes the events in the order one fold of the whole batch gives them (by time and tie
    rank, then by their place in the batch); the rest is per account and simply joined."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if any(p.scope_marker != first.scope_marker for p in parts):
        raise _Diverged("the parts of a batch were folded against different scopes")
    if any(p.checkpoints_stale_from != first.checkpoints_stale_from for p in parts):
        raise _Diverged("the parts of a batch saw different operator commands")
    seen: set[str] = set()
    for part in parts:
        if not seen.isdisjoint(part.base_revisions):
            raise _Diverged("an account was folded in two parts of a batch")
        seen.update(part.base_revisions)
    whole = writeset.WriteSet(first.ingested_at_utc, scope_marker=first.scope_marker,
                              exclusive=any(p.exclusive for p in parts))
    whole.checkpoints_stale_from = first.checkpoints_stale_from
    guards = [p.guard for p in parts if p.guard is not None]
    if guards:
        if len(guards) != len(parts) or any(g[0] != guards[0][0] for g in guards):
            raise _Diverged("the parts of a batch guard different accounts")
        whole.guard = guards[0][0], sum(g[1] for g in guards)
    ordered = heapq.merge(*(zip(p.events, p.event_positions, strict=True) for p in parts),
                          key=_log_order)
    whole.events = [row for row, _ in ordered]
    for part in parts:
        whole.accounts.extend(part.accounts)
        whole.base_revisions.update(part.base_revisions)
        whole.rebuilt.extend(part.rebuilt)
        whole.effects_kept.update(part.effects_kept)
        whole.checkpoints.update(part.checkpoints)
        whole.effects.extend(part.effects)
        whole.appeals.extend(part.appeals)
    whole.rebuilt.sort()
    return whole


def _log_order(entry: tuple[EventValues, int]) -> tuple[str, int, int]:
    # (at in UTC text, which sorts like the instant; tie rank; place in the batch): the
    # order a batch's events are decided in.
    row, position = entry
    return row[3], tie_rank(row[2]), position


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
    def __init__(self, process: ChildProcess, url: str):
        self.process = process  # started (`launch`), waiting for its setup
        self.connection = process.connection
        self.connection.send((url,))
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

    def send_parts(self, number: int, parts: list[bytes]) -> None:
        """A batch folded in parts: their write sets, each pickled, in decision order."""
        self.outbox.put(pickle.dumps((number, parts), protocol=5))

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


@dataclass
class Processes:
    """The writer and the second folding process (or None) of a pipelined file ingest, started
    ahead of it (`start_processes`) so that their start (a fresh interpreter importing
    jiefeng, about half a second of CPU each) overlaps the caller's reading of the file."""

    writer: _Writer
    helper: _FoldHelper | None

    def close(self) -> None:
        self.writer.close()
        if self.helper is not None:
            self.helper.close()


def start_processes(url: str, policy: Policy, snapshot_every: int,
                    helper_cache_accounts: int | None,
                    launched: Launched | None = None) -> Processes:
    """The writer and (given `helper_cache_accounts`) the second folding process, set up for
    this store and policy: those `launched` ahead (a helper not wanted after all is closed),
    else started now."""
    if launched is None:
        launched = Launched(ChildProcess(WRITER), (ChildProcess(HELPER)
                                                   if helper_cache_accounts is not None
                                                   else None))
    writer = _Writer(launched.writer, url)
    helper = None
    if launched.helper is not None:
        if helper_cache_accounts is None:
            launched.helper.close()
        else:
            helper = _FoldHelper(launched.helper, url, policy, snapshot_every,
                                 helper_cache_accounts)
    return Processes(writer, helper)


def serve(role: str, connection: Any) -> None:
    """A started child's loop (`jiefeng.service.pipeline_child`): wait for its setup, then
    write or fold until told to stop. A child closed before its setup exits at once."""
    try:
        setup = connection.recv()
    except (EOFError, OSError):
        setup = None
    if setup is None:
        os._exit(0)
    if role == WRITER:
        _writer_process(*setup, connection)
    elif role == HELPER:
        _helper_process(*setup, connection)
    raise ValueError(f"no pipeline process of role {role!r}")


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
    helper_cache_accounts: int | None = None,
) -> IngestReport:
    """Ingest `items` in batches of `batch_events`, as `ingest` does, on two cores (with a
    second folding process given `helper_cache_accounts`). The report holds the items'
    results; the effects are in the store."""
    return ingest_batches_pipelined(store, decision_batches(items, batch_events), policy, now,
                                    cache, scope_cache, progress, snapshot_every,
                                    helper_cache_accounts=helper_cache_accounts)


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
    helper_cache_accounts: int | None = None,
    processes: Processes | None = None,
) -> IngestReport:
    """Ingest batches already cut (`decision_batches`; a file's `Batches`, read as they are
    taken) on two cores, into `report` (default a new IngestReport).

    With `helper_cache_accounts`, a second folding process (the helper, with a state cache of
    that many accounts) folds part of each batch while this process folds the rest: see
    `_FoldHelper`. `processes`, started ahead (`start_processes`), are used instead of new
    ones, and closed here either way."""
    report = report if report is not None else IngestReport()
    in_flight: deque[_InFlight] = deque()
    if processes is None:
        processes = start_processes(store.url, policy, snapshot_every, helper_cache_accounts)
    writer, helper = processes.writer, processes.helper
    splitter = _Splitter(store)
    resume_at: int | None = None  # first batch the sequential path must redo
    committed = -1  # the newest batch the writer committed

    def settle(until_at_most: int) -> None:
        """Take acknowledgements until at most `until_at_most` batches are in flight."""
        nonlocal resume_at, committed
        while len(in_flight) > until_at_most:
            status, number, reason = writer.receive()
            batch = in_flight.popleft()
            if status in (CONFLICT, FAILED):
                log.warning("pipelined ingest stops at batch %d (%s); the rest goes one "
                            "transaction at a time", batch.number, reason)
            if status == COMMITTED and number == batch.number and resume_at is None:
                committed = number
                report.add(batch.results)  # effects stay in the store only
                for accepted in batch.accepted:
                    report.add_accepted(accepted)
                if progress:
                    progress(batch.size)
            elif resume_at is None:
                resume_at = batch.number
            if status == FAILED and number == -1:  # the writer is gone: nothing more comes
                in_flight.clear()

    try:
        for number, batch_items in enumerate(batches):
            parts = (splitter.parts(batch_items, _owners(batches, number))
                     if helper is not None else None)
            if parts is None:
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
                if parts is not None:
                    assert helper is not None
                    sent = _fold_in_parts(store, writer, helper, number, parts, policy, now(),
                                          cache, scope_cache, in_flight, snapshot_every,
                                          committed)
                else:
                    sent = _compute(store, writer, number, batch_items, results, candidates,
                                    policy, now, cache, scope_cache, in_flight, snapshot_every)
            except _Diverged as diverged:
                log.warning("pipelined ingest stops at batch %d (%s); the rest goes one "
                            "transaction at a time", number, diverged)
                settle(0)
                resume_at = number if resume_at is None else resume_at
                break
            in_flight.append(sent)
        settle(0)
    finally:
        processes.close()
    if resume_at is not None:
        # Start over from what the store holds, with the locks the sequential path takes.
        cache.clear()
        ingest_batches(store, batches[resume_at:], policy, now, cache, scope_cache,
                       snapshot_every, progress, keep_effects=False, report=report)
    if len(batches) > 1:
        report.results.sort(key=lambda result: result.position)  # as sent, not as decided
    return report


def _guard(overlay: OverlayStore, connection: Connection, fresh: Sequence[Any],
           owns: Callable[[str], bool] | None = None) -> tuple[str | None, int] | None:
    """For a batch with operator commands: the accounts it must find unchanged in number at
    commit (see WriteSet.guard). A sweep reaches every account; another command, those whose
    clock is at or after it (they are folded again with it). A part of a batch counts the
    accounts it `owns`; the parts' counts add up (`merged`)."""
    commands = [c.event for c in fresh if c.event.type in SCOPE_TYPES]
    if not commands:
        return None
    since = None
    if not any(event.type == "policy_sweep" for event in commands):
        since = min(event.at for event in commands)
    accounts = overlay.account_ids(connection, clock_after=since)
    if owns is not None:
        accounts = [a for a in accounts if owns(a)]
    return (None if since is None else utc_text(since)), len(accounts)


def _compute(store: SqlStore, writer: _Writer, number: int, items: Sequence[tuple[int, Any]],
             results: dict[int, ItemResult], candidates: list, policy: Policy,
             now: Callable[[], dt.datetime], cache: StateCache, scope_cache: ScopeCache,
             in_flight: deque[_InFlight], snapshot_every: int) -> _InFlight:
    """Fold one batch against the store plus what is in flight and hand it to the writer."""
    sent, write_set = _fold(store, number, items, results, candidates, policy, now(), cache,
                            scope_cache, in_flight, snapshot_every)
    writer.send(number, write_set)
    return sent


def _fold(store: SqlStore, number: int, items: Sequence[tuple[int, Any]],
          results: dict[int, ItemResult], candidates: list, policy: Policy, now: dt.datetime,
          cache: StateCache, scope_cache: ScopeCache, in_flight: deque[_InFlight],
          snapshot_every: int, part: _Part | None = None) -> tuple[_InFlight, writeset.WriteSet]:
    """Fold one batch (or `part` of it, whose `items` these are) against the store plus what
    is in flight: what it adds once committed, and its write set."""
    owns = part.owns if part is not None else None
    shadow = part.shadow if part is not None else frozenset()
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
        guard = _guard(overlay, connection, fresh, owns)
        batch = BatchIngest(overlay, connection, policy, now, scopes, cache, snapshot_every,
                            owns, shadow)
        try:
            item_results = batch_results(batch, fresh, items, results)
            write_set = batch.write_set()
        except BaseException:
            cache.clear()  # states were updated in place and will not be written
            raise
    if part is not None:
        # Positions in the whole batch; the commands' lines are reported by the part that
        # records them.
        write_set.event_positions = [part.positions[p] for p in write_set.event_positions]
        shadow_lines = {items[index][0] for index in shadow}
        item_results = [r for r in item_results if r.position not in shadow_lines]
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
    return sent, write_set


# --- a second folding process -------------------------------------------------------------------

_HERE, _THERE = 0, 1  # this process, the helper: the owners of accounts


def _owned_by_helper(account_id: str) -> bool:
    return owner_of(account_id) == _THERE


def _owned_here(account_id: str) -> bool:
    return owner_of(account_id) == _HERE


@dataclass
class _Part:
    """The lines of a batch one process folds, in the batch's order."""

    items: list[tuple[int, Any]] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # each line's index in the batch
    # Indices (in `items`) of the batch's operator commands this part applies to its scopes
    # but leaves to the other to record and report.
    shadow: frozenset[int] = frozenset()
    owns: Callable[[str], bool] | None = None

    def add(self, position: int, item: tuple[int, Any]) -> None:
        self.positions.append(position)
        self.items.append(item)


def _line_fields(line: Any) -> dict[str, Any] | None:
    try:
        fields = line if isinstance(line, dict) else orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return fields if isinstance(fields, dict) else None


def _owners(batches: Any, number: int) -> list[int] | None:
    """The folding process of each line of batch `number`, if the batches know them (a
    file's, from its scan: `event_file.Batches.owners`)."""
    owners = getattr(batches, "owners", None)
    return owners(number) if owners is not None else None


class _Splitter:
    """Cuts batches into the two processes' parts: each line goes to the owner of its account
    (`owner_of`), an operator command to both (this process records it), a line whose
    account cannot be read to this process (validation rejects it there). An appeal decision
    sent without its account follows its appeal's, from a submission seen in the file or the
    store's. A batch with a policy activation is not cut (it goes under the locks)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.appeals: dict[str, str] = {}  # appeal id -> account, of the file's submissions

    def parts(self, items: Sequence[tuple[int, Any]],
              owners: Sequence[int] | None = None) -> tuple[_Part, _Part] | None:
        """The two parts of a batch, or None if it is not cut. `owners`: each line's folding
        process if known (a file's scan routed appeal decisions and repeats, -1 for the
        portfolio's lines), else read here from the lines."""
        if owners is not None:
            return self._parts_by_owner(items, owners)
        fields = [_line_fields(line) for _, line in items]
        kinds = [f.get("type") if f is not None else None for f in fields]
        if any(kind in LOCKED_TYPES for kind in kinds):
            return None
        for f, kind in zip(fields, kinds, strict=True):
            if kind == "appeal_submitted" and f is not None:
                appeal_id, account_id = f.get("appeal_id"), f.get("account_id")
                if isinstance(appeal_id, str) and isinstance(account_id, str):
                    self.appeals.setdefault(appeal_id, account_id)
        here, there = _Part(owns=_owned_here), _Part(owns=_owned_by_helper)
        shadow: list[int] = []
        # A repeated event id goes where its first line in the batch went, as the batch's own
        # check of repeats expects (the file puts repeats next to their first line).
        taken: dict[Any, _Part] = {}
        for position, (item, f, kind) in enumerate(zip(items, fields, kinds, strict=True)):
            if kind in SCOPE_TYPES:
                here.add(position, item)
                shadow.append(len(there.items))
                there.add(position, item)
                continue
            event_id = f.get("event_id") if f is not None else None
            part = taken.get(event_id) if isinstance(event_id, str) else None
            if part is None:
                account_id = self._account(f, kind)
                part = (there if account_id is not None and _owned_by_helper(account_id)
                        else here)
                if isinstance(event_id, str):
                    taken[event_id] = part
            part.add(position, item)
        there.shadow = frozenset(shadow)
        return here, there

    def _parts_by_owner(self, items: Sequence[tuple[int, Any]],
                        owners: Sequence[int]) -> tuple[_Part, _Part] | None:
        here, there = _Part(owns=_owned_here), _Part(owns=_owned_by_helper)
        shadow: list[int] = []
        for position, (item, owner) in enumerate(zip(items, owners, strict=True)):
            if owner == _THERE:
                there.add(position, item)
                continue
            if owner == -1:  # the portfolio's: a command, or a line whose account is unknown
                fields = _line_fields(item[1])
                kind = fields.get("type") if fields is not None else None
                if kind in LOCKED_TYPES:
                    return None
                if kind in SCOPE_TYPES:
                    shadow.append(len(there.items))
                    there.add(position, item)
            here.add(position, item)
        there.shadow = frozenset(shadow)
        return here, there

    def _account(self, fields: dict[str, Any] | None, kind: Any) -> str | None:
        if fields is None:
            return None
        account_id = fields.get("account_id")
        if isinstance(account_id, str):
            return account_id
        appeal_id = fields.get("appeal_id")
        if kind != "appeal_decided" or not isinstance(appeal_id, str):
            return None
        if appeal_id not in self.appeals:
            with self.store.read() as connection:
                stored = self.store.appeal_account(connection, appeal_id)
            if stored is None:
                return None
            self.appeals[appeal_id] = stored
        return self.appeals[appeal_id]


def _fold_in_parts(store: SqlStore, writer: _Writer, helper: _FoldHelper, number: int,
                   parts: tuple[_Part, _Part], policy: Policy, now: dt.datetime,
                   cache: StateCache, scope_cache: ScopeCache, in_flight: deque[_InFlight],
                   snapshot_every: int, committed: int) -> _InFlight:
    """Fold a batch's two parts at once, here and in the helper, and hand both to the writer,
    which commits them in one transaction (`merged`). Raises _Diverged, having sent nothing,
    if either side can no longer fold as the sequential path would."""
    mine, theirs = parts
    if theirs.items:
        helper.dispatch(number, theirs, now, committed)
    try:
        results, candidates = parse_items(mine.items)
        sent, own = _fold(store, number, mine.items, results, candidates, policy, now, cache,
                          scope_cache, in_flight, snapshot_every, mine)
    except BaseException:
        if theirs.items:
            try:
                helper.collect(number)  # its answer is dropped with this batch
            except _Diverged:
                pass  # this side's failure is the one to report
        raise
    pickled = [pickle.dumps(own, protocol=5)]
    if theirs.items:
        try:
            (their_results, their_accepted), their_write_set = helper.collect(number)
        except _Diverged:
            cache.clear()  # this part's states moved on and will not be written
            raise
        sent.results.extend(their_results)
        sent.accepted.append(their_accepted)
        pickled.append(their_write_set)
    sent.size = len(mine.items) + len(theirs.items) - len(theirs.shadow)
    writer.send_parts(number, pickled)
    return sent


class _FoldHelper:
    """The second folding process of a pipelined file ingest.

    Ingesting a file is CPU-bound in the process that folds (validation, the fold, the rows),
    while the writer's core is mostly idle. Accounts are split between two folding processes
    for the whole file (`owner_of`); each batch is cut into their parts (`_Splitter`), the
    helper folds its part with its own state cache and in-flight overlay while this process
    folds the other, and the writer commits both in one transaction, the log in the order one
    fold of the batch gives (`merged`). An operator command goes to both: each applies it to
    its scopes and its own accounts (those a sweep advances, those folded past a command's
    time), this process records and reports it, and the guards add up. An account's state
    only ever lives in its owner's cache, so neither process reads what the other has in
    flight. The results are the sequential path's, batch for batch."""

    def __init__(self, process: ChildProcess, url: str, policy: Policy, snapshot_every: int,
                 cache_accounts: int):
        self.process = process  # started (`launch`), waiting for its setup
        self.connection = process.connection
        # The collector's thresholds go along: a command that raised them for its folding
        # (jiefeng ingest) wants them raised in the other folding process too.
        self.connection.send((url, policy, snapshot_every, cache_accounts, gc.get_threshold()))

    def start_scan(self, source: Any, start: int, keep_types: Collection[str]) -> bool:
        """Index a file from byte `start` to its end (`event_file.scan`), if it has a path
        the helper can open; it checks that the path still names this file."""
        named = named_file(source)
        if named is None:
            return False  # stdin, spooled to an unnamed file
        try:
            self.connection.send((SCAN, named.path, named.identity, start, frozenset(keep_types)))
        except OSError:
            return False
        return True

    def expect_commands(self, kept: Iterable[tuple[int, bytes]]) -> None:
        """Have the helper import, while it waits for its first part, what reading the file's
        commands (`kept`: the lines of `COMMAND_TYPES`) will import on first use; it would
        otherwise import it in the middle of a batch, on the core it shares with the writer.
        A line is matched by its bytes: a text that merely quotes a type costs an import."""
        modules = sorted({module for marker, names in _FIRST_READ_IMPORTS.items()
                          if any(marker in line for _, line in kept) for module in names})
        if modules:
            try:
                self.connection.send((WARM, tuple(modules)))
            except OSError:
                pass  # gone: the first batch finds out and goes sequential

    def collect_scan(self) -> tuple[EventFile, int] | None:
        try:
            status, kind, payload = self.connection.recv()
        except (EOFError, OSError):
            return None  # gone: the batches will find out and go sequential
        if status != COMMITTED or kind != SCAN:
            log.warning("the second folding process did not index its half of the file "
                        "(%s); this process does", payload)
            return None
        return payload

    def dispatch(self, number: int, part: _Part, now: dt.datetime, committed: int) -> None:
        try:
            self.connection.send((number, part.items, part.positions, part.shadow, now,
                                  committed))
        except OSError:
            raise _Diverged("the helper process ended") from None

    def collect(self, number: int) -> tuple[list[ItemResult], bytes]:
        """The helper's results and pickled write set for its part of batch `number`; raises
        _Diverged if it could not fold it as the sequential path would, or is gone."""
        try:
            status, folded, payload = self.connection.recv()
        except (EOFError, OSError):
            raise _Diverged("the helper process ended") from None
        if status != COMMITTED or folded != number:
            raise _Diverged(f"the helper: {payload}")
        return payload

    def close(self) -> None:
        try:
            self.connection.send(None)
        except OSError:
            pass  # already gone
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
        self.connection.close()


def _helper_main(url: str, policy: Policy, snapshot_every: int, cache_accounts: int,
                 connection: Any) -> None:
    """The helper: fold each part it is sent against the store plus its own parts in flight,
    answer with the results and the pickled write set (COMMITTED here means folded)."""
    store = SqlStore(url, upgrade=False)
    cache = StateCache(cache_accounts)
    scope_cache = ScopeCache()
    in_flight: deque[_InFlight] = deque()
    try:
        while (message := connection.recv()) is not None:
            if message[0] == SCAN:
                connection.send(_scan_part(*message[1:]))
                continue
            if message[0] == WARM:  # nothing is answered
                for name in message[1]:
                    importlib.import_module(name)
                continue
            number, items, positions, shadow, now, committed = message
            while in_flight and in_flight[0].number <= committed:
                in_flight.popleft()  # in the store now (merges are idempotent: no hurry)
            part = _Part(items, positions, shadow, _owned_by_helper)
            try:
                results, candidates = parse_items(items)
                sent, write_set = _fold(store, number, items, results, candidates, policy, now,
                                        cache, scope_cache, in_flight, snapshot_every, part)
            except _Diverged as diverged:
                cache.clear()
                in_flight.clear()
                connection.send((CONFLICT, number, str(diverged)))
                continue
            except Exception as error:  # noqa: BLE001 - reported; the parent goes sequential
                cache.clear()
                in_flight.clear()
                connection.send((FAILED, number, f"{type(error).__name__}: {error}"))
                continue
            in_flight.append(sent)
            connection.send((COMMITTED, number,
                             (AcceptedLines.split(sent.results),
                              pickle.dumps(write_set, protocol=5))))
            del write_set
            _give_back_freed_memory()
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        store.close()


def _scan_part(path: str, identity: tuple[int, int], start: int,
               keep_types: frozenset[str]) -> tuple[str, str, Any]:
    """The helper's half of a file's index (`_FoldHelper.start_scan`)."""
    scanned = scan_file_part(path, identity, start, None, keep_types)
    if isinstance(scanned, str):
        return FAILED, SCAN, scanned
    return COMMITTED, SCAN, scanned


def _helper_process(url: str, policy: Policy, snapshot_every: int, cache_accounts: int,
                    thresholds: tuple[int, int, int], connection: Any) -> None:
    gc.set_threshold(*thresholds)
    gc.freeze()  # the code and the policy, loaded for good: out of every later collection
    _helper_main(url, policy, snapshot_every, cache_accounts, connection)
    os._exit(0)  # nothing left to flush: skip the interpreter's teardown, as the writer does

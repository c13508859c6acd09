"""The use cases the CLI and the HTTP API share: ingest, state as of a time, explain, authorize,
replay. Storage comes in through `SqlStore`; the rules stay in the pure core."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from jiefeng.domain import core, invariants
from jiefeng.domain.decisions import Decision, PurchaseRequest, authorize
from jiefeng.domain.scopes import SCOPE_TYPES, Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy, default_policy
from jiefeng.service.event_file import EventFile
from jiefeng.service.feature_table import feature_values
from jiefeng.service.ingest import (
    FileReport,
    IngestReport,
    ScopeCache,
    decision_batches,
    ingest,
    ingest_batches,
)
from jiefeng.service.pipeline import Processes, ingest_batches_pipelined, start_processes
from jiefeng.service.pipeline_processes import Launched
from jiefeng.service.states import (
    FILE_SNAPSHOT_EVERY_EVENTS,
    MIN_CACHED_ACCOUNTS,
    StateCache,
    cached_accounts_setting,
    load_states,
    parse_recorded,
)
from jiefeng.store.sql import FILE_BATCH_EVENTS, MAX_BATCH_EVENTS, AccountWrite, SqlStore

# The service's debug switch: every fold asserts the state's invariants (see
# jiefeng.domain.invariants). Off by default: it costs a pass over the holds and statements.
if os.environ.get("JIEFENG_CHECK_INVARIANTS") == "1":
    invariants.ENABLED = True


# Files of this many transactions or more are folded in two processes (see
# Engine._helper_cache_accounts).
HELPER_MIN_BATCHES = 3


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AccountNotFound(LookupError):
    def __init__(self, account_id: str):
        self.account_id = account_id
        super().__init__(f"account_id: no account {account_id!r}")


class HoldNotActive(LookupError):
    def __init__(self, account_id: str, code: str):
        self.account_id = account_id
        self.code = code
        super().__init__(f"code: account {account_id!r} has no active {code!r} hold")


@dataclass(frozen=True)
class ReplayReport:
    accounts: int
    events: int
    mismatched: list[str]


def fingerprint(state: AccountState) -> tuple[Any, ...]:
    """What must agree between a replayed and an incrementally built account."""
    return (
        state.opened,
        tuple(sorted((code, h.since, h.releases_at) for code, h in state.holds.items())),
        tuple(sorted(state.summary().items())),
        state.ledger,  # every statement, plan and accrual (dataclasses compare by value)
        state.score,
        tuple(sorted(state.appeals)),
    )


class EngineCaches:
    """Process-wide caches, shared by the Engines one process makes (one per API request)."""

    def __init__(self, activations: bool = True, max_accounts: int | None = None) -> None:
        # Each state cache is bounded (LRU): by default MAX_CACHED_ACCOUNTS, or the
        # JIEFENG_CACHE_ACCOUNTS setting (see jiefeng.service.states).
        max_accounts = max_accounts or cached_accounts_setting()
        self.states = StateCache(max_accounts)  # writers' working states
        # readers' states: never mutated (advance copies)
        self.read_states = StateCache(max_accounts)
        self.scopes = ScopeCache(activations)


class Engine:
    def __init__(self, store: SqlStore, policy: Policy | None = None,
                 now: Callable[[], dt.datetime] = utc_now, caches: EngineCaches | None = None):
        self.store = store
        # The base policy: the built-in default, under which history runs until an operator
        # activates a stored version (a `policy_activated` event, carried in the scopes); or
        # an explicit what-if policy, which then applies throughout.
        self.base_policy = policy or default_policy()
        self.now = now
        caches = caches or EngineCaches(activations=policy is None)
        self.cache = caches.states
        self.read_cache = caches.read_states
        self.scope_cache = caches.scopes

    @property
    def policy(self) -> Policy:
        """The policy in effect now (for answers that are about the present)."""
        return self.scopes().policy_for(self.now(), self.base_policy)

    def policy_at(self, at: dt.datetime) -> Policy:
        return self.scopes().policy_for(at, self.base_policy)

    # --- writes ---------------------------------------------------------------------------------

    def ingest(self, items: Sequence[tuple[int, Any]],
               batch_events: int = MAX_BATCH_EVENTS) -> IngestReport:
        return ingest(self.store, items, self.base_policy, self.now, self.cache, self.scope_cache,
                      batch_events)

    def ingest_file(self, items: Sequence[tuple[int, Any]] | EventFile,
                    progress: Callable[[int], None] | None = None,
                    pipelined: bool = True,
                    processes: Processes | None = None) -> IngestReport:
        """Ingest a file's lines in transactions of FILE_BATCH_EVENTS; the report holds the
        results (the effects are in the store). With `pipelined`, a
        file of more than one transaction is folded here while a writer process commits
        (see jiefeng.service.pipeline); the outcome is the same.

        `items` is a list of (line number, line), or an `EventFile` (`jiefeng ingest`): its
        batches are read from the file one at a time and its report is a `FileReport`
        (counts, the rejected results and those of its kept lines), so memory does not grow
        with the file (see jiefeng.service.event_file).

        `processes` (`start_file_processes`, called before reading the file) are the pipeline's,
        started ahead; closed here if the file turns out to be one transaction."""
        if isinstance(items, EventFile):
            if (pipelined and processes is not None and processes.helper is not None
                    and len(items) > FILE_BATCH_EVENTS):  # surely pipelined: several batches
                processes.helper.expect_commands(items.kept)  # while the batches are cut
            batches: Sequence[Sequence[tuple[int, Any]]] = items.batches(
                FILE_BATCH_EVENTS, self.stored_appeal_accounts)
            report: IngestReport = FileReport(watched=frozenset(n for n, _ in items.kept))
        else:
            batches = decision_batches(items, FILE_BATCH_EVENTS, self.stored_appeal_accounts)
            report = IngestReport()
        if pipelined and len(batches) > 1:
            ingest_batches_pipelined(self.store, batches, self.base_policy, self.now,
                                     self.cache, self.scope_cache, progress,
                                     FILE_SNAPSHOT_EVERY_EVENTS, report,
                                     self._helper_cache_accounts(len(batches)), processes)
        else:
            if processes is not None:
                processes.close()
            ingest_batches(self.store, batches, self.base_policy, self.now, self.cache,
                           self.scope_cache, FILE_SNAPSHOT_EVERY_EVENTS, progress,
                           keep_effects=False, report=report)
        if len(batches) > 1:
            report.results.sort(key=lambda result: result.position)  # as sent, not as decided
        return report

    def start_file_processes(self, launched: Launched | None = None) -> Processes:
        """A pipelined file ingest's writer and second folding process, for a file about to be
        read (see `ingest_file`): those `launched` earlier (`pipeline_processes.launch`, before
        this engine was made), set up now, or new ones."""
        return start_processes(self.store.url, self.base_policy, FILE_SNAPSHOT_EVERY_EVENTS,
                               self._helper_cache_accounts(None), launched)

    def _helper_cache_accounts(self, batch_count: int | None) -> int | None:
        """The state cache of a second folding process for a file of `batch_count`
        transactions (None: not known yet; see jiefeng.service.pipeline), or None for none:
        it takes about half a second of CPU to start, which a file of two transactions does
        not repay, and a machine with one core has nowhere to run it. It folds about half
        the file's accounts, so it keeps half as many states as this process's cache."""
        if (batch_count is not None and batch_count < HELPER_MIN_BATCHES) or (
                os.cpu_count() or 1) < 2:
            return None
        return max(MIN_CACHED_ACCOUNTS, self.cache.max_accounts // 2)

    def stored_appeal_accounts(self, appeal_ids: list[str]) -> dict[str, str]:
        """The accounts of these appeals that the store holds (a file's decisions sent
        without an account_id are ordered with their account)."""
        found: dict[str, str] = {}
        with self.store.read() as connection:
            for appeal_id in appeal_ids:
                account_id = self.store.appeal_account(connection, appeal_id)
                if account_id is not None:
                    found[appeal_id] = account_id
        return found

    def ingest_events(self, raws: Iterable[dict[str, Any]]) -> IngestReport:
        return self.ingest(list(enumerate(raws)))

    # --- reads ----------------------------------------------------------------------------------

    def scopes(self) -> Scopes:
        with self.store.read() as connection:
            return self.scope_cache.get(self.store, connection)

    def state_at(self, account_id: str, at: dt.datetime | None = None
                 ) -> tuple[AccountState, Scopes, dt.datetime]:
        """The account as of `at` (default now): the same answer whenever it is asked.

        At or after the stored state's clock, the stored state advanced to `at`; before it, the
        account folded from its log up to `at`.
        """
        at = at or self.now()
        # Fast path, one round trip: the account's row and the scope marker, and both the
        # state (at that revision) and the scopes (at that marker) already in this process.
        newest, row = self.store.peek(account_id, SCOPE_TYPES)
        if row is not None and row.clock <= at:
            scopes_now = self.scope_cache.cached(newest)
            cached = self.read_cache.get(account_id, row.revision)
            if scopes_now is not None and cached is not None:
                state, _ = core.advance(cached, at, self.base_policy, scopes_now)
                return state, scopes_now, at
        with self.store.read() as connection:
            scopes = self.scope_cache.get(self.store, connection)
            states, _ = load_states(self.store, connection, [account_id], self.base_policy, scopes,
                                    self.read_cache, remember=True)
            current = states.get(account_id)
            if current is None:
                raise AccountNotFound(account_id)
            if current.clock is not None and current.clock <= at:
                state, _ = core.advance(current, at, self.base_policy, scopes)
                return state, scopes, at
            records = self.store.account_event_records(connection, account_id, until=at)
        events = [parse_recorded(record, account_id) for record in records]
        state, _ = core.fold(account_id, events, self.base_policy, scopes, until=at,
                             decisions=False)
        return state, scopes, at

    def explain(self, account_id: str, at: dt.datetime | None = None) -> dict[str, Any]:
        from jiefeng.explain.structured import build_explanation

        state, scopes, at = self.state_at(account_id, at)
        if not state.opened:
            raise AccountNotFound(account_id)
        return build_explanation(state, at, self.base_policy, scopes)

    def traces(self, account_id: str, at: dt.datetime | None = None, *,
               code: str | None = None, for_customer: bool = False) -> dict[str, Any]:
        """The decision traces of the holds active at `at` (or of the one with `code`;
        HoldNotActive if it is not), as the versioned export (jiefeng.domain.trace)."""
        from jiefeng.domain.trace import TRACE_SCHEMA, hold_traces

        state, scopes, at = self.state_at(account_id, at)
        if not state.opened:
            raise AccountNotFound(account_id)
        zone = scopes.policy_for(at, self.base_policy).zone
        found = hold_traces(state, at, scopes, zone=zone, for_customer=for_customer, code=code)
        if code is not None and not found:
            raise HoldNotActive(account_id, code)
        return {"schema": TRACE_SCHEMA, "account_id": account_id,
                "at": at.astimezone(zone).isoformat(), "traces": found}

    def authorize(self, account_id: str, request: PurchaseRequest,
                  at: dt.datetime | None = None) -> Decision:
        state, scopes, at = self.state_at(account_id, at)
        if not state.opened:
            raise AccountNotFound(account_id)
        return authorize(state, request, at, self.base_policy, scopes)

    # --- maintenance ----------------------------------------------------------------------------

    def replay(self, progress: Callable[[int], None] | None = None,
               write: bool = True) -> ReplayReport:
        """Rebuild every account from the log; report accounts whose stored state disagrees."""
        mismatched: list[str] = []
        accounts = events_count = 0
        self.cache.clear()
        with self.store.transaction() as connection:
            self.store.lock_portfolio(connection)  # no write batch interleaves with a rebuild
            scopes = self.scope_cache.get(self.store, connection)
            stored_ids = self.store.account_ids(connection)
            stored: dict[str, AccountState] = {}
            rows = {}
            for start in range(0, len(stored_ids), 1_000):
                chunk_states, chunk_rows = load_states(
                    self.store, connection, stored_ids[start : start + 1_000], self.base_policy,
                    scopes)
                stored.update(chunk_states)
                rows.update(chunk_rows)
            rebuilt: dict[str, tuple[AccountState, list[Any]]] = {}
            current_id: str | None = None
            pending: list[Any] = []

            def finish() -> None:
                nonlocal accounts
                if current_id is None:
                    return
                state, effects = core.fold(current_id, pending, self.base_policy, scopes)
                before = stored.get(current_id)
                if before is not None and before.clock is not None and state.clock is not None \
                        and before.clock > state.clock:
                    core.advance_to(state, before.clock, self.base_policy, scopes, effects)
                rebuilt[current_id] = (state, effects)
                accounts += 1
                if progress:
                    progress(len(pending))

            # Purchases come with their recorded outcome: a replay rebuilds, it never decides.
            for account_id, record in self.store.iter_all_event_records(connection):
                if account_id != current_id:
                    finish()
                    current_id, pending = account_id, []
                pending.append(parse_recorded(record, account_id))
                events_count += 1
            finish()

            for account_id, (state, _) in rebuilt.items():
                before = stored.get(account_id)
                if before is None or fingerprint(before) != fingerprint(state):
                    mismatched.append(account_id)
            if write:
                self.store.clear_snapshots(connection)
                writes = []
                all_effects = []
                for account_id, (state, effects) in rebuilt.items():
                    holds = core.active_holds(state, state.clock, scopes)
                    row = rows.get(account_id)
                    writes.append(AccountWrite(
                        state, core.H.derive_status(holds), tuple(h.code for h in holds),
                        scopes.policy_for(state.clock, self.base_policy).version,
                        (row.revision if row else 0) + 1, True, True,
                        feature_values(state, self.base_policy, scopes)))
                    all_effects.extend(e for e in effects if e.kind != "purchase_decided")
                self.store.save_accounts(connection, writes)
                self.store.append_effects(connection, all_effects)
        return ReplayReport(accounts, events_count, mismatched)

    def advance_all(self, now: dt.datetime, progress: Callable[[int], None] | None = None,
                    chunk_accounts: int = 500) -> int:
        """Let time pass for every account up to `now` and store the result: statements,
        overdue, expiries and notices happen even for accounts that send no events.

        Runs in chunks of `chunk_accounts`, one transaction each; returns the effects count."""
        with self.store.read() as connection:
            account_ids = self.store.account_ids(connection)
        produced = 0
        for start in range(0, len(account_ids), chunk_accounts):
            chunk = account_ids[start : start + chunk_accounts]
            try:
                with self.store.transaction() as connection:
                    self.store.lock_portfolio(connection, exclusive=False)
                    self.store.lock_accounts(connection, chunk)
                    scopes = self.scope_cache.get(self.store, connection)
                    states, rows = load_states(self.store, connection, chunk, self.base_policy,
                                               scopes, self.cache)
                    writes = []
                    effects: list[Any] = []
                    for account_id, state in states.items():
                        if state.clock is None or state.clock >= now:
                            continue
                        core.advance_to(state, now, self.base_policy, scopes, effects)
                        holds = core.active_holds(state, now, scopes)
                        writes.append(AccountWrite(
                            state, core.H.derive_status(holds), tuple(h.code for h in holds),
                            scopes.policy_for(now, self.base_policy).version,
                            rows[account_id].revision + 1, False, False,
                            feature_values(state, self.base_policy, scopes)))
                    self.store.save_accounts(connection, writes)
                    self.store.append_effects(connection, effects)
            except BaseException:
                self.cache.clear()
                raise
            for write in writes:
                self.cache.put(write.state.account_id, write.revision, write.state)
            produced += len(effects)
            if progress:
                progress(len(chunk))
        return produced

    def all_states(self) -> dict[str, AccountState]:
        states: dict[str, AccountState] = {}
        with self.store.read() as connection:
            scopes = self.scope_cache.get(self.store, connection)
            ids = self.store.account_ids(connection)
            for start in range(0, len(ids), 1_000):
                chunk, _ = load_states(self.store, connection, ids[start : start + 1_000],
                                       self.base_policy, scopes)
                states.update(chunk)
        return states

    def hold_effect_rows(self) -> list[tuple[str, str, str, str]]:
        with self.store.read() as connection:
            return list(self.store.hold_effects(connection))

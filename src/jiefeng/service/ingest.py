"""Ingest: validate, deduplicate, fold and store a batch of events, all or nothing per batch.

Each item gets a result: `accepted`, `duplicate` (same `event_id`, same content: applied once)
or `rejected` (the field and the reason). Rejected items never block the valid ones; the
accepted ones of a batch commit together with the state they produce.

Events may arrive late. An account event older than the account's state is folded in time
order by replaying the account from its nearest checkpoint before the event (see
jiefeng.service.late_events), once per batch; an operator command older than some accounts'
states replays those accounts. Either way the state is as if every event had arrived in time
order, with one exception that is the point: decisions are facts. A purchase is decided once,
when it is first folded; its outcome is stored with it and every replay reuses it (see
jiefeng.domain.outcomes). A late purchase is decided at its place in time.

A batch is decided in time order; a file of many batches account by account between the
portfolio's barriers (`decision_order`, see jiefeng.service.decision_order), which decides
what one time order decides. Either way, whatever the order of its lines, so its stored
outcomes depend on what arrived before it, not on how its lines were laid out.

Why one long module: reading, deciding in time order and writing a batch share their
locking and ordering rules; they are kept together until the pipelined writer is split out.
"""

from __future__ import annotations

import datetime as dt
import json
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import Connection

from jiefeng.domain import admission, core
from jiefeng.domain import events as ev
from jiefeng.domain.decisions import DomainRejected, check_event
from jiefeng.domain.effects import APPEAL_DECIDED, APPEAL_RECORDED, PURCHASE_DECIDED, Effect
from jiefeng.domain.outcomes import Decided, Outcome, outcome_from_data
from jiefeng.domain.scopes import (
    SCOPE_TYPES,
    ScopeRejected,
    Scopes,
    apply_scope_command,
    check_scope_command,
)
from jiefeng.domain.state import AccountState
from jiefeng.domain.upcasting import SCHEMA_VERSION, stamped
from jiefeng.policy.schema import Policy
from jiefeng.service import decision_order as ordering
from jiefeng.service import writeset
from jiefeng.service.decision_order import AppealResolver, transaction_batches
from jiefeng.service.feature_table import feature_values
from jiefeng.service.late_events import Replayed, replay_account
from jiefeng.service.order_facts import UNREADABLE_KEY, order_facts, tie_rank
from jiefeng.service.states import (
    SNAPSHOT_EVERY_EVENTS,
    StateCache,
    load_states,
    parse_stored,
)
from jiefeng.service.writeset import WriteSet
from jiefeng.store import schema as t
from jiefeng.store.checkpoints import Checkpoint
from jiefeng.store.sql import (
    FILE_BATCH_EVENTS,
    MAX_BATCH_EVENTS,
    SNAPSHOT_FORMAT,
    AccountRow,
    AccountValues,
    AccountWrite,
    SqlStore,
    account_values,
    effect_rows,
)

# Accounts a sweep loads, advances and writes at a time when the batch does not hold them: a
# bound on the states in memory at once, whatever the portfolio's size.
SWEEP_CHUNK_ACCOUNTS = 500

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"


MAX_ECHOED_ID_CHARS = 64  # a rejected event's id longer than this is cut in results


@dataclass(slots=True)
class ItemResult:
    position: int  # line number in a file, index in a request
    status: str
    event_id: str | None = None
    field: str | None = None
    reason: str | None = None

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        # Pickled by its fields in order: a folding process sends thousands a batch, and the
        # default (the class, then a state per object) took twice the time both ways.
        return ItemResult, (self.position, self.status, self.event_id, self.field, self.reason)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"position": self.position, "status": self.status,
                                "event_id": self.event_id}
        if self.status == REJECTED:
            data["field"] = self.field
            data["reason"] = self.reason
        return data


@dataclass(slots=True)
class AcceptedLines:
    """The results of accepted lines, compactly: their positions and event ids. A folding
    process sends a batch's thousands so (an array and a list of texts pickle in a few
    copies, where an object per result cost a call each way); a file's report only counts
    most of them (`FileReport.add_accepted`)."""

    positions: array
    event_ids: list[str]

    @staticmethod
    def split(results: Iterable[ItemResult]) -> tuple[list[ItemResult], AcceptedLines]:
        """(the results that are not a plain acceptance, the accepted lines)."""
        others: list[ItemResult] = []
        positions: list[int] = []
        event_ids: list[str] = []
        for result in results:
            if result.status == ACCEPTED and result.event_id is not None \
                    and result.field is None and result.reason is None:
                positions.append(result.position)
                event_ids.append(result.event_id)
            else:
                others.append(result)
        return others, AcceptedLines(array("q", positions), event_ids)

    def results(self) -> Iterator[ItemResult]:
        for position, event_id in zip(self.positions, self.event_ids, strict=True):
            yield ItemResult(position, ACCEPTED, event_id)

    def __reduce__(self) -> tuple[type, tuple[Any, ...]]:
        return AcceptedLines, (self.positions, self.event_ids)


@dataclass
class IngestReport:
    results: list[ItemResult] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    def add(self, results: Iterable[ItemResult]) -> None:
        self.results.extend(results)

    def add_accepted(self, accepted: AcceptedLines) -> None:
        self.add(accepted.results())

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def accepted(self) -> int:
        return self.count(ACCEPTED)

    @property
    def duplicates(self) -> int:
        return self.count(DUPLICATE)

    @property
    def rejected(self) -> int:
        return self.count(REJECTED)

    def extend(self, other: IngestReport) -> None:
        self.add(other.results)
        self.effects.extend(other.effects)


def _no_counts() -> dict[str, int]:
    return {ACCEPTED: 0, DUPLICATE: 0, REJECTED: 0}


@dataclass
class FileReport(IngestReport):
    """A file's report: counts per status, and only the results someone reads: the rejected
    ones (the CLI prints them) and those of the `watched` lines (the commands it audits).
    One object per line of a 5,000,000-line file was most of an ingest's memory."""

    watched: frozenset[int] = frozenset()  # line numbers whose results are kept
    counts: dict[str, int] = field(default_factory=_no_counts)

    def add(self, results: Iterable[ItemResult]) -> None:
        for result in results:
            self.counts[result.status] += 1
            if result.status == REJECTED or result.position in self.watched:
                self.results.append(result)

    def add_accepted(self, accepted: AcceptedLines) -> None:
        self.counts[ACCEPTED] += len(accepted.positions)
        if self.watched:
            watched = self.watched
            self.results.extend(
                ItemResult(position, ACCEPTED, event_id)
                for position, event_id in zip(accepted.positions, accepted.event_ids,
                                              strict=True)
                if position in watched)

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)


def canonical_json(raw: dict[str, Any]) -> str:
    """Sorted keys, no spaces: two sends of one event compare equal whatever their layout."""
    return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()


def _decision_order(candidate: _Candidate) -> tuple[dt.datetime, int]:
    event = candidate.event
    return event.at, tie_rank(event.type)


class ScopeCache:
    """The portfolio's scopes, rebuilt only when the operator commands in the log change."""

    def __init__(self, activations: bool = True) -> None:
        # activations=False: an explicit what-if policy applies throughout, whatever versions
        # operators activated.
        self.activations = activations
        self._cached: tuple[tuple[int, int] | None, Scopes] = (None, Scopes())

    def cached(self, newest_seq: int) -> Scopes | None:
        """The scopes if they are current for this marker (see SqlStore.peek), else None."""
        marker, scopes = self._cached
        return scopes if marker == (0, newest_seq) else None

    def get(self, store: SqlStore, connection: Connection) -> Scopes:
        return self.marked(store, connection)[1]

    def marked(self, store: Any, connection: Connection) -> tuple[tuple[int, int], Scopes]:
        """The scopes and the marker they were read at (the marker is read first: a command
        stored in between shows up as a changed marker, never as a missing command)."""
        marker = store.scope_marker(connection, SCOPE_TYPES)
        cached_marker, scopes = self._cached  # one tuple: consistent under threads
        if marker != cached_marker:
            scopes = Scopes()
            for body in store.operator_event_bodies(connection, SCOPE_TYPES):
                scopes = apply_scope_command(
                    scopes, ev.parse_event(json.loads(body), stored=True))
            scopes.policy_activations = self._resolved(connection, scopes.policy_activations)
            self._cached = (marker, scopes)
        return marker, scopes

    def _resolved(self, connection: Connection, activations: list) -> list:
        """Attach each activated version's policy (from the stored versions)."""
        if not self.activations:
            return []
        from jiefeng.service.policies import policy_by_version

        return [replace(a, policy=policy_by_version(connection, a.version, a.sha256))
                for a in activations]


def load_scopes(store: SqlStore, connection: Connection) -> Scopes:
    return ScopeCache().get(store, connection)


@dataclass(slots=True)  # one per event ingested
class _Candidate:
    position: int
    body: str
    event: Any


class BatchIngest:
    """One transaction's worth of events (at most MAX_BATCH_EVENTS).

    States come from the process cache or the store and are updated in place; `cache_updates`
    lists what the cache may take once the transaction has committed.
    """

    def __init__(self, store: SqlStore, connection: Connection, policy: Policy,
                 now: dt.datetime, scopes: Scopes, cache: StateCache,
                 snapshot_every: int = SNAPSHOT_EVERY_EVENTS,
                 owns: Callable[[str], bool] | None = None,
                 shadow: frozenset[int] = frozenset()):
        self.store = store
        # A batch folded in parts (jiefeng.service.pipeline): the accounts this part folds
        # among those the store holds (None: every one), and the positions of operator
        # commands it applies to its scopes but leaves to another part to record and report.
        self.owns = owns
        self.shadow = shadow
        self.connection = connection
        self.policy = policy
        self.now = now
        self.scopes = scopes
        self.cache = cache
        self.snapshot_every = snapshot_every
        self.states: dict[str, AccountState] = {}
        self.rows: dict[str, AccountRow] = {}
        self.touched: set[str] = set()
        # (event_id, account_id, type, at, actor, body, position), in the order the log
        # takes them
        self.accepted_rows: list[tuple] = []
        self.accepted_events: dict[str, list[Any]] = {}  # per account, in arrival order
        self.effects: list[Effect] = []
        self.rebuilt: set[str] = set()  # replayed: effects recomputed, snapshot forced
        self.effects_kept: dict[str, int] = {}  # of a replayed account: its rows kept
        self.checkpoints: dict[str, tuple[tuple[str, int] | None, list[Checkpoint]]] = {}
        # Events of accounts that a late event sent back in time, in decision order: folded
        # by one replay per account at the end of the batch, (result index, event) each.
        self.deferred: dict[str, list[tuple[int, Any]]] = {}
        self.stale_from: dt.datetime | None = None  # the batch's earliest scope command
        self.appeal_accounts: dict[str, str] = {}
        self.cache_updates: list[tuple[str, int, AccountState]] = []
        self.missing: set[str] = set()  # account ids the store has no row for
        self.exclusive = False  # the batch changed the portfolio's scopes
        self.new_rows: dict[str, AccountRow] = {}  # the rows write_set leaves, by account
        self.base_revisions: dict[str, int | None] = {}  # of the rows written, as read
        self.streamed = AccountValues([], [], [])  # rows of accounts only a sweep moved
        self.streamed_appeals: list[dict[str, Any]] = []  # their appeals' rows
        # Purchases this batch decided, by event id: stored with them, reused by its replays.
        self.outcomes: dict[str, Outcome] = {}

    # --- state access -----------------------------------------------------------------------

    def _load(self, account_ids: Iterable[str]) -> None:
        wanted = [a for a in account_ids
                  if a not in self.states and a not in self.rows and a not in self.missing]
        if not wanted:
            return
        states, rows = load_states(self.store, self.connection, wanted, self.policy,
                                   self.scopes, self.cache)
        self.states.update(states)
        self.rows.update(rows)
        # Accounts the store does not have: asked once per batch, not once per event.
        self.missing.update(a for a in wanted if a not in states)

    def _state(self, account_id: str) -> AccountState | None:
        state = self.states.get(account_id)
        if state is None and account_id not in self.missing:
            self._load([account_id])
            state = self.states.get(account_id)
        return state

    def _replay(self, account_id: str, extra: list[Any],
                not_before: dt.datetime | None = None) -> Replayed:
        """Fold the account again, with its pending events and `extra` (checked at their
        place in time), from its nearest checkpoint (see jiefeng.service.late_events)."""
        pending = [self._decided(event) for event in self.accepted_events.get(account_id, [])]
        replayed = replay_account(self.store, self.connection, account_id, self.policy,
                                  self.scopes, pending, extra, not_before)
        self.states[account_id] = replayed.state
        self.touched.add(account_id)
        self.rebuilt.add(account_id)
        self.effects = [e for e in self.effects if e.account_id != account_id]
        self.effects.extend(replayed.effects)
        self.effects_kept[account_id] = replayed.effects_kept
        self.checkpoints[account_id] = (replayed.started_after, replayed.checkpoints)
        return replayed

    def _decided(self, event: Any) -> Any:
        outcome = self.outcomes.get(event.event_id)
        return event if outcome is None else Decided(event, outcome)

    def _note_decision(self, event: Any, effects: list[Effect], start: int) -> None:
        """Keep the outcome the fold gave `event` (its effects are from `start` on)."""
        if type(event) is not ev.Purchase:
            return
        # From the end, without copying: the decision is the purchase's last effect but for
        # the checks that run after any event.
        for index in range(len(effects) - 1, start - 1, -1):
            effect = effects[index]
            if effect.kind == PURCHASE_DECIDED and effect.cause == event.event_id:
                self.outcomes.setdefault(event.event_id, outcome_from_data(effect.data))
                return

    # --- the batch ----------------------------------------------------------------------------

    def run(self, candidates: list[_Candidate]) -> list[ItemResult]:
        results: list[ItemResult] = []
        candidates.sort(key=_decision_order)  # stable: ties keep arrival order
        stale: set[str] = set()
        sweeps: list[Any] = []
        # Locks are already held (see _ingest_batch); appeal decisions are already routed.
        account_ids = [a for c in candidates if (a := ev.routing_account_id(c.event))]
        self._load(account_ids)
        # Only new events are held to the window: a stored one is never checked again.
        window = self.scopes.policy_for(self.now, self.policy).ingest
        window_args = (self.now, window.max_future_minutes, window.min_event_date)
        earliest, latest = admission.time_window(*window_args)
        for candidate in candidates:
            event = candidate.event
            try:
                if not earliest <= event.at <= latest:
                    problem = admission.time_problem(event.at, *window_args)
                    assert problem is not None  # outside the window: it says why
                    raise DomainRejected(*problem)
                if event.type in SCOPE_TYPES:
                    check_scope_command(self.scopes, event)
                    self.scopes = apply_scope_command(self.scopes, event)
                    # Accounts already folded up to or past this command's time are folded
                    # again with it: in a replay, a command at t comes before events at t.
                    stale.update(self._owned(
                        self.store.account_ids(self.connection, clock_after=event.at)))
                    stale.update(a for a, s in self.states.items()
                                 if s.clock is not None and s.clock >= event.at)
                    if self.stale_from is None or event.at < self.stale_from:
                        self.stale_from = event.at
                    if isinstance(event, ev.PolicySweep):
                        sweeps.append(event)
                    account_id = None
                else:
                    if isinstance(event, ev.AppealDecided) and event.account_id is None:
                        routed = self.appeal_accounts.get(event.appeal_id)
                        if routed is None:
                            raise DomainRejected("appeal_id", "no appeal with this id")
                        event = candidate.event = event.model_copy(
                            update={"account_id": routed})
                    account_id = event.account_id
                    if account_id in self.deferred or self._late(account_id, event):
                        # Taken for now; the replay at the end checks it in its place.
                        self.deferred.setdefault(account_id, []).append((len(results), event))
                    else:
                        self._apply_account_event(account_id, event)
                    if isinstance(event, ev.AppealSubmitted):
                        self.appeal_accounts[event.appeal_id] = account_id
            except (DomainRejected, ScopeRejected) as rejection:
                if candidate.position not in self.shadow:
                    results.append(ItemResult(candidate.position, REJECTED, event.event_id,
                                              rejection.field, rejection.reason))
                continue
            if candidate.position in self.shadow:
                continue
            # Fields live in the model's __dict__; getattr on a missing one takes pydantic's
            # slow path, once per event.
            self.accepted_rows.append((event.event_id, account_id, event.type, event.at,
                                       event.__dict__.get("actor"), candidate.body,
                                       candidate.position))
            results.append(ItemResult(candidate.position, ACCEPTED, event.event_id))
        self._load(sorted(stale))  # their rows: replayed accounts are updated, not inserted
        # Each account is folded again at most once per batch.
        for account_id in sorted(stale | self.deferred.keys()):
            self._replay_deferred(account_id, results,
                                  self.stale_from if account_id in stale else None)
        for sweep in sweeps:
            self._advance_loaded_to(sweep.at)
        if sweeps:
            self._advance_the_rest_to(max(sweep.at for sweep in sweeps))
        self.exclusive = bool(sweeps) or any(c.event.type in SCOPE_TYPES for c in candidates)
        return results

    def _owned(self, account_ids: list[str]) -> list[str]:
        owns = self.owns
        return account_ids if owns is None else [a for a in account_ids if owns(a)]

    def _late(self, account_id: str, event: Any) -> bool:
        state = self._state(account_id)
        return state is not None and state.clock is not None and event.at < state.clock

    def _apply_account_event(self, account_id: str, event: Any) -> None:
        state = self._state(account_id)
        effects = self.effects
        if state is not None and state.opened and state.clock != event.at:
            # Time passes even if the event is then rejected; what it produced stays.
            core.advance_to(state, event.at, self.policy, self.scopes, effects)
            self.touched.add(account_id)
        check_event(state, event, self.scopes.policy_for(event.at, self.policy), self.scopes)
        if state is None:
            state = core.new_account(account_id)
            self.states[account_id] = state
            self.missing.discard(account_id)
        start = len(effects)
        core.apply_event(state, event, self.policy, self.scopes, effects)
        self._note_decision(event, effects, start)
        self.touched.add(account_id)
        self.accepted_events.setdefault(account_id, []).append(event)

    def _replay_deferred(self, account_id: str, results: list[ItemResult],
                         not_before: dt.datetime | None) -> None:
        """One replay of the account with its deferred events; those that fail their check
        in their place in time become rejections, and leave the log rows."""
        deferred = self.deferred.get(account_id, [])
        replayed = self._replay(account_id, [event for _, event in deferred], not_before)
        decisions = {e.cause: e for e in replayed.effects if e.kind == PURCHASE_DECIDED}
        for index, event in deferred:
            rejection = replayed.rejected.get(event.event_id)
            if rejection is None:
                self.accepted_events.setdefault(account_id, []).append(event)
                decided = decisions.get(event.event_id)
                if type(event) is ev.Purchase and decided is not None:
                    self.outcomes.setdefault(event.event_id, outcome_from_data(decided.data))
                continue
            results[index] = ItemResult(results[index].position, REJECTED, event.event_id,
                                        rejection.field, rejection.reason)
            self.accepted_rows = [row for row in self.accepted_rows if row[0] != event.event_id]
            if isinstance(event, ev.AppealSubmitted):
                self.appeal_accounts.pop(event.appeal_id, None)

    def _advance_loaded_to(self, at: dt.datetime) -> None:
        """A sweep applies to every account at its time, not only those that send events:
        first the accounts this batch holds."""
        for account_id, state in self.states.items():
            if state.opened and state.clock is not None and state.clock < at:
                effects: list[Effect] = []
                core.advance_to(state, at, self.policy, self.scopes, effects)
                self.effects.extend(effects)
                self.touched.add(account_id)

    def _advance_the_rest_to(self, at: dt.datetime) -> None:
        """Then every other account, a chunk at a time: each chunk is loaded, advanced (the
        sweeps are deadlines, so one advance to the last applies them all in order), turned
        into its rows and handed to the cache at once, not kept by the batch: the portfolio's
        states are never in memory together beyond the cache's bound. The cache takes them
        before the commit, as the pipeline does with every batch's states (the next batches
        read accounts in flight from it); a failed batch clears it."""
        behind = [a for a in self._owned(self.store.account_ids(self.connection))
                  if a not in self.states and a not in self.rows]
        for start in range(0, len(behind), SWEEP_CHUNK_ACCOUNTS):
            states, rows = load_states(self.store, self.connection,
                                       behind[start : start + SWEEP_CHUNK_ACCOUNTS],
                                       self.policy, self.scopes, self.cache)
            self.rows.update(rows)
            writes = []
            for account_id, state in states.items():
                if not (state.opened and state.clock is not None and state.clock < at):
                    continue
                start_effects = len(self.effects)
                core.advance_to(state, at, self.policy, self.scopes, self.effects)
                writes.append(self._account_write(account_id, state))
                self.cache.put(account_id, writes[-1].revision, state)
                for effect in self.effects[start_effects:]:  # a sweep may lapse an appeal
                    row = self._appeal_row(effect, state)
                    if row is not None:
                        self.streamed_appeals.append(row)
            self.streamed.extend(account_values(writes))

    def _account_write(self, account_id: str, state: AccountState) -> AccountWrite:
        """The account's row (and snapshot when due) as this batch leaves it."""
        row = self.rows.get(account_id)
        clock = state.clock
        assert clock is not None, "only an account with events is written"
        holds = core.active_holds(state, clock, self.scopes)
        revision = (row.revision if row else 0) + 1
        # A new account gets its first snapshot once it has that many events, like any
        # other: until then a reader folds its few events from the log.
        snapshot_events = row.snapshot_events if row else 0
        snapshot_due = state.events_applied - snapshot_events >= self.snapshot_every
        write = AccountWrite(
            state, core.H.derive_status(holds), tuple(h.code for h in holds),
            self.scopes.policy_for(clock, self.policy).version, revision, row is None,
            account_id in self.rebuilt or snapshot_due,
            feature_values(state, self.policy, self.scopes))
        self.base_revisions[account_id] = row.revision if row else None
        self.new_rows[account_id] = AccountRow(
            revision, state.events_applied,
            state.events_applied if write.with_snapshot else snapshot_events,
            SNAPSHOT_FORMAT, clock)
        return write

    def write_set(self) -> WriteSet:
        """Everything this batch writes; `cache_updates` lists the states it leaves."""
        outcomes = {event_id: outcome.to_text() for event_id, outcome in self.outcomes.items()}
        utc_text = t.utc_text
        write_set = WriteSet(utc_text(self.now), exclusive=self.exclusive)
        write_set.events = [
            (event_id, account_id, kind, utc_text(at), actor, body, outcomes.get(event_id))
            for event_id, account_id, kind, at, actor, body, _ in self.accepted_rows]
        write_set.event_positions = [row[6] for row in self.accepted_rows]
        writes = []
        for account_id in sorted(self.touched):
            state = self.states[account_id]
            if state.clock is None:
                continue
            writes.append(self._account_write(account_id, state))
            self.cache_updates.append((account_id, writes[-1].revision, state))
        write_set.accounts = account_values(writes)
        write_set.accounts.extend(self.streamed)  # accounts a sweep advanced, already rows
        write_set.base_revisions = self.base_revisions
        write_set.rebuilt = sorted(self.rebuilt)
        write_set.effects_kept = self.effects_kept
        write_set.checkpoints = self.checkpoints
        if self.stale_from is not None:
            write_set.checkpoints_stale_from = utc_text(self.stale_from)
        write_set.effects = effect_rows([e for e in self.effects if e.kind != PURCHASE_DECIDED])
        write_set.appeals = self._appeal_rows()
        return write_set

    def _appeal_rows(self) -> list[dict[str, Any]]:
        rows = list(self.streamed_appeals)
        for effect in self.effects:
            state = self.states.get(effect.account_id)
            row = self._appeal_row(effect, state) if state is not None else None
            if row is not None:
                rows.append(row)
        return rows

    def _appeal_row(self, effect: Effect, state: AccountState) -> dict[str, Any] | None:
        """The row of the appeal an effect recorded or decided, as it now stands; None for
        another effect, or an appeal no longer kept."""
        if effect.kind not in (APPEAL_RECORDED, APPEAL_DECIDED):
            return None
        appeal = state.appeals.get(effect.data["appeal_id"])
        if appeal is None:
            return None
        rules = self.scopes.policy_for(appeal.submitted_at, self.policy).appeals
        fast = appeal.hold_code in rules.fast_sla_codes
        sla = (dt.timedelta(hours=rules.fast_sla_hours) if fast
               else dt.timedelta(days=rules.sla_days))
        return {
            "appeal_id": appeal.appeal_id,
            "account_id": effect.account_id,
            "hold_code": appeal.hold_code,
            "submitted_at_utc": t.utc_text(appeal.submitted_at),
            "sla_due_at_utc": t.utc_text(appeal.submitted_at + sla),
            "status": appeal.status,
            "statement": appeal.statement,
            "decided_at_utc": t.utc_text(appeal.decided_at) if appeal.decided_at else None,
            "decided_by": appeal.decided_by,
            "reason": appeal.reason or None,
        }


def _route(store: SqlStore, connection: Connection, event: Any) -> Any:
    """An appeal decision belongs to the account of its appeal (looked up once, immutable)."""
    if isinstance(event, ev.AppealDecided) and event.account_id is None:
        account_id = store.appeal_account(connection, event.appeal_id)
        if account_id is not None:
            return event.model_copy(update={"account_id": account_id})
    return event


def _parse(position: int, item: Any) -> tuple[Any, str] | ItemResult:
    """An item (JSON text or a decoded object) -> (event, body to store), or a rejection.

    JSON text is validated in one pass and stored as received; a decoded object is stored in
    canonical form (sorted keys). Either is stamped with the schema version it was validated
    in, unless it declares one (jiefeng.domain.upcasting)."""
    try:
        if isinstance(item, (str, bytes)):
            event = ev.parse_event_json(item)
            body = stamped(item.strip() if isinstance(item, str) else item.strip().decode())
        elif isinstance(item, dict):
            event = ev.parse_event(item)
            body = canonical_json(item if "schema_version" in item
                                  else {**item, "schema_version": SCHEMA_VERSION})
        else:
            return ItemResult(position, REJECTED, None, "(event)", "must be a JSON object")
    except ev.EventRejected as rejection:
        event_id = rejection.event_id
        if event_id is not None and len(event_id) > MAX_ECHOED_ID_CHARS:
            event_id = event_id[:MAX_ECHOED_ID_CHARS] + "…"  # an id too long is cut, not echoed
        return ItemResult(position, REJECTED, event_id, rejection.field,
                          rejection.reason)
    # Before the store sees any of it: PostgreSQL refuses a NUL even in a lookup by id.
    if admission.may_need_text_check(body):
        problems = admission.text_problems(event)
        if problems:
            field_name, reason = problems[0]
            # An id with invisible characters is not echoed: it would mislead whoever reads it.
            event_id = None if any(f == "event_id" for f, _ in problems) else event.event_id
            return ItemResult(position, REJECTED, event_id, field_name, reason)
    return event, body


def _same_event(body: str, other_body: str, event: Any) -> bool:
    """Two sends of one event_id: equal text, or the same event written differently."""
    if body == other_body:
        return True
    try:
        return parse_stored(other_body) == event
    except ev.EventRejected:
        return False


def decision_order(items: Sequence[tuple[int, Any]],
                   resolve_appeals: AppealResolver | None = None
                   ) -> Sequence[tuple[int, Any]]:
    """Items in the order a file of many transactions is decided in: account by account
    between the portfolio's barriers (see jiefeng.service.decision_order), whatever the order
    of its lines. `resolve_appeals` names the accounts of appeals the items do not submit
    (the store's), for decisions sent without an account_id."""
    facts = [order_facts(raw) for _, raw in items]
    submitted: dict[str, str] = {}
    decided: list[str] = []  # appeals whose decisions name no account (`line_routing`)
    for fact in facts:
        if fact is None:
            continue
        account_id, appeal_id = ordering.line_routing(fact.kind, fact.account_id,
                                                      fact.appeal_id)
        if appeal_id is not None:
            decided.append(appeal_id)
        elif (account_id is not None and fact.kind == "appeal_submitted"
              and fact.appeal_id is not None):
            submitted.setdefault(fact.appeal_id, account_id)
    appeals = ordering.with_stored_appeals(submitted, decided, resolve_appeals)
    accounts: dict[str, int] = {}
    first: dict[str, tuple[int, int]] = {}  # event_id -> (key, group) of its first line
    keys: list[int] = []
    groups: list[int] = []
    barriers: list[int] = []
    for fact in facts:
        if fact is None:
            key, group = UNREADABLE_KEY, ordering.PORTFOLIO
        else:
            account_id = ordering.line_account(fact.kind, fact.account_id, fact.appeal_id, appeals)
            group = (ordering.PORTFOLIO if account_id is None
                     else accounts.setdefault(account_id, len(accounts)))
            own_key = ordering.packed_key(fact.at, fact.rank)
            if fact.kind in ordering.BARRIER_TYPES:
                barriers.append(own_key)
            key, group = first.setdefault(fact.event_id, (own_key, group))
        keys.append(key)
        groups.append(group)
    ranks = ordering.account_ranks(list(accounts))
    groups = [group if group == ordering.PORTFOLIO else ranks[group] for group in groups]
    indices = ordering.account_order(keys, groups, barriers)
    if isinstance(indices, range):
        return items
    return [items[index] for index in indices]


def decision_batches(items: Sequence[tuple[int, Any]], batch_events: int,
                     resolve_appeals: AppealResolver | None = None
                     ) -> list[Sequence[tuple[int, Any]]]:
    """The transactions a file or request is ingested in: in decision order
    (`decision_order`; one transaction sorts itself by time), cut by `transaction_batches`."""
    if len(items) > batch_events:
        items = decision_order(items, resolve_appeals)
    return transaction_batches(items, batch_events)


def ingest(
    store: SqlStore,
    items: Sequence[tuple[int, Any]],
    policy: Policy,
    now: Callable[[], dt.datetime],
    cache: StateCache | None = None,
    scope_cache: ScopeCache | None = None,
    batch_events: int = MAX_BATCH_EVENTS,
    snapshot_every: int = SNAPSHOT_EVERY_EVENTS,
    progress: Callable[[int], None] | None = None,
    keep_effects: bool = True,
) -> IngestReport:
    """Ingest (position, raw) items in batches of at most `batch_events` (bounded by
    FILE_BATCH_EVENTS; see `transaction_batches`), one transaction each.

    A raw item is a decoded JSON object or one line of JSON text.
    """
    assert 1 <= batch_events <= FILE_BATCH_EVENTS, "a transaction is bounded"
    report = ingest_batches(store, decision_batches(items, batch_events), policy, now, cache,
                            scope_cache, snapshot_every, progress, keep_effects)
    if len(items) > batch_events:
        report.results.sort(key=lambda result: result.position)  # as sent, not as decided
    return report


def ingest_batches(
    store: SqlStore,
    batches: Sequence[Sequence[tuple[int, Any]]],
    policy: Policy,
    now: Callable[[], dt.datetime],
    cache: StateCache | None = None,
    scope_cache: ScopeCache | None = None,
    snapshot_every: int = SNAPSHOT_EVERY_EVENTS,
    progress: Callable[[int], None] | None = None,
    keep_effects: bool = True,
    report: IngestReport | None = None,
) -> IngestReport:
    """Ingest batches already cut, one transaction each, in order, into `report` (default a
    new IngestReport, which keeps every result)."""
    cache = cache if cache is not None else StateCache()
    scope_cache = scope_cache if scope_cache is not None else ScopeCache()
    report = report if report is not None else IngestReport()
    for chunk in batches:
        batch_report = _ingest_batch(store, chunk, policy, now, cache, scope_cache,
                                     snapshot_every)
        if not keep_effects:  # a file's effects are in the store; holding them all costs memory
            batch_report.effects = []
        report.extend(batch_report)
        if progress:
            progress(len(chunk))
    return report


def parse_items(items: Sequence[tuple[int, Any]]
                ) -> tuple[dict[int, ItemResult], list[_Candidate]]:
    """Validate a batch's items (no store needed): rejections and in-batch repeats get their
    results; the rest become candidates, which carry their index in the batch."""
    results: dict[int, ItemResult] = {}
    candidates: list[_Candidate] = []
    seen: dict[str, str] = {}
    for index, (position, item) in enumerate(items):
        parsed = _parse(position, item)
        if isinstance(parsed, ItemResult):
            results[index] = parsed
            continue
        event, body = parsed
        if event.event_id in seen:
            if _same_event(body, seen[event.event_id], event):
                results[index] = ItemResult(position, DUPLICATE, event.event_id)
            else:
                results[index] = ItemResult(position, REJECTED, event.event_id, "event_id",
                                            "repeated in this batch with different content")
            continue
        seen[event.event_id] = body
        candidates.append(_Candidate(index, body, event))
    return results, candidates


def fresh_candidates(store: Any, connection: Connection, items: Sequence[tuple[int, Any]],
                     candidates: list[_Candidate], results: dict[int, ItemResult]
                     ) -> list[_Candidate]:
    """The candidates whose event_id the store does not have yet; the others get results.

    Run under the locks: two racing sends of one event cannot both be fresh."""
    existing = store.existing_bodies(connection, [c.event.event_id for c in candidates])
    fresh: list[_Candidate] = []
    for candidate in candidates:
        stored = existing.get(candidate.event.event_id)
        if stored is None:
            fresh.append(candidate)
            continue
        position = items[candidate.position][0]
        if _same_event(candidate.body, stored, candidate.event):
            results[candidate.position] = ItemResult(position, DUPLICATE,
                                                     candidate.event.event_id)
        else:
            results[candidate.position] = ItemResult(
                position, REJECTED, candidate.event.event_id, "event_id",
                "already used by a different event")
    return fresh


def batch_results(batch: BatchIngest, fresh: list[_Candidate], items: Sequence[tuple[int, Any]],
                  results: dict[int, ItemResult]) -> list[ItemResult]:
    """Run the batch; every item's result, in the caller's order and positions."""
    for result in batch.run(fresh):
        # `position` inside the batch is the item index; map back to the caller's.
        index = result.position
        result.position = items[index][0]
        results[index] = result
    return [results[i] for i in sorted(results)]


def _ingest_batch(store: SqlStore, items: Sequence[tuple[int, Any]], policy: Policy,
                  now: Callable[[], dt.datetime], cache: StateCache,
                  scope_cache: ScopeCache, snapshot_every: int) -> IngestReport:
    results, candidates = parse_items(items)
    report = IngestReport()
    try:
        with store.transaction() as connection:
            # Route appeal decisions to their account, then lock, then look for duplicates:
            # checked under the locks, two racing sends of one event cannot both be fresh.
            for candidate in candidates:
                candidate.event = _route(store, connection, candidate.event)
            store.lock_portfolio(
                connection, exclusive=any(c.event.type in SCOPE_TYPES for c in candidates))
            store.lock_accounts(
                connection, [a for c in candidates if (a := ev.routing_account_id(c.event))])
            fresh = fresh_candidates(store, connection, items, candidates, results)
            batch = BatchIngest(store, connection, policy, now(),
                                scope_cache.get(store, connection), cache, snapshot_every)
            report.results = batch_results(batch, fresh, items, results)
            writeset.apply(store, connection, batch.write_set())
            report.effects = batch.effects
    except BaseException:
        cache.clear()  # states were updated in place; the transaction did not commit
        raise
    for account_id, revision, state in batch.cache_updates:
        cache.put(account_id, revision, state)
    return report

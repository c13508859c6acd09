"""Ingest: validate, deduplicate, fold and store a batch of events, all or nothing per batch.

Each item gets a result: `accepted`, `duplicate` (same `event_id`, same content: applied once)
or `rejected` (the field and the reason). Rejected items never block the valid ones; the
accepted ones of a batch commit together with the state they produce.

Events may arrive late. An account event older than the account's state is folded in time
order by replaying the account from its log; an operator command older than some accounts'
states replays those accounts. Either way the state is as if every event had arrived in time
order.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from jiefeng.domain import core
from jiefeng.domain import events as ev
from jiefeng.domain.decisions import DomainRejected, check_event
from jiefeng.domain.effects import APPEAL_DECIDED, APPEAL_RECORDED, Effect
from jiefeng.domain.scopes import SCOPE_TYPES, ScopeRejected, Scopes, check_scope_command
from jiefeng.domain.scopes import apply_scope_command
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy
from jiefeng.store import schema as t
from jiefeng.store.sql import MAX_BATCH_EVENTS, EventRow, SnapshotRow, SqlStore

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"


@dataclass(frozen=True)
class ItemResult:
    position: int  # line number in a file, index in a request
    status: str
    event_id: str | None = None
    field: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"position": self.position, "status": self.status,
                                "event_id": self.event_id}
        if self.status == REJECTED:
            data["field"] = self.field
            data["reason"] = self.reason
        return data


@dataclass
class IngestReport:
    results: list[ItemResult] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

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
        self.results.extend(other.results)
        self.effects.extend(other.effects)


def canonical_json(raw: dict[str, Any]) -> str:
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_from_row(body: str, account_id: str | None = None) -> Any:
    """Parse a stored event; an appeal decision gets the account the store routed it to."""
    event = ev.parse_event(json.loads(body))
    if account_id is not None and isinstance(event, ev.AppealDecided) and event.account_id is None:
        event = event.model_copy(update={"account_id": account_id})
    return event


def load_scopes(store: SqlStore, connection: Connection) -> Scopes:
    scopes = Scopes()
    for body in store.operator_event_bodies(connection, SCOPE_TYPES):
        scopes = apply_scope_command(scopes, ev.parse_event(json.loads(body)))
    return scopes


@dataclass
class _Candidate:
    position: int
    raw: dict[str, Any]
    body: str
    event: Any


class BatchIngest:
    """One transaction's worth of events (at most MAX_BATCH_EVENTS)."""

    def __init__(self, store: SqlStore, connection: Connection, policy: Policy,
                 now: dt.datetime):
        self.store = store
        self.connection = connection
        self.policy = policy
        self.now = now
        self.scopes = load_scopes(store, connection)
        self.states: dict[str, AccountState | None] = {}
        self.accepted_rows: list[EventRow] = []
        self.accepted_events: dict[str, list[Any]] = {}  # per account, in arrival order
        self.effects: list[Effect] = []
        self.rebuilt: set[str] = set()  # accounts whose effects were recomputed whole
        self.appeal_accounts: dict[str, str] = {}

    # --- state access -----------------------------------------------------------------------

    def _state(self, account_id: str) -> AccountState | None:
        if account_id not in self.states:
            loaded = self.store.load_snapshots(self.connection, [account_id]).get(account_id)
            if loaded is None and self.store.account_exists(self.connection, account_id):
                loaded = self._replay(account_id, [])[0]  # snapshot of an older format
                self.rebuilt.add(account_id)
            self.states[account_id] = loaded
        return self.states[account_id]

    def _replay(self, account_id: str, extra: list[Any],
                check: Any = None) -> tuple[AccountState, list[Effect]]:
        """Fold the account's stored and pending events in time order, plus `extra`.

        If `check` is one of `extra`, it is validated at its place in time first; DomainRejected
        propagates and nothing is kept.
        """
        stored = [event_from_row(body, account_id)
                  for body in self.store.account_event_bodies(self.connection, account_id)]
        sequence = stored + self.accepted_events.get(account_id, []) + extra
        sequence.sort(key=lambda e: e.at)  # stable: ties keep arrival order
        state = core.new_account(account_id)
        effects: list[Effect] = []
        for event in sequence:
            if event is check:
                if state.opened:
                    core.advance_to(state, event.at, self.policy, self.scopes, effects)
                check_event(state if state.opened else None, event, self.policy, self.scopes)
            core.apply_event(state, event, self.policy, self.scopes, effects)
        return state, effects

    # --- the batch ----------------------------------------------------------------------------

    def run(self, candidates: list[_Candidate]) -> list[ItemResult]:
        results: list[ItemResult] = []
        candidates.sort(key=lambda c: c.event.at)  # stable: ties keep arrival order
        scope_commands: list[Any] = []
        self.store.lock_accounts(
            self.connection, [a for c in candidates if (a := ev.routing_account_id(c.event))]
        )
        if any(c.event.type in SCOPE_TYPES for c in candidates):
            self.store.lock_portfolio(self.connection)
        for candidate in candidates:
            event = candidate.event
            try:
                if event.type in SCOPE_TYPES:
                    check_scope_command(self.scopes, event)
                    self.scopes = apply_scope_command(self.scopes, event)
                    scope_commands.append(event)
                    account_id = None
                else:
                    event = self._route(event)
                    candidate.event = event
                    account_id = event.account_id
                    self._apply_account_event(account_id, event)
            except (DomainRejected, ScopeRejected) as rejection:
                results.append(ItemResult(candidate.position, REJECTED, event.event_id,
                                          rejection.field, rejection.reason))
                continue
            self.accepted_rows.append(EventRow(
                event.event_id, account_id, event.type, event.at,
                getattr(event, "actor", None), candidate.body))
            results.append(ItemResult(candidate.position, ACCEPTED, event.event_id))
        for command in scope_commands:
            self._propagate_scope_command(command)
        self._persist()
        return results

    def _route(self, event: Any) -> Any:
        if isinstance(event, ev.AppealDecided) and event.account_id is None:
            account_id = self.appeal_accounts.get(event.appeal_id) or self.store.appeal_account(
                self.connection, event.appeal_id)
            if account_id is None:
                raise DomainRejected("appeal_id", "no appeal with this id")
            return event.model_copy(update={"account_id": account_id})
        return event

    def _apply_account_event(self, account_id: str, event: Any) -> None:
        state = self._state(account_id)
        if state is not None and state.clock is not None and event.at < state.clock:
            # Late arrival: fold the account again in time order with this event in its place.
            new_state, effects = self._replay(account_id, [event], check=event)
            self.states[account_id] = new_state
            self.rebuilt.add(account_id)
            self.effects = [e for e in self.effects if e.account_id != account_id] + effects
        else:
            working = state.clone() if state is not None else None
            effects: list[Effect] = []
            if working is not None and working.opened:
                core.advance_to(working, event.at, self.policy, self.scopes, effects)
            check_event(working, event, self.policy, self.scopes)
            if working is None:
                working = core.new_account(account_id)
            core.apply_event(working, event, self.policy, self.scopes, effects)
            self.states[account_id] = working
            self.effects.extend(effects)
        self.accepted_events.setdefault(account_id, []).append(event)
        if isinstance(event, ev.AppealSubmitted):
            self.appeal_accounts[event.appeal_id] = account_id

    def _propagate_scope_command(self, command: Any) -> None:
        """Bring affected accounts in line with a portfolio-wide command."""
        if isinstance(command, ev.PolicySweep):
            affected = self.store.account_ids(self.connection)
        elif isinstance(command, ev.MigrationStarted) and command.account_ids is not None:
            affected = list(command.account_ids)
        elif isinstance(command, ev.MigrationCompleted):
            campaign = self.scopes.campaigns[command.campaign_id]
            affected = list(command.account_ids or campaign.account_ids or
                            self.store.account_ids(self.connection, segment=campaign.segment))
        else:
            segment = getattr(command, "segment", None)
            if isinstance(command, ev.MaintenanceCancelled):
                segment = self.scopes.windows[command.window_id].segment
            affected = self.store.account_ids(self.connection, clock_after=command.at,
                                              segment=segment)
        affected = sorted(set(affected) | {a for a in self.states if self.states[a] is not None})
        for account_id in affected:
            state = self._state(account_id)
            if state is None or not state.opened:
                continue
            if state.clock is not None and state.clock > command.at:
                new_state, effects = self._replay(account_id, [])
                self.states[account_id] = new_state
                self.rebuilt.add(account_id)
                self.effects = [e for e in self.effects if e.account_id != account_id] + effects
            elif isinstance(command, ev.PolicySweep):
                working = state.clone()
                effects = []
                core.advance_to(working, command.at, self.policy, self.scopes, effects)
                self.states[account_id] = working
                self.effects.extend(effects)

    def _persist(self) -> None:
        store, connection = self.store, self.connection
        store.append_events(connection, self.accepted_rows, self.now)
        snapshots = {}
        for account_id, state in self.states.items():
            if state is None or state.clock is None:
                continue
            holds = core.active_holds(state, state.clock, self.scopes)
            snapshots[account_id] = SnapshotRow(
                state, core.H.derive_status(holds), tuple(h.code for h in holds),
                self.policy.version)
        store.save_snapshots(connection, snapshots)
        for account_id in self.rebuilt:
            store.delete_effects(connection, account_id)
        store.append_effects(connection, self.effects)
        self._record_appeals()

    def _record_appeals(self) -> None:
        for effect in self.effects:
            if effect.kind not in (APPEAL_RECORDED, APPEAL_DECIDED):
                continue
            state = self.states.get(effect.account_id)
            appeal = state.appeals.get(effect.data["appeal_id"]) if state else None
            if appeal is None:
                continue
            fast = appeal.hold_code in self.policy.appeals.fast_sla_codes
            sla = (dt.timedelta(hours=self.policy.appeals.fast_sla_hours) if fast
                   else dt.timedelta(days=self.policy.appeals.sla_days))
            self.store.upsert_appeal(self.connection, {
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
            })


def _decode(position: int, item: Any) -> tuple[dict[str, Any] | None, ItemResult | None]:
    if isinstance(item, (str, bytes)):
        try:
            item = json.loads(item)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return None, ItemResult(position, REJECTED, None, "(line)",
                                    f"not valid JSON: {error}")
    if not isinstance(item, dict):
        return None, ItemResult(position, REJECTED, None, "(event)", "must be a JSON object")
    return item, None


def ingest(
    store: SqlStore,
    items: Sequence[tuple[int, Any]],
    policy: Policy,
    now: Callable[[], dt.datetime],
) -> IngestReport:
    """Ingest (position, raw) items in batches of at most MAX_BATCH_EVENTS, one transaction each.

    A raw item is a decoded JSON object or one line of JSON text.
    """
    report = IngestReport()
    for start in range(0, len(items), MAX_BATCH_EVENTS):
        report.extend(_ingest_batch(store, items[start : start + MAX_BATCH_EVENTS], policy, now))
    return report


def _ingest_batch(store: SqlStore, items: Sequence[tuple[int, Any]], policy: Policy,
                  now: Callable[[], dt.datetime]) -> IngestReport:
    results: dict[int, ItemResult] = {}
    candidates: list[_Candidate] = []
    seen: dict[str, str] = {}
    for index, (position, item) in enumerate(items):
        raw, problem = _decode(position, item)
        if problem is not None:
            results[index] = problem
            continue
        assert raw is not None
        try:
            event = ev.parse_event(raw)
        except ev.EventRejected as rejection:
            results[index] = ItemResult(position, REJECTED, rejection.event_id, rejection.field,
                                        rejection.reason)
            continue
        body = canonical_json(raw)
        if event.event_id in seen:
            if seen[event.event_id] == body:
                results[index] = ItemResult(position, DUPLICATE, event.event_id)
            else:
                results[index] = ItemResult(position, REJECTED, event.event_id, "event_id",
                                            "repeated in this batch with different content")
            continue
        seen[event.event_id] = body
        candidates.append(_Candidate(index, raw, body, event))

    report = IngestReport()
    with store.transaction() as connection:
        existing = store.existing_bodies(connection, [c.event.event_id for c in candidates])
        fresh: list[_Candidate] = []
        for candidate in candidates:
            stored = existing.get(candidate.event.event_id)
            if stored is None:
                fresh.append(candidate)
            elif stored == candidate.body:
                results[candidate.position] = ItemResult(
                    items[candidate.position][0], DUPLICATE, candidate.event.event_id)
            else:
                results[candidate.position] = ItemResult(
                    items[candidate.position][0], REJECTED, candidate.event.event_id, "event_id",
                    "already used by a different event")
        batch = BatchIngest(store, connection, policy, now())
        for result in batch.run(fresh):
            # `position` inside the batch is the item index; map back to the caller's position.
            results[result.position] = ItemResult(
                items[result.position][0], result.status, result.event_id, result.field,
                result.reason)
        report.effects = batch.effects
    report.results = [results[i] for i in sorted(results)]
    return report

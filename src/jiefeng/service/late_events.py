"""Folding an account again when an event arrives late, from its nearest checkpoint.

A late event (older than the account's state) must be folded in its place in time, so the
account's events from that point on are folded again. From the first event that costs the
whole history per late event, and a stream whose events come in reverse order becomes
quadratic. Instead the fold starts from the latest checkpoint (jiefeng.store.checkpoints)
taken before the earliest event it must place, and takes new checkpoints every
CHECKPOINT_EVERY_EVENTS events as it goes, so the next late event finds one close by.

The new events (`extra`) are each checked at their place in time; one that fails its check
is left out and reported, the others are folded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from jiefeng.domain import core
from jiefeng.domain.decisions import DomainRejected, check_event
from jiefeng.domain.effects import PURCHASE_DECIDED, Effect
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import Policy
from jiefeng.service.states import parse_recorded
from jiefeng.store.checkpoints import Checkpoint
from jiefeng.store.schema import utc_text
from jiefeng.store.sql import decode_state, encode_state

# A replay takes a checkpoint after this many events: a late event then costs at most this
# many events before its place plus those after it.
CHECKPOINT_EVERY_EVENTS = 16


@dataclass
class Replayed:
    state: AccountState
    effects: list[Effect]  # those of the events after the checkpoint it started from
    effects_kept: int  # the account's stored effect rows before that checkpoint
    started_after: tuple[str, int] | None  # that checkpoint's fold position; None: the start
    checkpoints: list[Checkpoint] = field(default_factory=list)
    rejected: dict[str, DomainRejected] = field(default_factory=dict)  # event_id -> why


def replay_account(store: Any, connection: Connection, account_id: str, policy: Policy,
                   scopes: Scopes, pending: Sequence[Any], extra: Sequence[Any],
                   not_before: dt.datetime | None = None) -> Replayed:
    """Fold the account's stored events, `pending` (accepted earlier in this batch, not
    stored yet) and `extra` (new, checked here) in time order.

    It starts from the latest checkpoint strictly before the earliest of `pending`, `extra`
    and `not_before` (an operator command's time), or from the first event if none."""
    times = [e.at for e in (*pending, *extra)]
    if not_before is not None:
        times.append(not_before)
    start = store.nearest_checkpoint(connection, account_id, min(times)) if times else None
    if start is not None:
        state = decode_state(start.state)
        kept, after = start.effects_kept, start.key
    else:
        state, kept, after = core.new_account(account_id), 0, None
    # Stored events come with their seq; the others get theirs when the batch is written.
    sequence: list[tuple[Any, int | None]] = [
        (parse_recorded((body, outcome), account_id), seq)
        for seq, body, outcome in store.account_event_log(connection, account_id, after)]
    sequence += [(event, None) for event in pending]
    sequence += [(event, None) for event in extra]
    sequence.sort(key=lambda pair: pair[0].at)  # stable: ties keep stored, pending, new
    checkpoint_every = CHECKPOINT_EVERY_EVENTS
    checking = {id(event) for event in extra}
    result = Replayed(state, [], kept, after)
    effects = result.effects
    stored_effects = kept  # the account's effect rows up to here (decisions are not rows)
    counted = since_checkpoint = 0
    for event, seq in sequence:
        if id(event) in checking:
            try:
                if state.opened:
                    core.advance_to(state, event.at, policy, scopes, effects)
                check_event(state if state.opened else None, event,
                            scopes.policy_for(event.at, policy), scopes)
            except DomainRejected as rejection:
                result.rejected[event.event_id] = rejection
                continue
        core.apply_event(state, event, policy, scopes, effects)
        since_checkpoint += 1
        if since_checkpoint >= checkpoint_every:
            stored_effects += sum(1 for e in effects[counted:] if e.kind != PURCHASE_DECIDED)
            counted = len(effects)
            result.checkpoints.append(Checkpoint(utc_text(event.at), seq, stored_effects,
                                                 encode_state(state), event.event_id))
            since_checkpoint = 0
    return result

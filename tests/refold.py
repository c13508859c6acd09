"""What every write path must leave: each account's stored effect rows, in order, and its
hold codes are those a fold of its logged events gives (advanced to its stored clock)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from jiefeng.domain import core
from jiefeng.service.engine import Engine
from jiefeng.service.states import parse_recorded
from jiefeng.store import schema as t


def assert_stored_equals_refold(engine: Engine) -> dict[str, list]:
    """Compare the store with a refold of the log; returns the events per account."""
    store = engine.store
    with store.read() as connection:
        scopes = engine.scope_cache.get(store, connection)
        logs: dict[str, list] = defaultdict(list)
        for account_id, record in store.iter_all_event_records(connection):
            logs[account_id].append(parse_recorded(record, account_id))
        rows = {r.account_id: r for r in connection.execute(select(
            t.accounts.c.account_id, t.accounts.c.clock_utc, t.accounts.c.hold_codes))}
        stored: dict[str, list] = defaultdict(list)
        for row in connection.execute(select(
                t.effects.c.account_id, t.effects.c.kind, t.effects.c.code, t.effects.c.at_utc,
                t.effects.c.cause).order_by(t.effects.c.seq)):
            stored[row.account_id].append(tuple(row)[1:])
    logs.pop(None, None)  # operator commands
    for account_id, events in logs.items():
        state, effects = core.fold(account_id, events, engine.base_policy, scopes)
        core.advance_to(state, t.parse_utc_text(rows[account_id].clock_utc),
                        engine.base_policy, scopes, effects)
        expected = [(e.kind, e.code, t.utc_text(e.at), e.cause) for e in effects
                    if e.kind != "purchase_decided"]
        assert stored[account_id] == expected, account_id
        holds = core.active_holds(state, state.clock, scopes)
        assert rows[account_id].hold_codes == ",".join(h.code for h in holds), account_id
    return logs

"""Late arrivals (hardening item 15): a late event is folded from the account's nearest
checkpoint before it, not from its first event, and a batch folds each account again at most
once. What is stored stays what a fold of the log gives."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.service import ingest as ingest_module
from jiefeng.service import late_events
from jiefeng.service.engine import Engine
from jiefeng.service.ingest import REJECTED, ingest
from jiefeng.store import checkpoints
from jiefeng.store.sql import SqlStore
from refold import assert_stored_equals_refold

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
START = dt.datetime(2029, 1, 1, 2, tzinfo=dt.UTC)
EVERY = 16  # checkpoints this often in these tests: short histories still take several


@pytest.fixture(autouse=True)
def frequent_checkpoints(monkeypatch):
    monkeypatch.setattr(late_events, "CHECKPOINT_EVERY_EVENTS", EVERY)


def _history(account: str, count: int) -> list[dict]:
    """An account that buys, repays and logs in, one event an hour."""
    events = [{"event_id": f"{account}-0", "type": "account_opened", "at": START.isoformat(),
               "account_id": account, "credit_limit": "5000.00", "id_expires_on": "2035-01-01"}]
    for n in range(1, count):
        at = (START + dt.timedelta(hours=3 * n)).isoformat()
        base = {"event_id": f"{account}-{n}", "at": at, "account_id": account}
        kind = n % 3
        if kind == 0:
            events.append({**base, "type": "purchase", "amount": "12.30", "merchant_id": "M-1"})
        elif kind == 1:
            events.append({**base, "type": "repayment", "amount": "12.30"})
        else:
            events.append({**base, "type": "login", "device_id": "D-1"})
    return events


def _engine(url: str) -> Engine:
    return Engine(SqlStore(url), now=lambda: NOW)


def _send(engine: Engine, events: list[dict], batch_events: int = 1_000):
    items = list(enumerate(json.dumps(e) for e in events))
    return ingest(engine.store, items, engine.base_policy, engine.now, engine.cache,
                  engine.scope_cache, batch_events)


def _count_replays(monkeypatch) -> list[tuple[str, int]]:
    """(account, stored events it read) for every replay."""
    calls: list[tuple[str, int]] = []
    original = late_events.replay_account

    def counting(store, connection, account_id, *args, **kwargs):
        read = store.account_event_log

        def log(connection, account_id, after=None):
            records = read(connection, account_id, after)
            calls.append((account_id, len(records)))
            return records

        class Counted:
            def __getattr__(self, name):
                return log if name == "account_event_log" else getattr(store, name)

        return original(Counted(), connection, account_id, *args, **kwargs)

    monkeypatch.setattr(ingest_module, "replay_account", counting)
    return calls


def test_last_event_first_costs_a_bounded_replay_per_batch(db_url, monkeypatch) -> None:  # noqa: F811
    """The audit's case: each account's last event arrives first (after its opening), then
    the rest. Each later
    batch folds the account once, from a checkpoint near its first event, not from the start."""
    history = _history("A-1", 600) + _history("A-2", 300)
    engine = _engine(db_url)
    first = [e for e in history if e["type"] == "account_opened"]
    first += [max((e for e in history if e["account_id"] == a), key=lambda e: e["at"])
              for a in ("A-1", "A-2")]
    assert _send(engine, first).accepted == 4
    rest = [e for e in history if e not in first]
    calls = _count_replays(monkeypatch)
    batch = 50
    for start in range(0, len(rest), batch):
        report = _send(engine, rest[start : start + batch])
        assert report.accepted == len(rest[start : start + batch])
    touched = sum(len({e["account_id"] for e in rest[start : start + batch]})
                  for start in range(0, len(rest), batch))
    # One replay per account a batch touches ...
    assert len(calls) == touched
    # ... each reading at most a checkpoint interval, the batch before (stored since the
    # last checkpoint) and the last event: never the history before.
    assert max(read for _, read in calls) <= EVERY + batch + 1
    assert sum(read for _, read in calls) < len(rest) * 2  # from the start: ~ n^2 / 100
    assert_stored_equals_refold(engine)
    assert engine.replay(write=False).mismatched == []


def test_many_late_events_in_one_batch_replay_the_account_once(db_url, monkeypatch) -> None:  # noqa: F811
    history = _history("A-1", 200)
    engine = _engine(db_url)
    _send(engine, history[:100] + history[150:])
    calls = _count_replays(monkeypatch)
    report = _send(engine, history[100:150])
    assert report.accepted == 50
    assert [account for account, _ in calls] == ["A-1"]
    assert_stored_equals_refold(engine)


def test_a_late_event_that_fails_its_check_in_its_place_is_rejected_alone(db_url) -> None:  # noqa: F811
    """In one batch of late events, one is invalid at its place in time (a refund of a purchase
    that comes after it): that one is rejected with its field, the others are applied."""
    history = _history("A-1", 120)
    engine = _engine(db_url)
    _send(engine, history[:60] + history[100:])
    purchase = history[63]
    assert purchase["type"] == "purchase"
    refund = {"event_id": "A-1-refund", "type": "refund", "account_id": "A-1",
              "at": history[61]["at"], "amount": "1.00", "purchase_event_id":
              purchase["event_id"]}
    report = _send(engine, history[60:100] + [refund])
    rejected = [r for r in report.results if r.status == REJECTED]
    assert [(r.event_id, r.field) for r in rejected] == [("A-1-refund", "purchase_event_id")]
    assert report.accepted == 40
    with engine.store.read() as connection:
        assert engine.store.existing_bodies(connection, ["A-1-refund"]) == {}
    assert_stored_equals_refold(engine)


def test_an_operator_command_before_the_checkpoints_drops_them(db_url) -> None:  # noqa: F811
    """Checkpoints taken before a maintenance window was known lack it: a window at s drops
    every checkpoint from s on, and later late events still fold to what the log gives."""
    history = _history("A-1", 300)
    engine = _engine(db_url)
    _send(engine, [history[0], history[-1]])
    _send(engine, history[1:-1], batch_events=1_000)  # late: checkpoints every EVERY events
    with engine.store.read() as connection:
        taken = connection.execute(checkpoints.account_checkpoints.select()).all()
    assert len(taken) >= 300 // EVERY - 1
    middle = dt.datetime.fromisoformat(history[150]["at"])
    window = {"event_id": "op-1", "type": "maintenance_scheduled", "actor": "ops.alice",
              "at": middle.isoformat(), "window_id": "w1",
              "start": (middle + dt.timedelta(hours=1)).isoformat(),
              "end": (middle + dt.timedelta(hours=5)).isoformat()}
    assert _send(engine, [window]).accepted == 1
    with engine.store.read() as connection:
        after = connection.execute(checkpoints.account_checkpoints.select()).all()
    # Dropped from the window's command on, then taken again by the account's replay.
    assert {row.at_utc for row in after if row.at_utc < history[150]["at"]} <= {
        row.at_utc for row in taken}
    assert_stored_equals_refold(engine)
    late = {"event_id": "A-1-late", "type": "login", "account_id": "A-1", "device_id": "D-1",
            "at": (middle + dt.timedelta(hours=2)).isoformat()}
    assert _send(engine, [late]).accepted == 1
    assert_stored_equals_refold(engine)
    assert engine.replay(write=False).mismatched == []

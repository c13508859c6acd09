"""Pipelined file ingest (fold here, write in a second process) gives exactly what the
one-transaction-at-a-time path gives, and falls back to it when someone else writes meanwhile
or the writer fails; on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time

import pytest
from sqlalchemy import select

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.domain.scopes import SCOPE_TYPES
from jiefeng.service import pipeline
from jiefeng.service.engine import Engine
from jiefeng.service.ingest import REJECTED, decision_batches, ingest, transaction_batches
from jiefeng.store import schema as t
from jiefeng.store.sql import SqlStore

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
BATCH = 250  # small batches: several in flight, and scope commands in some of them


def _lines(seed: int = 7) -> list[tuple[int, str]]:
    """A synthetic portfolio as file lines, with what files really hold: some events late,
    a few resent, one invalid line and one id reused for a different event."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    events = generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=seed))[:5_000]
    # The slice must hold operator commands: batches that change the scopes pause the pipe.
    assert {"maintenance_scheduled", "appeal_decided"} <= {e["type"] for e in events}
    rng = random.Random(seed)
    arrival = list(events)
    for _ in range(len(arrival) // 30):  # late: moved a few hundred places later
        index = rng.randrange(len(arrival) - 400)
        if arrival[index]["type"] in ("purchase", "repayment", "login", "activity"):
            arrival.insert(index + rng.randrange(100, 400), arrival.pop(index))
    lines = [json.dumps(e, ensure_ascii=False) for e in arrival]
    lines.insert(len(lines) // 3, lines[len(lines) // 4])  # a resend, batches later
    lines.insert(len(lines) // 2, '{"event_id": "bad-1", "type": "purchase"}')
    reused = dict(arrival[10], amount="1.00") if "amount" in arrival[10] else dict(
        arrival[10], at="2020-01-01T00:00:00+00:00")
    lines.insert(len(lines) - 50, json.dumps(reused))
    return list(enumerate(lines, start=1))


def _engine(url: str) -> Engine:
    return Engine(SqlStore(url), now=lambda: NOW)


def _contents(engine: Engine) -> dict[str, list]:
    """Everything ingest stores, in log order, without the ingest time."""
    e, a, f, p = t.events.c, t.accounts.c, t.effects.c, t.appeals.c
    with engine.store.read() as connection:
        def rows(query):
            return [tuple(row) for row in connection.execute(query)]

        return {
            "events": rows(select(e.event_id, e.account_id, e.type, e.at_utc, e.actor, e.body,
                                  e.outcome).order_by(e.seq)),
            "accounts": rows(select(a.account_id, a.revision, a.events_applied, a.clock_utc,
                                    a.status, a.hold_codes, a.policy_version,
                                    a.snapshot_events).order_by(a.account_id)),
            "effects": rows(select(f.account_id, f.kind, f.code, f.at_utc, f.cause, f.data)
                            .order_by(f.account_id, f.seq)),
            "appeals": rows(select(p.appeal_id, p.account_id, p.status, p.decided_by)
                            .order_by(p.appeal_id)),
        }


def _results(report) -> list[tuple]:
    return [(r.position, r.status, r.event_id, r.field) for r in report.results]


def _sequential(url: str, lines) -> tuple[Engine, object]:
    engine = _engine(url)
    report = ingest(engine.store, lines, engine.base_policy, engine.now, engine.cache,
                    engine.scope_cache, BATCH)
    return engine, report


def _pipelined(url: str, lines, progress=None, helper=None) -> tuple[Engine, object]:
    """`helper`: the state cache of a second folding process (None: none)."""
    engine = _engine(url)
    report = pipeline.ingest_pipelined(engine.store, lines, engine.base_policy, engine.now,
                                       engine.cache, engine.scope_cache, BATCH, progress,
                                       helper_cache_accounts=helper)
    return engine, report


# The pipeline alone, and with a second folding process (a cache smaller than the accounts
# it folds, so that it also reloads states it let go).
FOLDERS = [pytest.param(None, id="one-folder"), pytest.param(30, id="two-folders")]


@pytest.fixture
def second_url(db_url: str, tmp_path):  # noqa: F811
    """A second fresh database of the same backend."""
    if db_url.startswith("postgresql"):
        from backends import fresh_pg_database

        yield from fresh_pg_database()
    else:
        yield str(tmp_path / "second.db")


@pytest.mark.parametrize("helper", FOLDERS)
def test_pipelined_ingest_stores_what_the_sequential_path_stores(
        db_url, second_url, monkeypatch, caplog, helper) -> None:  # noqa: F811
    lines = _lines()
    done: list[int] = []
    locked: list[set[str]] = []  # the types of each batch folded under the locks
    original = pipeline._ingest_batch

    def spy(store, items, *args):
        locked.append({json.loads(line).get("type") for _, line in items})
        return original(store, items, *args)

    monkeypatch.setattr(pipeline, "_ingest_batch", spy)
    dispatched: list[int] = []  # batches the second folding process took a part of
    dispatch = pipeline._FoldHelper.dispatch

    def counted(self, number, part, *args):
        dispatched.append(number)
        accounts = {json.loads(line).get("account_id")
                    for index, (_, line) in enumerate(part.items) if index not in part.shadow}
        # Its own accounts (and appeal decisions that name none, routed to their appeal's).
        assert {pipeline.owner_of(a) for a in accounts if a is not None} == {1}
        return dispatch(self, number, part, *args)

    monkeypatch.setattr(pipeline._FoldHelper, "dispatch", counted)
    sequential, expected = _sequential(db_url, lines)
    with caplog.at_level("WARNING", logger=pipeline.log.name):
        pipelined, report = _pipelined(second_url, lines, done.append, helper)
    assert not [r for r in caplog.records if "stops at batch" in r.getMessage()]
    batches = len(decision_batches(lines, BATCH))
    assert len(dispatched) == (0 if helper is None else batches)
    # Batches with operator commands are pipelined too (with a guard): none went the locking
    # way, though the file has maintenance windows, migrations and a sweep.
    commands = {json.loads(line).get("type") for _, line in lines} & SCOPE_TYPES
    assert {"maintenance_scheduled", "migration_started"} <= commands
    assert locked == []

    assert _results(report) == _results(expected)
    assert sum(done) == len(lines)  # progress counted every line once
    rejected = {r.position: r for r in report.results if r.status == REJECTED}
    assert len(rejected) == 2 and report.duplicates == 1
    assert _contents(pipelined) == _contents(sequential)
    assert pipelined.replay(write=False).mismatched == []
    assert "accepted" in {r.status for r in report.results}


@pytest.mark.parametrize("helper", FOLDERS)
def test_a_resent_file_is_all_duplicates(db_url, helper) -> None:  # noqa: F811
    lines = _lines()
    engine, first = _pipelined(db_url, lines, helper=helper)
    before = _contents(engine)
    again = pipeline.ingest_pipelined(engine.store, lines, engine.base_policy, engine.now,
                                      engine.cache, engine.scope_cache, BATCH,
                                      helper_cache_accounts=helper)
    assert again.accepted == 0
    assert again.duplicates == first.accepted + first.duplicates
    assert _contents(engine) == before


def test_another_writer_meanwhile_stops_the_pipeline_and_nothing_is_lost(
        db_url, second_url, monkeypatch, caplog) -> None:  # noqa: F811
    """Someone writes an account that a batch in flight also changed: the writer refuses
    that batch, and everything from it on goes through the locking path."""
    lines = _lines()
    # A file is decided account by account: the intruder writes to an account that batches
    # DEPTH - 1 and DEPTH both hold, at its newest time in the first, once the writer has
    # committed that batch and before this process computes the next (the earlier batch is
    # still in flight here: its acknowledgement is taken later).
    boundary = pipeline.PIPELINE_DEPTH - 1
    batches = decision_batches(lines, BATCH)
    earlier, last, following = ({e.get("account_id") for batch in parts for _, line in batch
                                 if isinstance((e := json.loads(line)).get("account_id"), str)}
                                for parts in (batches[:boundary], [batches[boundary]],
                                              [batches[boundary + 1]]))
    account = min((last & following) - earlier)  # its row appears when batch DEPTH - 1 commits
    first_at = max(event["at"] for batch in batches[:boundary + 1] for _, line in batch
                   if (event := json.loads(line)).get("account_id") == account)
    intruder = {"event_id": "intruder-1", "type": "login", "at": first_at,
                "account_id": account, "device_id": "D-intruder"}
    other = _engine(db_url)
    compute = pipeline._compute

    def compute_then_intrude(store, writer, number, *args, **kwargs):
        if number == boundary + 1:
            deadline = time.monotonic() + 60
            while other.store.peek(account, SCOPE_TYPES)[1] is None:  # the writer commits alone
                assert time.monotonic() < deadline, "batch DEPTH - 1 never committed"
                time.sleep(0.01)
            assert other.ingest_events([intruder]).accepted == 1
        return compute(store, writer, number, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_compute", compute_then_intrude)
    engine, report = _pipelined(db_url, lines)
    # Seen by the writer ("was written meanwhile") or already here, by a revision the
    # cache does not hold: either way the pipeline stops before anything diverges.
    assert "pipelined ingest stops" in caplog.text

    sequential, expected = _sequential(second_url, lines)
    sequential.ingest_events([intruder])
    assert _results(report) == _results(expected)
    ours, theirs = _contents(engine), _contents(sequential)
    assert sorted(ours["events"]) == sorted(theirs["events"])  # each event once, none lost
    states = [(row[0], row[2], row[3], row[4], row[5]) for row in ours["accounts"]]
    assert states == [(row[0], row[2], row[3], row[4], row[5]) for row in theirs["accounts"]]
    assert engine.replay(write=False).mismatched == []


def test_a_writer_that_dies_leaves_the_rest_to_the_sequential_path(
        db_url, second_url, monkeypatch, caplog) -> None:  # noqa: F811
    lines = _lines()
    compute = pipeline._compute
    calls = {"n": 0}

    def compute_then_kill(store, writer, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            writer.process.kill()
            writer.process.join()
        return compute(store, writer, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_compute", compute_then_kill)
    engine, report = _pipelined(db_url, lines)
    sequential, expected = _sequential(second_url, lines)
    assert "the writer process ended" in caplog.text
    # A batch can commit with its acknowledgement lost as the writer dies: the redo then
    # finds its events stored and says so. Every event is stored exactly once either way.
    for ours, theirs in zip(report.results, expected.results, strict=True):
        assert (ours.position, ours.event_id) == (theirs.position, theirs.event_id)
        assert ours.status == theirs.status or (ours.status, theirs.status) == (
            "duplicate", "accepted")
    assert sorted(_contents(engine)["events"]) == sorted(_contents(sequential)["events"])
    assert engine.replay(write=False).mismatched == []


@pytest.mark.parametrize(("count", "sizes"), [
    (0, []),
    (1, [1]),
    (80, [80]),  # one transaction: never cut
    (81, [44, 20, 10, 5, 2]),  # more than one: the end in halves, down to a thirty-second
    (160, [80, 43, 20, 10, 5, 2]),  # a short last batch takes the first half with it
    (265, [80, 80, 68, 20, 10, 5, 2]),
    (278, [80, 80, 41, 40, 20, 10, 5, 2]),  # a last batch over half a transaction stays alone
])
def test_a_file_is_cut_into_transactions_that_halve_at_the_end(count, sizes) -> None:
    items = list(range(count))
    batches = transaction_batches(items, 80)
    assert [len(b) for b in batches] == sizes
    assert [item for batch in batches for item in batch] == items  # all, once, in order
    assert all(len(b) <= 80 for b in batches)


def test_cutting_again_from_a_cut_point_cuts_where_the_whole_run_did() -> None:
    """The pipeline's fallback redoes the batches from the one that failed: same cuts."""
    items = list(range(1_000))
    batches = transaction_batches(items, 80)
    for start in range(len(batches)):
        rest = [item for batch in batches[start:] for item in batch]
        if len(rest) > 80:
            assert transaction_batches(rest, 80) == batches[start:]


@pytest.mark.parametrize("helper", FOLDERS)
def test_a_shuffled_file_stores_what_the_file_in_time_order_stores(
        db_url, second_url, helper) -> None:  # noqa: F811
    """A file is decided in time order, whatever the order of its lines: shuffled and
    pipelined, it stores the outcomes, states and effects of the file in time order."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    events = generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=7))[:5_000]
    lines = [json.dumps(e, ensure_ascii=False) for e in events]
    shuffled = list(lines)
    random.Random(3).shuffle(shuffled)
    in_order, _ = _sequential(db_url, list(enumerate(lines, start=1)))
    pipelined, report = _pipelined(second_url, list(enumerate(shuffled, start=1)),
                                   helper=helper)
    assert report.rejected == 0
    assert [r.position for r in report.results] == list(range(1, len(lines) + 1))  # as sent
    ours, theirs = _contents(pipelined), _contents(in_order)
    outcomes = {row[0]: row[6] for row in ours["events"]}
    assert outcomes == {row[0]: row[6] for row in theirs["events"]}
    assert sum(1 for o in outcomes.values() if o and o.startswith("declined")) > 0
    # The same states (not the same revisions: the transactions touched them differently).
    assert [row[:1] + row[2:] for row in ours["accounts"]] == [
        row[:1] + row[2:] for row in theirs["accounts"]]
    assert sorted(ours["effects"]) == sorted(theirs["effects"])
    assert pipelined.replay(write=False).mismatched == []


def test_two_writers_a_sweep_reaches_the_accounts_the_other_writes_meanwhile(
        db_url, monkeypatch, caplog) -> None:  # noqa: F811
    """Two pipelined ingests of disjoint accounts, one with a sweep. While the sweep's batch
    is folded, the other process opens an account and moves it past the sweep's time. Folded
    from a read snapshot without a check, the sweep missed that account and its stored effects
    lacked the sweep's hold; now the sweep's guard (the accounts it saw) no longer holds at
    commit, and the batch is folded again under the locks: stored state equals a refold."""
    at = NOW - dt.timedelta(days=30)

    def event(n, kind, when, account, **fields):
        return json.dumps({"event_id": f"{account}-{n}", "type": kind,
                           "at": when.isoformat(), "account_id": account, **fields})

    ours = [event(0, "account_opened", at, "B-1", credit_limit="5000.00",
                  id_expires_on="2035-01-01")]
    ours += [event(n, "login", at + dt.timedelta(hours=n), "B-1", device_id="D-1")
             for n in range(1, 9)]
    sweep_at = at + dt.timedelta(days=2)
    ours.append(json.dumps({"event_id": "op-sweep", "type": "policy_sweep",
                            "at": sweep_at.isoformat(), "actor": "ops.alice", "sweep_id": "s1",
                            "criteria": "credit_limit > 0", "reopen_criteria": "score > 900"}))
    lines = list(enumerate(ours, start=1))
    theirs = [json.loads(event(0, "account_opened", at, "A-1", credit_limit="5000.00",
                               id_expires_on="2035-01-01")),
              json.loads(event(1, "login", sweep_at + dt.timedelta(days=1), "A-1",
                               device_id="D-2"))]
    other = _engine(db_url)
    original = pipeline.BatchIngest.run
    intruders: list[threading.Thread] = []

    def run_then_let_the_other_write(self, candidates):
        if not intruders and any(c.event.type == "policy_sweep" for c in candidates):
            intruder = threading.Thread(target=other.ingest_events, args=(theirs,))
            intruders.append(intruder)
            intruder.start()
            intruder.join(timeout=3)  # it commits now, or waits for this batch's locks
        return original(self, candidates)

    monkeypatch.setattr(pipeline.BatchIngest, "run", run_then_let_the_other_write)
    engine = Engine(SqlStore(db_url), now=lambda: NOW)
    with caplog.at_level("WARNING", logger="jiefeng.service.pipeline"):
        report = pipeline.ingest_pipelined(engine.store, lines, engine.base_policy, engine.now,
                                           engine.cache, engine.scope_cache, 4)
    intruders[0].join()
    assert "opened or moved past an operator command meanwhile" in caplog.text
    assert report.accepted == len(lines)
    assert engine.replay(write=False).mismatched == []
    with engine.store.read() as connection:
        holds = dict(connection.execute(select(t.accounts.c.account_id,
                                               t.accounts.c.hold_codes)).all())
        swept = {row.account_id for row in connection.execute(
            select(t.effects.c.account_id).where(t.effects.c.code == "policy_tightening"))}
    assert "policy_tightening" in holds["A-1"] and "policy_tightening" in holds["B-1"]
    assert swept == {"A-1", "B-1"}  # no effect row lost


def test_a_command_batch_is_folded_again_when_another_writer_moves_an_account_past_it(
        db_url, monkeypatch, caplog) -> None:  # noqa: F811
    """A maintenance window is folded again with every account already at or past its start;
    an account the other writer moves past it while the batch is folded is caught by the guard,
    and the batch goes again under the locks."""
    at = NOW - dt.timedelta(days=30)

    def line(event_id, kind, when, **fields):
        return json.dumps({"event_id": event_id, "type": kind, "at": when.isoformat(),
                           **fields})

    other = _engine(db_url)
    other.ingest_events([json.loads(line("A-0", "account_opened", at, account_id="A-1",
                                         credit_limit="5000.00", id_expires_on="2035-01-01"))])
    start = at + dt.timedelta(days=3)
    ours = [line("B-0", "account_opened", at, account_id="B-1", credit_limit="5000.00",
                 id_expires_on="2035-01-01"),
            line("op-m1", "maintenance_scheduled", at + dt.timedelta(days=1), actor="ops.alice",
                 window_id="W1", start=start.isoformat(),
                 end=(start + dt.timedelta(hours=6)).isoformat())]
    ours += [line(f"B-{n}", "login", start + dt.timedelta(days=n), account_id="B-1",
                  device_id="D-1") for n in range(1, 6)]
    late = [json.loads(line("A-1", "login", start + dt.timedelta(days=2), account_id="A-1",
                            device_id="D-2"))]
    original = pipeline.BatchIngest.run
    moved: list[bool] = []

    def run_then_move_theirs(self, candidates):
        if not moved and any(c.event.type == "maintenance_scheduled" for c in candidates):
            moved.append(True)
            other.ingest_events(late)  # commits now: nothing holds a lock while folding
        return original(self, candidates)

    monkeypatch.setattr(pipeline.BatchIngest, "run", run_then_move_theirs)
    engine = _engine(db_url)
    with caplog.at_level("WARNING", logger="jiefeng.service.pipeline"):
        report = pipeline.ingest_pipelined(engine.store, list(enumerate(ours, start=1)),
                                           engine.base_policy, engine.now, engine.cache,
                                           engine.scope_cache, 2)
    assert moved and report.accepted == len(ours)
    assert "opened or moved past an operator command meanwhile" in caplog.text
    assert engine.replay(write=False).mismatched == []


@pytest.mark.parametrize("helper", [  # every account a sweep moves stays in flight, cached
    pytest.param(None, id="one-folder"), pytest.param(1_000, id="two-folders")])
def test_a_sweep_that_writes_accounts_a_chunk_at_a_time_keeps_the_pipe_going(
        db_url, second_url, monkeypatch, caplog, helper) -> None:  # noqa: F811
    """A sweep's batch advances the accounts it does not hold a chunk at a time and hands
    them to the cache: the batches after it, folded while it is in flight, read them there
    (not from the store, whose rows are older): the pipe goes on, and stores what the
    sequential path stores."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
    from jiefeng.service import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "SWEEP_CHUNK_ACCOUNTS", 7)
    events = generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=7))
    sweep_at = next(i for i, e in enumerate(events) if e["type"] == "policy_sweep")
    lines = list(enumerate((json.dumps(e, ensure_ascii=False)
                            for e in events[: sweep_at + 1_500]), start=1))
    sequential, expected = _sequential(db_url, lines)
    with caplog.at_level("WARNING", logger=pipeline.log.name):
        pipelined, report = _pipelined(second_url, lines, helper=helper)
    assert not [r for r in caplog.records if "stops at batch" in r.getMessage()]
    assert _results(report) == _results(expected)
    assert _contents(pipelined) == _contents(sequential)
    swept = [row for row in _contents(pipelined)["accounts"] if "policy_tightening" in row[5]]
    assert swept  # the sweep closed some lines
    assert pipelined.replay(write=False).mismatched == []

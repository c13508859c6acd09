"""A pipelined file ingest folded in two processes (`pipeline._FoldHelper`): how batches are
cut between the owners of their accounts, how the writer merges the two parts, and what
happens when the second process fails or a file puts one event id in both parts. The
equivalence with the sequential path on whole files is in test_pipeline.py (both modes)."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing

import pytest

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.service import pipeline
from jiefeng.service.engine import Engine
from jiefeng.service.ingest import ingest
from jiefeng.service.writeset import WriteSet
from jiefeng.store.sql import AccountValues, SqlStore
from test_pipeline import BATCH, NOW, _contents, _engine, _lines, _results, second_url  # noqa: F401


def _accounts_of(owner: int, count: int) -> list[str]:
    found = [f"A{n:05d}" for n in range(1_000) if pipeline.owner_of(f"A{n:05d}") == owner]
    return found[:count]


def _line(event_id: str, kind: str, at: str, **fields) -> bytes:
    return json.dumps({"event_id": event_id, "type": kind, "at": at, **fields}).encode()


# --- cutting a batch ------------------------------------------------------------------------


def test_owners_are_a_hash_every_process_agrees_on() -> None:
    ids = [f"A{n:05d}" for n in range(2_000)]
    owners = [pipeline.owner_of(a) for a in ids]
    assert set(owners) == {0, 1} and 0.4 < sum(owners) / len(owners) < 0.6
    # Not Python's salted hash: a fresh interpreter gives the same owners.
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        assert pool.map(pipeline.owner_of, ids[:200]) == owners[:200]


def test_a_batch_is_cut_by_account_owner_and_its_commands_go_to_both(tmp_path) -> None:
    store = SqlStore(str(tmp_path / "cut.db"))
    here, there = _accounts_of(0, 1)[0], _accounts_of(1, 1)[0]
    at = "2026-01-02T10:00:00+08:00"
    items = list(enumerate([
        _line("m1", "maintenance_scheduled", at, actor="ops", window_id="W1",
              start="2026-01-03T00:00:00+08:00", end="2026-01-03T06:00:00+08:00"),
        _line("h1", "login", at, account_id=here, device_id="d"),
        _line("t1", "appeal_submitted", at, account_id=there, appeal_id="AP1",
              hold_code="cash_out", statement="x"),
        _line("t2", "appeal_decided", at, actor="ops", appeal_id="AP1", decision="approve"),
        _line("u1", "appeal_decided", at, actor="ops", appeal_id="AP-unknown",
              decision="approve"),
        b'{"event_id": "bad", "type": "login"',  # does not decode: rejected where it goes
        _line("h2", "login", at, account_id=here, device_id="d"),
    ], start=1))
    mine, theirs = pipeline._Splitter(store).parts(items)
    assert [n for n, _ in mine.items] == [1, 2, 5, 6, 7]
    assert [n for n, _ in theirs.items] == [1, 3, 4]  # the command, then its account's lines
    assert mine.positions == [0, 1, 4, 5, 6] and theirs.positions == [0, 2, 3]
    assert mine.shadow == frozenset() and theirs.shadow == frozenset({0})
    assert mine.owns(here) and not mine.owns(there) and theirs.owns(there)


def test_an_appeal_decision_follows_the_stored_appeal_and_an_activation_is_not_cut(
        tmp_path, monkeypatch) -> None:
    engine = Engine(SqlStore(str(tmp_path / "appeal.db")), now=lambda: NOW)
    there = _accounts_of(1, 1)[0]
    stored = {"AP9": there}  # an appeal the store holds (submitted by an earlier file)
    monkeypatch.setattr(engine.store, "appeal_account",
                        lambda connection, appeal_id: stored.get(appeal_id))
    decision = _line("d1", "appeal_decided", "2029-12-03T00:00:00+08:00", actor="ops",
                     appeal_id="AP9", decision="reject")
    mine, theirs = pipeline._Splitter(engine.store).parts([(1, decision)])
    assert not mine.items and [n for n, _ in theirs.items] == [1]
    activation = _line("p1", "policy_activated", "2029-12-03T00:00:00+08:00", actor="ops",
                       version="v2", sha256="a" * 64)
    assert pipeline._Splitter(engine.store).parts([(1, decision), (2, activation)]) is None


# --- merging the parts ----------------------------------------------------------------------


def _part(rows: list[tuple[str, str, str, int]], account: str, **fields) -> WriteSet:
    """A part's write set with event rows (event id, type, at, position in the batch)."""
    part = WriteSet("2030-01-01T00:00:00.000000+00:00", **fields)
    part.events = [(event_id, account, kind, at, None, "{}", None)
                   for event_id, kind, at, _ in rows]
    part.event_positions = [position for *_, position in rows]
    part.base_revisions = {account: 1}
    part.accounts = AccountValues([], [(account,)], [])
    return part


def test_the_writer_merges_the_parts_into_the_order_one_fold_gives() -> None:
    t1, t2 = "2026-01-01T00:00:01.000000+00:00", "2026-01-01T00:00:02.000000+00:00"
    first = _part([("a1", "login", t1, 0), ("a2", "login", t2, 2), ("a3", "login", t2, 5)],
                  "A")
    # Each part in the order its fold gave: by time, tie rank, place in the batch.
    second = _part([("b3", "login", t1, 6), ("b0", "maintenance_cancelled", t2, 3),
                    ("b1", "account_opened", t2, 4), ("b2", "login", t2, 1)], "B")
    whole = pipeline.merged([first, second])
    # By time; at one instant commands, then openings, then the rest in their batch order.
    assert [row[0] for row in whole.events] == ["a1", "b3", "b0", "b1", "b2", "a2", "a3"]
    assert whole.base_revisions == {"A": 1, "B": 1}
    assert whole.accounts.updates == [("A",), ("B",)]


def test_parts_that_disagree_are_a_conflict_and_guards_add_up() -> None:
    t1 = "2026-01-01T00:00:01.000000+00:00"
    marker = ("after", 3)
    a = _part([("a1", "login", t1, 0)], "A", scope_marker=marker, guard=(t1, 4),
              exclusive=True)
    b = _part([("b1", "login", t1, 1)], "B", scope_marker=marker, guard=(t1, 5),
              exclusive=True)
    whole = pipeline.merged([a, b])
    assert whole.guard == (t1, 9) and whole.exclusive and whole.scope_marker == marker
    with pytest.raises(pipeline._Diverged, match="different scopes"):
        pipeline.merged([a, _part([], "C", scope_marker=("after", 2), guard=(t1, 1))])
    with pytest.raises(pipeline._Diverged, match="guard different accounts"):
        pipeline.merged([a, _part([], "C", scope_marker=marker, guard=(None, 1))])
    with pytest.raises(pipeline._Diverged, match="two parts"):
        pipeline.merged([a, _part([("a9", "login", t1, 2)], "A", scope_marker=marker,
                                  guard=(t1, 0))])


# --- when something goes wrong ---------------------------------------------------------------


def test_a_helper_that_dies_leaves_the_rest_to_the_sequential_path(
        db_url, second_url, monkeypatch, caplog) -> None:  # noqa: F811
    lines = _lines()
    dispatch = pipeline._FoldHelper.dispatch
    calls = {"n": 0}

    def dispatch_then_die(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:
            self.process.kill()
            self.process.join()
        return dispatch(self, *args)

    monkeypatch.setattr(pipeline._FoldHelper, "dispatch", dispatch_then_die)
    engine = _engine(db_url)
    with caplog.at_level("WARNING", logger=pipeline.log.name):
        report = pipeline.ingest_pipelined(engine.store, lines, engine.base_policy,
                                           engine.now, engine.cache, engine.scope_cache,
                                           BATCH, helper_cache_accounts=1_000)
    assert "the helper process ended" in caplog.text
    sequential = _engine(second_url)
    expected = ingest(sequential.store, lines, sequential.base_policy, sequential.now,
                      sequential.cache, sequential.scope_cache, BATCH)
    # Nothing of the batch it died in was sent: every result is the sequential path's.
    assert _results(report) == _results(expected)
    assert _contents(engine) == _contents(sequential)
    assert engine.replay(write=False).mismatched == []


def test_an_event_id_reused_for_another_account_goes_where_its_first_line_went(
        db_url, second_url, caplog) -> None:  # noqa: F811
    """The file puts a repeated id next to its first line; the sequential path rejects it as
    repeated in the batch. Sent to its own account's process, it would be checked there
    against an account not yet opened: it goes with its first line, and is rejected for the
    same reason."""
    here, there = _accounts_of(0, 1)[0], _accounts_of(1, 1)[0]
    base = dt.datetime(2029, 6, 1, tzinfo=dt.UTC)
    events = []
    for account in (here, there):
        events.append({"event_id": f"{account}-open", "type": "account_opened",
                       "at": base.isoformat(), "account_id": account,
                       "credit_limit": "5000.00", "id_expires_on": "2035-01-01"})
        events += [{"event_id": f"{account}-{n}", "type": "login",
                    "at": (base + dt.timedelta(hours=n)).isoformat(), "account_id": account,
                    "device_id": "d1"} for n in range(1, 300)]
    events.append({"event_id": f"{here}-5", "type": "login",  # here's id, there's account
                   "at": (base + dt.timedelta(hours=7)).isoformat(), "account_id": there,
                   "device_id": "d2"})
    lines = list(enumerate((json.dumps(e) for e in events), start=1))
    engine = _engine(db_url)
    with caplog.at_level("WARNING", logger=pipeline.log.name):
        report = pipeline.ingest_pipelined(engine.store, lines, engine.base_policy,
                                           engine.now, engine.cache, engine.scope_cache,
                                           BATCH, helper_cache_accounts=1_000)
    sequential = _engine(second_url)
    expected = ingest(sequential.store, lines, sequential.base_policy, sequential.now,
                      sequential.cache, sequential.scope_cache, BATCH)
    assert _results(report) == _results(expected)
    assert [r.field for r in report.results if r.status == "rejected"] == ["event_id"]
    assert _contents(engine) == _contents(sequential)
    assert engine.replay(write=False).mismatched == []


def test_processes_started_ahead_are_closed_when_the_file_is_one_transaction(tmp_path) -> None:
    from jiefeng.service.event_file import scan

    engine = Engine(SqlStore(str(tmp_path / "one.db")), now=lambda: NOW)
    processes = engine.start_file_processes()
    assert processes.writer.process.is_alive()
    data = b"\n".join(_line(f"e{n}", "login", "2029-12-01T00:00:00+08:00", account_id="A1",
                            device_id="d") for n in range(3))
    import io

    with scan(io.BytesIO(data)) as lines:
        report = engine.ingest_file(lines, processes=processes)
    assert report.count("rejected") == 3  # no such account: rejected, and nothing hangs
    assert not processes.writer.process.is_alive()
    assert processes.helper is None or not processes.helper.process.is_alive()


def test_an_id_reused_across_batches_while_the_first_is_in_flight_is_caught_at_commit(
        db_url, second_url) -> None:  # noqa: F811
    """Batches cut by the caller: an id of one process's account in batch 0 is reused for
    the other's in batch 1. If batch 0 is still in flight, the other process finds the id
    nowhere and takes it; the log's unique key refuses the merged batch, and from it on the
    batches go the sequential way. Either way: the sequential path's results and rows."""
    from jiefeng.service.ingest import ingest_batches

    here, there = _accounts_of(0, 1)[0], _accounts_of(1, 1)[0]
    at = "2029-06-01T00:00:00+08:00"
    opened = {"type": "account_opened", "at": at, "credit_limit": "5000.00",
              "id_expires_on": "2035-01-01"}
    first = [json.dumps({**opened, "event_id": f"{a}-open", "account_id": a})
             for a in (here, there)]
    first.append(json.dumps({"event_id": "X1", "type": "login", "at": at, "account_id": here,
                             "device_id": "d1"}))
    second = [json.dumps({"event_id": "X1", "type": "login", "at": at, "account_id": there,
                          "device_id": "d2"}),
              json.dumps({"event_id": "X2", "type": "login", "at": at, "account_id": there,
                          "device_id": "d2"})]
    numbered = list(enumerate(first + second, start=1))
    batches = [numbered[:3], numbered[3:]]
    engine = _engine(db_url)
    report = pipeline.ingest_batches_pipelined(engine.store, batches, engine.base_policy,
                                               engine.now, engine.cache, engine.scope_cache,
                                               helper_cache_accounts=1_000)
    sequential = _engine(second_url)
    expected = ingest_batches(sequential.store, batches, sequential.base_policy,
                              sequential.now, sequential.cache, sequential.scope_cache)
    assert _results(report) == _results(expected)
    assert [(r.position, r.field) for r in report.results if r.status == "rejected"] == [
        (4, "event_id")]
    assert _contents(engine) == _contents(sequential)


def test_a_files_scan_cuts_its_batches_as_reading_their_lines_does(tmp_path) -> None:
    """A file's batches are cut by the owners its scan found (appeal decisions routed,
    repeats with their first line) without reading every line again: the same parts."""
    import io

    from jiefeng.service.event_file import scan

    lines = _lines()
    store = SqlStore(str(tmp_path / "scan.db"))
    data = b"\n".join(line.encode() for _, line in lines)
    with scan(io.BytesIO(data)) as file:
        batches = file.batches(BATCH)
        assert len(batches) > 5
        reading = pipeline._Splitter(store)  # remembers the file's appeals batch to batch
        for number, items in enumerate(batches):
            owners = batches.owners(number)
            assert owners is not None and set(owners) <= {-1, 0, 1}
            by_owner = pipeline._Splitter(store).parts(items, owners)
            by_line = reading.parts(items)
            assert (by_owner is None) == (by_line is None)
            if by_owner is not None:
                for ours, theirs in zip(by_owner, by_line, strict=True):
                    assert (ours.items, ours.positions, ours.shadow) == (
                        theirs.items, theirs.positions, theirs.shadow)

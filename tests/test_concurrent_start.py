"""Several processes that start on one new database at once: one creates the schema, the
others find it there. Before, on PostgreSQL, the second failed with a duplicate type
("pg_type_typname_nsp_index") and its whole ingest was lost."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.service.engine import Engine
from jiefeng.store.sql import HEAD_REVISION, SqlStore, enable_wal
from refold import assert_stored_equals_refold


def _open(url: str, start: object, results: object) -> None:
    start.wait(timeout=30)  # all at once
    try:
        store = SqlStore(url)
        results.put(store.current_revision())
        store.close()
    except Exception as error:  # noqa: BLE001 - the test reports it
        results.put(f"{type(error).__name__}: {error}")


def test_processes_starting_together_on_a_new_database_all_succeed(db_url) -> None:  # noqa: F811
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [context.Process(target=_open, args=(db_url, start, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert outcomes == [HEAD_REVISION] * 4


def _portfolio_file(path, seed: int, prefix: str) -> None:
    """A synthetic portfolio, operator commands included, under ids of its own."""
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    with open(path, "w", encoding="utf-8") as out:
        for event in generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=seed)):
            event["event_id"] = f"{prefix}-{event['event_id']}"
            for key in ("account_id", "appeal_id"):
                if event.get(key):
                    event[key] = f"{prefix}-{event[key]}"
            out.write(json.dumps(event, ensure_ascii=False) + "\n")


def test_two_concurrent_file_ingests_of_disjoint_accounts_lose_no_effect(
        db_url, tmp_path) -> None:  # noqa: F811
    """Two `jiefeng ingest` processes (each pipelined: a folding and a writing process) on a
    new database, each with its own accounts and operator commands. Every account's stored
    effects and holds are those a fold of the log gives: nothing lost, nothing twice."""
    files = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    _portfolio_file(files[0], 11, "A")
    _portfolio_file(files[1], 12, "B")
    jiefeng = Path(sys.executable).with_name("jiefeng")
    runs = [subprocess.Popen([str(jiefeng), "ingest", str(f), "--db", db_url, "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for f in files]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert "Traceback" not in err and "accepted" in out, err

    store = SqlStore(db_url, upgrade=False)
    logs = assert_stored_equals_refold(Engine(store))
    assert {a[0] for a in logs} == {"A", "B"} and len(logs) == 200


def test_many_pairs_of_processes_opening_a_new_sqlite_file_all_succeed(tmp_path) -> None:
    """Two processes switching a new SQLite file to WAL at once: SQLite refuses one of them
    at once ("database is locked", the busy timeout not consulted), a few times in a hundred
    pairs; that one asks again (`enable_wal`). Spawned, not forked: this process may have
    threads; each pair meets at `start` once both have imported jiefeng."""
    context = multiprocessing.get_context("spawn")
    outcomes = []
    for pair in range(60):
        url = f"sqlite:///{tmp_path / f'pair-{pair}.db'}"
        start, results = context.Event(), context.Queue()
        workers = [context.Process(target=_open, args=(url, start, results)) for _ in range(2)]
        for worker in workers:
            worker.start()
        start.set()
        outcomes += [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
    assert outcomes == [HEAD_REVISION] * 120


class _Cursor:
    """Answers "database is locked" to its first `locked` requests for WAL."""

    def __init__(self, locked: int, message: str = "database is locked") -> None:
        self.locked, self.message, self.asked = locked, message, 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.asked += 1
        if self.asked <= self.locked:
            raise sqlite3.OperationalError(self.message)


def test_wal_is_asked_for_again_while_locked_until_the_timeout() -> None:
    cursor = _Cursor(locked=3)
    enable_wal(cursor, timeout_s=5)
    assert cursor.asked == 4
    always = _Cursor(locked=10**9)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        enable_wal(always, timeout_s=0.05)
    assert 2 <= always.asked < 20  # asked again, with growing pauses, then given up
    other = _Cursor(locked=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        enable_wal(other, timeout_s=5)
    assert other.asked == 1  # not a lock: not asked again

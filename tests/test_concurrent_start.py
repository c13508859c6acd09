"""Several processes that start on one new database at once: one creates the schema, the
others find it there. Before, on PostgreSQL, the second failed with a duplicate type
("pg_type_typname_nsp_index") and its whole ingest was lost."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.service.engine import Engine
from jiefeng.store.sql import HEAD_REVISION, SqlStore
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

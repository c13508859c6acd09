"""Several processes that start on one new database at once: one creates the schema, the
others find it there. Before, on PostgreSQL, the second failed with a duplicate type
("pg_type_typname_nsp_index") and its whole ingest was lost."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.domain import core
from jiefeng.service.engine import Engine
from jiefeng.service.states import parse_recorded
from jiefeng.store import schema as t
from jiefeng.store.sql import HEAD_REVISION, SqlStore


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
    engine = Engine(store)
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
    assert {a[0] for a in logs} == {"A", "B"} and len(logs) == 200
    for account_id, events in logs.items():
        state, effects = core.fold(account_id, events, engine.base_policy, scopes)
        core.advance_to(state, t.parse_utc_text(rows[account_id].clock_utc),
                        engine.base_policy, scopes, effects)
        expected = [(e.kind, e.code, t.utc_text(e.at), e.cause) for e in effects
                    if e.kind != "purchase_decided"]
        assert stored[account_id] == expected, account_id
        holds = core.active_holds(state, state.clock, scopes)
        assert rows[account_id].hold_codes == ",".join(h.code for h in holds), account_id

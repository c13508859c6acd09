"""`jiefeng demo`: a synthetic portfolio in which every cause occurs and lifts, run end to end.

Generate (seeded) -> ingest through the same service the API uses, with a progress bar ->
let time pass to the horizon -> table of holds placed and released by code -> what the credit
ledger did (statements judged by outcome, installment plans, the share of card holders frozen
by `overdue`), read back from the store -> HTML report with a chart of holds by code over time
-> one explanation per cause.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jiefeng.batch.ledger_summary import LedgerSummary, summarize_ledger
from jiefeng.batch.timeline import HoldInterval, Timeline, account_intervals, scoped_intervals
from jiefeng.domain import holds as H
from jiefeng.domain.money import format_fen
from jiefeng.policy.schema import Policy
from jiefeng.service.engine import Engine
from jiefeng.store.sql import SqlStore


def _explain_moment(interval: HoldInterval) -> dt.datetime:
    """A moment well inside the hold: an hour in, or halfway if it is shorter than two hours."""
    if interval.end is None:
        return interval.start + dt.timedelta(hours=1)
    return interval.start + min(dt.timedelta(hours=1), (interval.end - interval.start) / 2)


def print_ledger(console: Console, ledger: LedgerSummary, policy: Policy) -> None:
    """The statements judged by outcome, the installment plans, the `overdue` share."""
    billing = policy.billing
    table = Table(title=f"Statements judged by outcome (minimum {billing.minimum_payment_pct} % "
                        f"of the revolving principal; read from the store)")
    table.add_column("outcome")
    table.add_column("statements", justify="right")
    table.add_column("accounts", justify="right")
    for label, statements, accounts in ledger.rows():
        table.add_row(label, str(statements), str(accounts))
    console.print(table)
    months = ", ".join(f"{m} months {n}" for m, n in ledger.plans_by_months.items()) or "none"
    console.print(
        f"installment plans created: {ledger.plans} on {ledger.plan_accounts} accounts ({months}; "
        f"{ledger.plans_after_statement} after their statement was issued), principal "
        f"¥{format_fen(ledger.plan_principal_fen)}, fees ¥{format_fen(ledger.plan_fee_fen)}")
    console.print(
        f"frozen by overdue at any time: {ledger.overdue_accounts} of {ledger.card_holders} "
        f"card holders ({ledger.overdue_share:.1%}); {ledger.revolving_never_overdue} revolved "
        f"without ever being overdue")


class DemoRefused(ValueError):
    """The demo cannot run on this database; the message says why and what to do."""


def _remove_sqlite_file(db: str) -> None:
    """--fresh: the demo's SQLite file (and its WAL) starts again; PostgreSQL is not dropped."""
    from jiefeng.store.connect import sqlite_path
    from jiefeng.store.sql import database_url

    path = sqlite_path(database_url(db))
    if path is None:
        raise DemoRefused("--fresh: only for a SQLite file; drop and create the PostgreSQL "
                          "database yourself, or give --db another one")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _check_empty_or_same(engine: Engine, db: str, events: list[dict[str, Any]]) -> None:
    """A database that already holds other events (another seed or size, or real data) would
    mix with the demo: refuse it. The same demo again is fine: its events are duplicates."""
    from sqlalchemy import select

    from jiefeng.store import schema as t

    with engine.store.read() as connection:
        stored = engine.store.count_events(connection)
        if stored == 0:
            return
        ids = [events[0]["event_id"], events[len(events) // 2]["event_id"],
               events[-1]["event_id"]]
        known = set(connection.execute(
            select(t.events.c.event_id).where(t.events.c.event_id.in_(ids))).scalars())
    if stored == len(events) and known == set(ids):
        return
    raise DemoRefused(
        f"--db {db}: already holds {stored:,} events that are not this demo's (another seed, "
        "size or your own data); give the demo its own --db, or --fresh to start this SQLite "
        "file again")


def run_demo(*, db: str, accounts: int, months: int, seed: int, out: Path, lang: str,
             console: Console, progress: Callable[[], Any],
             fresh: bool = False) -> dict[str, Any]:
    """Raises DemoRefused (a used database, a rejected line) with the message to show."""
    from jiefeng.batch.report import write_report
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
    from jiefeng.explain.render import render_text

    spec = PortfolioSpec(accounts=accounts, months=months, seed=seed)
    started = time.perf_counter()
    console.print(f"generating {accounts} accounts over {months} months (seed {seed}) ...")
    events = generate_portfolio(spec)
    horizon = max(dt.datetime.fromisoformat(e["at"]) for e in events) + dt.timedelta(days=1)

    # The synthetic world's clock is its horizon: ingest accepts events up to a few minutes
    # ahead of its clock (policy ingest.max_future_minutes), and the history may run past today.
    if fresh:
        _remove_sqlite_file(db)
    engine = Engine(SqlStore(db), now=lambda: horizon)
    _check_empty_or_same(engine, db, events)
    policy = engine.policy
    items = list(enumerate(events, start=1))
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    rejected_examples: list[str] = []
    with progress() as bar:
        task = bar.add_task("ingest events", total=len(items))
        # As `jiefeng ingest` does: folded here while a second process writes.
        report = engine.ingest_file(items, lambda done: bar.advance(task, done))
        counts["accepted"] += report.accepted
        counts["duplicate"] += report.duplicates
        counts["rejected"] += report.rejected
        rejected_examples.extend(
            f"#{r.position} {r.event_id}: {r.field}: {r.reason}"
            for r in report.results if r.status == "rejected")
        states = engine.all_states()
        task = bar.add_task("let time pass", total=len(states))
        engine.advance_all(horizon, progress=lambda n: bar.advance(task, n))
    ingest_seconds = time.perf_counter() - started
    console.print(
        f"events: accepted {counts['accepted']}, duplicate {counts['duplicate']}, "
        f"rejected {counts['rejected']} ({ingest_seconds:.1f} s)")
    for line in rejected_examples[:5]:
        console.print(f"  rejected {line}", markup=False)
    if counts["rejected"]:  # the generator's events are all valid: a rejection is a defect
        raise DemoRefused(f"{counts['rejected']} generated events were rejected (first: "
                          f"{rejected_examples[0]}); the demo stops without a report")

    states = engine.all_states()
    scopes = engine.scopes()
    timeline = Timeline(account_intervals(engine.hold_effect_rows())
                        + scoped_intervals(scopes, states, horizon))
    placed = timeline.placed_by_code()
    released = timeline.released_by_code(horizon)

    table = Table(title=f"Holds placed and released (policy {policy.version})")
    table.add_column("hold code")
    table.add_column("placed", justify="right")
    table.add_column("released", justify="right")
    table.add_column("active at end", justify="right")
    for code in H.HOLD_CODES:
        if code == H.MANUAL_REVIEW and code not in placed:
            continue
        p, r = placed.get(code, 0), released.get(code, 0)
        table.add_row(code, str(p), str(r), str(p - r))
    console.print(table)
    statuses: dict[str, int] = {}
    for state in states.values():
        status = "closed" if any(c in H.LINE_CLOSING_CODES for c in state.holds) else (
            "frozen" if state.holds else "active")
        statuses[status] = statuses.get(status, 0) + 1
    console.print("status at the horizon: " + ", ".join(
        f"{k} {v}" for k, v in sorted(statuses.items())))
    ledger = summarize_ledger(engine.store, horizon, policy)
    print_ledger(console, ledger, policy)

    explanations: list[tuple[str, str, str]] = []
    first = timeline.first_of_each_code()
    for code in H.HOLD_CODES:
        interval = first.get(code)
        if interval is None:
            continue
        at = _explain_moment(interval)
        explanation = engine.explain(interval.account_id, at)
        zh, en = render_text(explanation, "zh-CN"), render_text(explanation, "en")
        explanations.append((code, zh, en))
        local = at.astimezone(policy.zone).isoformat()
        console.rule(f"{code}: account {interval.account_id} at {local}")
        console.print(zh if lang == "zh-CN" else en, markup=False, highlight=False,
                      soft_wrap=True)

    tz = policy.zone
    first_day = min(dt.datetime.fromisoformat(e["at"]) for e in events).astimezone(tz).date()
    active_by_day = timeline.active_by_day(first_day, horizon.astimezone(tz).date(), tz)
    out.mkdir(parents=True, exist_ok=True)
    report_path = write_report(
        out / "demo-report.html",
        title=f"jiefeng demo: {accounts} accounts, {months} months, seed {seed}",
        policy_version=policy.version,
        active_by_day=active_by_day,
        placed_by_code=placed,
        released_by_code=released,
        explanations=explanations,
        ledger=ledger,
    )
    missing = [code for code in H.HOLD_CODES
               if code != H.MANUAL_REVIEW and (placed.get(code, 0) == 0
                                               or released.get(code, 0) == 0)]
    if missing:
        console.print(f"[yellow]causes not both placed and lifted: {', '.join(missing)}[/yellow]")
    console.print(f"report: {report_path}")
    return {"placed": placed, "released": released, "counts": counts, "missing": missing,
            "report": report_path, "ledger": ledger}

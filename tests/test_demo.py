"""`jiefeng demo` end to end on a small portfolio: every cause is placed and lifted, the table,
the ledger's outcomes, the explanations and the report are produced, and a second run is
idempotent."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from typer.testing import CliRunner

from jiefeng.batch.ledger_summary import (
    BELOW_MINIMUM,
    MINIMUM_MET,
    NOT_YET_DUE,
    OUTCOME_LABELS,
    PAID_IN_FULL,
    summarize_ledger,
)
from jiefeng.batch.synthetic import PortfolioSpec, behaviour_of, generate_portfolio, scenario_of
from jiefeng.cli import app
from jiefeng.domain.holds import HOLD_CODES, MANUAL_REVIEW
from jiefeng.policy.schema import default_policy
from jiefeng.store.sql import SqlStore

CAUSES = [code for code in HOLD_CODES if code != MANUAL_REVIEW]


def test_demo_places_and_lifts_every_cause(tmp_path: Path) -> None:
    db, out = str(tmp_path / "demo.db"), tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--accounts", "120", "--months", "17", "--db", db,
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rejected 0" in result.output
    assert "causes not both placed and lifted" not in result.output
    for code in CAUSES:
        row = next(line for line in result.output.splitlines() if f" {code} " in line)
        placed, released = [int(cell) for cell in row.replace("│", " ").split()[1:3]]
        assert placed > 0 and released == placed, row
        assert f"{code}: account" in result.output  # one explanation per cause
    # The ledger's outcomes, read back from the store.
    text = " ".join(result.output.split())  # rich wraps long lines
    counts = {}
    for outcome in (PAID_IN_FULL, MINIMUM_MET, BELOW_MINIMUM):
        row = next(line for line in result.output.splitlines()
                   if OUTCOME_LABELS[outcome] in line)
        counts[outcome] = [int(cell) for cell in row.replace("│", " ").split()[-2:]]
        assert counts[outcome][0] > 0 and counts[outcome][1] > 0, row
    assert counts[PAID_IN_FULL][0] > counts[MINIMUM_MET][0] > 10 * counts[BELOW_MINIMUM][0]
    placed = re.search(r"installment plans created: (\d+) on (\d+) accounts", text)
    assert placed is not None and int(placed.group(1)) > 0, text
    share = re.search(r"frozen by overdue at any time: (\d+) of (\d+) card holders", text)
    assert share is not None, text
    frozen, holders = int(share.group(1)), int(share.group(2))
    assert 0 < frozen <= 0.1 * holders  # a minority, not "three card holders in four"
    html = (out / "demo-report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert "Credit ledger" in html and OUTCOME_LABELS[BELOW_MINIMUM] in html
    assert (out / "demo-report-holds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = runner.invoke(app, ["demo", "--accounts", "120", "--months", "17", "--db", db,
                                "--out", str(out)])
    assert again.exit_code == 0
    assert "accepted 0" in again.output and "rejected 0" in again.output


def test_ledger_summary_agrees_with_the_portfolio(tmp_path: Path) -> None:
    """The summary reads the engine's effects: it finds exactly the accounts the generator
    made miss a minimum, the plans it sent, and revolvers who are never overdue."""
    db = str(tmp_path / "demo.db")
    result = CliRunner().invoke(app, ["demo", "--accounts", "120", "--months", "17", "--db", db,
                                      "--out", str(tmp_path / "out"), "--seed", "5"])
    assert result.exit_code == 0, result.output
    spec = PortfolioSpec(accounts=120, months=17, seed=5)
    events = generate_portfolio(spec)
    horizon = max(dt.datetime.fromisoformat(e["at"]) for e in events) + dt.timedelta(days=1)
    store = SqlStore(db)
    try:
        summary = summarize_ledger(store, horizon, default_policy())
    finally:
        store.close()
    behaviours = behaviour_of(spec)
    assert summary.overdue_accounts == len(scenario_of(spec)["overdue"])
    assert summary.accounts[BELOW_MINIMUM] == summary.overdue_accounts
    assert summary.plans == sum(1 for e in events if e["type"] == "installment_plan_created")
    assert summary.plan_accounts <= len(behaviours["installment_user"])
    assert summary.plans_after_statement > 0
    carriers = set(behaviours["revolver"]) | set(behaviours["minimum_payer"])
    assert summary.revolving_never_overdue >= 0.8 * len(carriers - set(
        behaviours["below_minimum"]))
    assert summary.accounts[PAID_IN_FULL] >= len(behaviours["transactor"])
    assert summary.statements[NOT_YET_DUE] <= summary.card_holders
    assert summary.card_holders == 120


def test_demo_ranges_in_help_are_the_ones_the_generator_accepts(tmp_path: Path) -> None:
    """--help states the ranges; a value outside them is exit 2 naming the option, one inside
    them runs (the smallest allowed portfolio is accepted by the generator)."""
    from jiefeng.batch.limits import MAX_MONTHS, MIN_ACCOUNTS, MIN_MONTHS
    from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio

    runner = CliRunner()
    for option, value in (("--accounts", MIN_ACCOUNTS - 1), ("--months", MIN_MONTHS - 1),
                          ("--months", MAX_MONTHS + 1)):
        result = runner.invoke(app, ["demo", option, str(value), "--db",
                                     str(tmp_path / "x.db")])
        assert result.exit_code == 2, result.output
        assert option in result.output
    assert not (tmp_path / "x.db").exists()
    for months in (MIN_MONTHS, MAX_MONTHS):
        assert generate_portfolio(PortfolioSpec(accounts=MIN_ACCOUNTS, months=months, seed=1))


def test_a_used_database_is_refused_unless_fresh(tmp_path: Path) -> None:
    """Another demo (or real data) in the database would mix with this one: exit 2, nothing
    added; --fresh starts the SQLite file again (hardening item 25)."""
    from jiefeng.store.sql import SqlStore

    db, out = str(tmp_path / "demo.db"), tmp_path / "out"
    args = ["demo", "--accounts", "120", "--months", "17", "--db", db, "--out", str(out)]
    assert CliRunner().invoke(app, [*args, "--seed", "1"]).exit_code == 0
    with SqlStore(db).read() as connection:
        before = connection.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
    other = CliRunner().invoke(app, [*args, "--seed", "2"])
    assert other.exit_code == 2
    assert "already holds" in other.output and "--fresh" in other.output
    with SqlStore(db).read() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM events").scalar_one() == before
    fresh = CliRunner().invoke(app, [*args, "--seed", "2", "--fresh"])
    assert fresh.exit_code == 0, fresh.output
    assert "rejected 0" in fresh.output
    with SqlStore(db).read() as connection:
        seeded_2 = connection.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
    assert seeded_2 > 0
    refused = CliRunner().invoke(app, [*args[:-2], "--out", str(out), "--fresh", "--db",
                                  "postgresql://postgres@127.0.0.1:5432/x"])
    assert refused.exit_code == 2 and "only for a SQLite file" in refused.output

"""A small portfolio with known backtest outcomes, shared by the backtest tests.

An account that goes overdue and is cured (its cure probation is 90 days under the baseline,
120 under the candidate), an account whose score sits between the two policies' thresholds,
and accounts that never freeze.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jiefeng.cli import app
from jiefeng.policy.schema import default_policy_text
from jiefeng.service.engine import Engine
from jiefeng.store.sql import SqlStore

TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=TZ)
runner = CliRunner()


def ev(event_id: str, type_: str, at: dt.datetime, account: str, **fields: Any) -> dict:
    return {"event_id": event_id, "type": type_, "at": at.isoformat(), "account_id": account,
            **fields}


def portfolio() -> list[dict]:
    events = []
    for account in ("CURED", "SCORE", "QUIET1", "QUIET2"):
        events.append(ev(f"{account}-open", "account_opened", T0, account,
                         credit_limit="10000.00", id_expires_on="2035-01-01"))
    # CURED: 1,000 bought, the minimum of the 2026-02-01 statement (due 02-09) unpaid, so
    # overdue from 02-10; repaid in full on 02-20: the overdue hold lifts, cure probation starts.
    events.append(ev("CURED-p1", "purchase", T0 + dt.timedelta(days=5), "CURED",
                     amount="1000.00", merchant_id="M-1"))
    events.append(ev("CURED-r1", "repayment", dt.datetime(2026, 2, 20, 12, tzinfo=TZ), "CURED",
                     amount="1200.00"))
    # SCORE: 610 is above the baseline's 600 and below the candidate's 620.
    events.append(ev("SCORE-s1", "score_update", T0 + dt.timedelta(days=3), "SCORE",
                     score=610))
    # QUIET accounts buy and pay in full: nothing to freeze under either policy.
    for account in ("QUIET1", "QUIET2"):
        events.append(ev(f"{account}-p1", "purchase", T0 + dt.timedelta(days=2), account,
                         amount="123.45", merchant_id=f"M-{account}"))
        events.append(ev(f"{account}-r1", "repayment", dt.datetime(2026, 2, 3, tzinfo=TZ),
                         account, amount="123.45"))
    events.append(ev("END-activity", "activity", dt.datetime(2026, 9, 1, tzinfo=TZ), "QUIET1",
                     category="payment"))
    return events


def candidate_text() -> str:
    text = default_policy_text()
    for old, new in (("[cure_probation]\ndays = 90 ", "[cure_probation]\ndays = 120"),
                     ("threshold = 600 ", "threshold = 620 "),
                     ("release_at = 600 ", "release_at = 620 ")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text.replace('version = "', 'version = "candidate-', 1)


@pytest.fixture()
def stored(tmp_path: Path) -> tuple[str, Path]:
    db = str(tmp_path / "bt.db")
    report = Engine(SqlStore(db)).ingest_events(portfolio())
    assert report.rejected == 0, report
    candidate = tmp_path / "candidate.toml"
    candidate.write_text(candidate_text(), encoding="utf-8")
    return db, candidate


def backtest(db: str, candidate: Path, out: Path, *extra: str):
    return runner.invoke(app, ["backtest", "--policy", str(candidate), "--db", db,
                               "--out", str(out), *extra])

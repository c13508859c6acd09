"""Backtests: the stored history replayed under a baseline and a candidate policy.

A small portfolio with known outcomes: an account that goes overdue and is cured (its cure
probation is 90 days under the baseline, 120 under the candidate), an account whose score sits
between the two policies' thresholds, and accounts that never freeze.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jiefeng.batch import backtest as B
from jiefeng.cli import app
from jiefeng.domain import holds as H
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


def test_longer_cure_probation_and_higher_threshold_are_measured(stored, tmp_path):
    db, candidate = stored
    result = backtest(db, candidate, tmp_path / "out")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "backtest.json").read_text(encoding="utf-8"))
    cure = data["by_code"]["cure_probation"]
    # Placed on 02-20 under both; lifts by itself after 90 days against 120.
    assert cure["baseline"]["holds_placed"] == cure["candidate"]["holds_placed"] == 1
    assert cure["baseline"]["median_hours_to_release"] == 90 * 24
    assert cure["candidate"]["median_hours_to_release"] == 120 * 24
    assert cure["candidate"]["account_days_frozen"] - cure["baseline"]["account_days_frozen"] \
        == pytest.approx(30)
    assert cure["baseline"]["released_by"]["time"] == 1.0
    overdue = data["by_code"]["overdue"]
    assert overdue["baseline"]["released_by"]["condition"] == 1.0  # repaid
    # Only the candidate freezes SCORE; nobody else differs.
    score = data["by_code"][H.SCORE_BELOW_THRESHOLD]
    assert score["baseline"]["accounts"] == 0 and score["candidate"]["accounts"] == 1
    assert score["accounts_frozen_only_candidate"] == 1
    assert data["accounts"]["compared"] == 4
    assert data["by_status_at_end"]["candidate"]["frozen"] == \
        data["by_status_at_end"]["baseline"]["frozen"] + 1
    differing = {a["account_id"] for a in data["differing_sample"]}
    assert "SCORE" in differing and "QUIET1" not in differing
    score_view = next(a for a in data["differing_sample"] if a["account_id"] == "SCORE")
    assert score_view["baseline"]["status"] == "active"
    assert score_view["candidate"]["status"] == "frozen"
    assert "620" in score_view["candidate"]["explanation"]["en"]
    html = (tmp_path / "out" / "backtest.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 2  # frozen over time, time to release
    assert "SCORE" in html


def test_same_inputs_give_byte_identical_json_whatever_the_workers(stored, tmp_path):
    db, candidate = stored
    one = backtest(db, candidate, tmp_path / "one")
    two = backtest(db, candidate, tmp_path / "two", "--workers", "2")
    assert one.exit_code == 0 and two.exit_code == 0, (one.output, two.output)
    assert (tmp_path / "one" / "backtest.json").read_bytes() == \
        (tmp_path / "two" / "backtest.json").read_bytes()


def test_window_and_selection(stored, tmp_path):
    db, candidate = stored
    result = backtest(db, candidate, tmp_path / "out", "--accounts", "score >= 600",
                      "--from", "2026-01-10T00:00:00+08:00", "--to", "2026-03-01T00:00:00+08:00")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "backtest.json").read_text(encoding="utf-8"))
    # Only SCORE has a score as of 01-10; the others' NULL score does not match.
    assert data["accounts"]["compared"] == 1
    assert data["accounts"]["left_out_by_criteria"] == 3
    assert data["window"] == {"from": "2026-01-10T00:00:00+08:00",
                              "to": "2026-03-01T00:00:00+08:00"}
    sampled = backtest(db, candidate, tmp_path / "s", "--sample", "2")
    assert sampled.exit_code == 0, sampled.output
    assert json.loads((tmp_path / "s" / "backtest.json").read_text())["accounts"]["compared"] == 2


@pytest.mark.parametrize("args, message", [
    (("--accounts", "score >"), "--accounts"),
    (("--accounts", "no_such_feature > 1"), "--accounts"),
    (("--from", "2026-05-01T00:00:00+08:00", "--to", "2026-02-01T00:00:00+08:00"), "--to"),
    (("--from", "yesterday"), "--from"),
    (("--to", "2026-03-01T00:00:00"), "--to"),
    (("--engine", "spark"), "--engine spark"),
    (("--engine", "flink"), "--engine"),
    (("--baseline", "missing.toml"), "missing.toml"),
])
def test_bad_options_are_refused_with_the_option_named(stored, tmp_path, args, message):
    db, candidate = stored
    result = backtest(db, candidate, tmp_path / "out", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (tmp_path / "out" / "backtest.json").exists()


def test_an_empty_database_is_refused(tmp_path):
    db = str(tmp_path / "empty.db")
    SqlStore(db).close()
    candidate = tmp_path / "c.toml"
    candidate.write_text(candidate_text(), encoding="utf-8")
    result = backtest(db, candidate, tmp_path / "out")
    assert result.exit_code == 2
    assert "no account events" in result.output


@pytest.mark.parametrize("code, why, kind", [
    (H.OVERDUE, "repaid", H.RELEASE_CONDITION),
    (H.CURE_PROBATION, "expired", H.RELEASE_TIME),
    (H.CURE_PROBATION, "superseded_by_overdue", B.SUPERSEDED),
    (H.EXTERNAL_OVERDUE, "settled", H.RELEASE_EVENT),
    (H.CASH_OUT_SUSPECTED, "appeal_approved", H.RELEASE_REVIEW),
    (H.DORMANT, "reactivated", H.RELEASE_CONDITION),
    (H.ACCOUNT_SECURITY, "identity_verified", H.RELEASE_EVENT),
    (H.PASSWORD_LOCKED, "password_reset", H.RELEASE_EVENT),
    (H.MANUAL_REVIEW, "operator_released", H.RELEASE_EVENT),
    (H.POLICY_TIGHTENING, "reopen_criteria_met", H.RELEASE_CONDITION),
])
def test_release_kind_follows_the_hold_s_way_out(code, why, kind):
    assert B.release_kind(code, why) == kind


def test_quantiles_are_nearest_rank():
    assert B._quantile([], 0.5) is None
    assert B._quantile([5.0], 0.9) == 5.0
    assert B._quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert B._quantile([float(n) for n in range(1, 11)], 0.9) == 9.0

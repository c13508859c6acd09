"""Issue 9, item 9: sweep criteria that overflow are refused when checked, and a sweep already
in the log whose arithmetic overflows is "not evaluable" for an account, never a crash of its
fold, explanation, authorization or ingest."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from sqlalchemy import update

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.domain.decisions import PurchaseRequest
from jiefeng.service import operator as ops
from jiefeng.service.engine import Engine
from jiefeng.store import schema as t
from jiefeng.store.sql import SqlStore
from test_api_support import Api, api, assert_problem, opened  # noqa: F401  (fixture)

TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=TZ)
DAY = dt.timedelta(days=1)
NOW = T0 + 60 * DAY

# The audit's example: a literal within bounds, multiplied 30 times; `* credit_limit` turns the
# exact integer product into a float, which overflows.
OVERFLOWING = "999999999999999" + " * 999999999999999" * 29 + " * credit_limit > 1"


def ev(event_id: str, type_: str, at: dt.datetime, account: str = "A1", **fields) -> dict:
    return {"event_id": event_id, "type": type_, "at": at.isoformat(), "account_id": account,
            **fields}


def history() -> list[dict]:
    return [
        ev("open", "account_opened", T0, credit_limit="10000.00", id_expires_on="2035-01-01"),
        ev("score", "score_update", T0 + DAY, score=640),
        ev("buy", "purchase", T0 + 2 * DAY, amount="100.00", merchant_id="M1"),
    ]


def sweep(criteria: str) -> dict:
    return {"event_id": "sweep-1", "type": "policy_sweep", "at": (T0 + 10 * DAY).isoformat(),
            "actor": "ops-1", "sweep_id": "S1", "criteria": criteria,
            "reopen_criteria": "score >= 700"}


def test_the_overflowing_example_is_refused_as_sweep_event_naming_criteria(db_url: str) -> None:
    engine = Engine(SqlStore(db_url), now=lambda: NOW)
    engine.ingest_events(history())
    report = engine.ingest_events([sweep(OVERFLOWING)])
    (result,) = report.results
    assert (result.status, result.field) == ("rejected", "criteria")
    assert "beyond 1e+18" in result.reason


def test_a_stored_overflowing_sweep_never_blocks_the_account(db_url: str) -> None:
    """A sweep stored before the limits existed: every later use of the account still works."""
    engine = Engine(SqlStore(db_url), now=lambda: NOW)
    assert engine.ingest_events([*history(), sweep("score < 650")]).rejected == 0
    # The log as an older version would have left it: the same sweep, overflowing criteria.
    with engine.store.transaction() as connection:
        connection.execute(update(t.events).where(t.events.c.event_id == "sweep-1").values(
            body=orjson.dumps(sweep(OVERFLOWING)).decode()))
    fresh = Engine(SqlStore(db_url), now=lambda: NOW)
    replayed = fresh.replay()
    assert replayed is not None
    state, _, _ = fresh.state_at("A1", T0 + 20 * DAY)
    assert "policy_tightening" not in state.holds  # not evaluable: never closes the line
    later = fresh.ingest_events([ev("pay", "repayment", T0 + 20 * DAY, amount="100.00"),
                                 ev("buy2", "purchase", T0 + 21 * DAY, amount="10.00",
                                    merchant_id="M1")])
    assert (later.accepted, later.rejected) == (2, 0)
    assert fresh.explain("A1", T0 + 22 * DAY)["account_id"] == "A1"
    assert fresh.authorize("A1", PurchaseRequest(1_000), T0 + 22 * DAY).approved


def test_dry_run_counts_accounts_the_criteria_cannot_be_evaluated_for(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(SqlStore(str(tmp_path / "j.db")), now=lambda: NOW)
    engine.ingest_events(history())
    # Criteria that pass the checks yet overflow for a row: the limits leave none, so the
    # check is skipped here to reach the evaluation guard behind them.
    from jiefeng.policy.criteria import compile_stored_criteria

    monkeypatch.setattr(ops, "compile_criteria", compile_stored_criteria)
    result = ops.sweep_dry_run(engine, OVERFLOWING, "score >= 700", T0 + 10 * DAY)
    assert (result.count, result.not_evaluable, result.accounts_evaluated) == (0, 1, 1)


def test_dry_run_of_the_overflowing_example_is_a_422_naming_criteria(api: Api) -> None:  # noqa: F811
    api.ingest(opened("D1"))
    response = api.client.post("/v1/sweeps/dry-run", headers=api.as_role("operator"),
                               json={"criteria": OVERFLOWING, "reopen_criteria": "score >= 700"})
    body = assert_problem(response, 422, "criteria")
    assert "beyond 1e+18" in response.text
    assert body["status"] == 422
    fine = api.client.post("/v1/sweeps/dry-run", headers=api.as_role("operator"),
                           json={"criteria": "score < 650", "reopen_criteria": "score >= 700"})
    assert fine.json()["not_evaluable"] == 0

"""Backtests over HTTP, for operators: request one (it runs in the background), poll it, read
its result and its report. See docs/backtest.md for what a backtest compares."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from jiefeng.api.auth import Guard
from jiefeng.api.context import request_context
from jiefeng.api.models import Body, Criteria, Time
from jiefeng.api.problems import Problem, field_problem, problem_responses
from jiefeng.api.services import Services, services
from jiefeng.policy.criteria import CriteriaError
from jiefeng.service.backtest import BacktestError
from jiefeng.service.backtest_jobs import MAX_LISTED, BacktestJobs, BacktestRequest
from jiefeng.service.security import Principal

router = APIRouter(tags=["operator"])
OPERATOR = ("operator",)
VERSION = Field(min_length=1, max_length=64)


class BacktestIn(Body):
    candidate_version: str = VERSION
    baseline_version: str | None = Field(None, min_length=1, max_length=64,
                                         description="Default: the active policy.")
    from_: Time | None = Field(None, alias="from")
    to: Time | None = None
    accounts: Criteria | None = None
    sample: int | None = Field(None, ge=1, le=10_000_000)


class BacktestOut(BaseModel):
    backtest_id: str
    status: str = Field(description="queued, running, done or failed")
    requested_by: str
    requested_at: str
    finished_at: str | None
    params: dict[str, Any]
    error: str | None
    result: dict[str, Any] | None = Field(None, description="backtest.json, once done")


class BacktestListOut(BaseModel):
    backtests: list[BacktestOut]


def jobs(request: Request, svc: Services = Depends(services)) -> BacktestJobs:
    """The process's backtest runner, made on first use."""
    state = request.app.state
    runner = getattr(state, "backtest_jobs", None)
    if runner is None:
        runner = state.backtest_jobs = BacktestJobs(svc.store, svc.engine, svc.now())
    return runner


def _record(runner: BacktestJobs, backtest_id: str) -> dict[str, Any]:
    record = runner.get(backtest_id)
    if record is None:
        raise Problem(404, f"no backtest {backtest_id[:64]!r}")
    return record


@router.post("/v1/backtests", status_code=202, response_model=BacktestOut,
             responses=problem_responses(401, 403, 422), summary="Start a backtest")
def create_backtest(body: BacktestIn, request: Request,
                    principal: Principal = Depends(Guard("backtests.create", OPERATOR)),
                    svc: Services = Depends(services),
                    runner: BacktestJobs = Depends(jobs)) -> Any:
    """Replays the stored history under the candidate policy version and the baseline (the
    active policy unless `baseline_version` is given), in the background. Poll
    `GET /v1/backtests/{backtest_id}`; the result is backtest.json (docs/backtest.md)."""
    request_context(request.scope).reason = body.accounts
    try:
        record = runner.submit(BacktestRequest(body.candidate_version, body.baseline_version,
                                               body.from_, body.to, body.accounts, body.sample),
                               principal.name, svc.now())
    except BacktestError as error:
        raise field_problem(422, error.option, error.reason) from None
    except CriteriaError as error:
        raise field_problem(422, "accounts", str(error)) from None
    request_context(request.scope).target = record["backtest_id"]
    return JSONResponse(record, status_code=202,
                        headers={"Location": f"/v1/backtests/{record['backtest_id']}"})


@router.get("/v1/backtests", response_model=BacktestListOut,
            responses=problem_responses(401, 403), summary="Backtests, newest first")
def list_backtests(limit: int = Query(20, ge=1, le=MAX_LISTED),
                   principal: Principal = Depends(Guard("backtests.list", OPERATOR)),
                   runner: BacktestJobs = Depends(jobs)) -> Any:
    return {"backtests": runner.list(limit)}


@router.get("/v1/backtests/{backtest_id}", response_model=BacktestOut,
            responses=problem_responses(401, 403, 404), summary="A backtest and its result")
def get_backtest(backtest_id: str,
                 principal: Principal = Depends(Guard("backtests.read", OPERATOR)),
                 runner: BacktestJobs = Depends(jobs)) -> Any:
    return _record(runner, backtest_id)


@router.get("/v1/backtests/{backtest_id}/report", response_class=HTMLResponse,
            responses=problem_responses(401, 403, 404, 409), summary="The backtest's report")
def get_backtest_report(backtest_id: str,
                        principal: Principal = Depends(Guard("backtests.read", OPERATOR)),
                        runner: BacktestJobs = Depends(jobs)) -> Any:
    record = _record(runner, backtest_id)
    html = runner.report(backtest_id)
    if html is None:
        raise Problem(409, f"backtest {backtest_id} is {record['status']}; no report yet")
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})

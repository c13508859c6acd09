"""Backtests requested through the API: stored, run in the background one at a time, polled.

A request is validated before it is accepted (the policy versions exist, the criteria and the
window are valid), stored as `queued`, then run on this process's backtest thread; its row
moves to `running`, then `done` with backtest.json and backtest.html, or `failed` with the
reason. One runs at a time: a backtest is a full replay and would starve the request threads.
A backtest still queued or running when the process stops is marked `failed` by the next one
that starts (its result was never written).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from jiefeng.batch.backtest_report import render_backtest_html
from jiefeng.policy.criteria import compile_criteria
from jiefeng.policy.schema import Policy, default_policy
from jiefeng.service import policies
from jiefeng.service.backtest import BacktestError, BacktestSpec, run_backtest
from jiefeng.service.engine import Engine
from jiefeng.store import backtests as table
from jiefeng.store import schema as t
from jiefeng.store.sql import SqlStore

MAX_LISTED = 100


@dataclass(frozen=True)
class BacktestRequest:
    candidate_version: str
    baseline_version: str | None = None  # None: the active policy
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    accounts: str | None = None
    sample: int | None = None

    def params(self) -> dict[str, Any]:
        return {"candidate_version": self.candidate_version,
                "baseline_version": self.baseline_version or "active",
                "from": self.start.isoformat() if self.start else None,
                "to": self.end.isoformat() if self.end else None,
                "accounts": self.accounts, "sample": self.sample}


class BacktestJobs:
    """The backtests of one store, and the thread that runs them."""

    def __init__(self, store: SqlStore, engine_factory: Any, started_at: dt.datetime):
        self.store = store
        self.engine_factory = engine_factory  # () -> Engine, for the active policy and scopes
        self.started_at = started_at
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="jiefeng-backtest")
        self._abandoned_marked = False
        self._lock = threading.Lock()

    # --- requests ---------------------------------------------------------------------------

    def _policy(self, version: str, option: str) -> Policy:
        builtin = default_policy()
        if version == builtin.version:
            return builtin
        try:
            record = policies.get(self.store, version)
        except policies.PolicyNotFound:
            raise BacktestError(option, f"no policy version {version!r}; upload it first "
                                        "(POST /v1/policies)") from None
        with self.store.read() as connection:
            policy = policies.policy_by_version(connection, version, record["sha256"])
        if policy is None:  # pragma: no cover - a stored version always parses
            raise BacktestError(option, f"policy version {version!r} cannot be read")
        return policy

    def submit(self, request: BacktestRequest, actor: str, now: dt.datetime) -> dict[str, Any]:
        """Validate, store as queued, start in the background; BacktestError names the field."""
        self._mark_abandoned()
        candidate = self._policy(request.candidate_version, "candidate_version")
        engine: Engine = self.engine_factory()
        baseline = (self._policy(request.baseline_version, "baseline_version")
                    if request.baseline_version else engine.policy)
        if request.accounts:
            compile_criteria(request.accounts)  # CriteriaError: the caller names the field
        if request.start and request.end and request.end < request.start:
            raise BacktestError("to", "is before from")
        if request.sample is not None and request.sample < 1:
            raise BacktestError("sample", "must be at least 1")
        backtest_id = f"bt-{uuid.uuid4().hex[:16]}"
        with self.store.transaction() as connection:
            table.insert_backtest(connection, {
                "backtest_id": backtest_id, "status": "queued", "requested_by": actor,
                "requested_at_utc": t.utc_text(now),
                "params": json.dumps(request.params(), sort_keys=True)})
        spec = BacktestSpec(baseline, candidate, request.start, request.end, request.accounts,
                            request.sample, workers=1)
        self.executor.submit(self._run, backtest_id, spec, engine, now)
        return self.get(backtest_id)

    def _run(self, backtest_id: str, spec: BacktestSpec, engine: Engine,
             requested_at: dt.datetime) -> None:
        with self.store.transaction() as connection:
            table.update_backtest(connection, backtest_id, status="running")
        try:
            result = run_backtest(self.store.url, self.store, engine.scopes(), spec)
            values = {"status": "done", "result": json.dumps(result, ensure_ascii=False,
                                                              indent=2, sort_keys=True),
                      "report_html": render_backtest_html(result)}
        except Exception as error:  # noqa: BLE001 - the reason is kept for whoever polls
            values = {"status": "failed", "error": f"{type(error).__name__}: {error}"[:2000]}
        values["finished_at_utc"] = t.utc_text(max(engine.now(), requested_at))
        with self.store.transaction() as connection:
            table.update_backtest(connection, backtest_id, **values)

    def _mark_abandoned(self) -> None:
        """Backtests left queued or running by a process that stopped (requested before this
        one started) never finish: say so."""
        with self._lock:
            if self._abandoned_marked:
                return
            self._abandoned_marked = True
        with self.store.transaction() as connection:
            connection.execute(
                table.backtests.update()
                .where(table.backtests.c.status.in_(("queued", "running")))
                .where(table.backtests.c.requested_at_utc < t.utc_text(self.started_at))
                .values(status="failed", error="the service stopped before it finished"))

    # --- reads ------------------------------------------------------------------------------

    def get(self, backtest_id: str) -> dict[str, Any] | None:
        with self.store.read() as connection:
            row = table.get_backtest(connection, backtest_id)
        if row is None:
            return None
        record = _record(row)
        record["result"] = json.loads(row.result) if row.result else None
        return record

    def report(self, backtest_id: str) -> str | None:
        with self.store.read() as connection:
            row = table.get_backtest(connection, backtest_id)
        return row.report_html if row is not None else None

    def list(self, limit: int = MAX_LISTED) -> list[dict[str, Any]]:
        with self.store.read() as connection:
            return [_record(row) for row in table.list_backtests(connection, limit)]


def _record(row: Any) -> dict[str, Any]:
    return {
        "backtest_id": row.backtest_id,
        "status": row.status,
        "requested_by": row.requested_by,
        "requested_at": t.parse_utc_text(row.requested_at_utc).isoformat(),
        "finished_at": (t.parse_utc_text(row.finished_at_utc).isoformat()
                        if row.finished_at_utc else None),
        "params": json.loads(row.params),
        "error": row.error,
    }

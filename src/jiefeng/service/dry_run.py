"""Which accounts a policy sweep at `at` would close: SQL over the feature table where its rows
are exact at `at`, the fold for every other account (see jiefeng.service.feature_table).

Both paths answer as the fold does when the sweep is applied: an account already closed by a
sweep is counted apart; the others match when the criteria are TRUE over their features at
`at`. The result does not depend on which path an account took (tests/test_feature_table.py).
"""

from __future__ import annotations

import datetime as dt
import heapq
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from jiefeng.domain import core
from jiefeng.domain import holds as H
from jiefeng.domain.clock import local_date, zone
from jiefeng.domain.rules import features
from jiefeng.domain.scopes import Scopes
from jiefeng.policy.criteria import CompiledCriteria, transpile_criteria
from jiefeng.service.engine import AccountNotFound, Engine
from jiefeng.service.feature_table import own_status_at
from jiefeng.service.states import load_states
from jiefeng.store.features import matching_rows

CHUNK_ACCOUNTS = 1_000
# Features the fold gives as integers (the table stores every number as a double).
INTEGER_FEATURES = frozenset({"score", "days_past_due", "months_revolving",
                              "account_age_days", "purchases_90d"})


class DryRunResult(Protocol):
    count: int
    already_closed: int
    accounts_evaluated: int
    by_status: Any
    sample: list[dict[str, Any]]


def _as_fold_gives(name: str, value: Any) -> Any:
    if name in INTEGER_FEATURES and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _dialect(engine: Engine) -> str:
    return "postgres" if engine.store.engine.dialect.name == "postgresql" else "sqlite"


def evaluate_sweep(engine: Engine, compiled: CompiledCriteria, at: dt.datetime,
                   result: DryRunResult, sample_size: int, use_table: bool = True) -> None:
    """Fill `result` for a sweep of `compiled` at `at`. `use_table=False` folds every account
    (the reference the table's answers are tested against)."""
    store, policy = engine.store, engine.policy
    used = sorted(compiled.features_used)
    with store.read() as connection:
        scopes: Scopes = engine.scope_cache.get(store, connection)
        account_ids = store.account_ids(connection)
        fresh: set[str] = set()
        matched: list[Any] = []
        if use_table:
            today = local_date(at, zone(scopes.policy_for(at, policy).timezone))
            try:
                fresh_rows, matched = matching_rows(
                    connection, at, today, transpile_criteria(compiled.text, _dialect(engine)),
                    used)
            except SQLAlchemyError:
                # The database could not evaluate it (an overflow, say): fold every account.
                fresh_rows, matched = [], []
            fresh = {row.account_id for row in fresh_rows}
            result.accounts_evaluated += len(fresh_rows)
            result.already_closed += sum(
                1 for row in fresh_rows if H.POLICY_TIGHTENING in row.hold_codes.split(","))
    samples: list[tuple[str, dict[str, Any]]] = []
    for row in matched:
        if H.POLICY_TIGHTENING in row.hold_codes.split(","):
            continue
        result.count += 1
        result.by_status[own_status_at(row.own_status, row.segment, row.account_id, at,
                                       scopes)] += 1
        if len(samples) < sample_size:
            samples.append((row.account_id, {name: _as_fold_gives(name, row._mapping[name])
                                             for name in used}))
    folded = [a for a in account_ids if a not in fresh]
    samples.extend(_fold(engine, folded, compiled, at, scopes, result, sample_size))
    result.sample.extend({"account_id": account_id, "features": values}
                         for account_id, values in heapq.nsmallest(sample_size, samples,
                                                                   key=lambda s: s[0]))


def _fold(engine: Engine, account_ids: list[str], compiled: CompiledCriteria,
          at: dt.datetime, scopes: Scopes, result: DryRunResult,
          sample_size: int) -> list[tuple[str, dict[str, Any]]]:
    """Each account advanced to `at` (or folded from its log up to `at`), then the criteria."""
    store, policy = engine.store, engine.policy
    used = sorted(compiled.features_used)
    samples: list[tuple[str, dict[str, Any]]] = []
    for start in range(0, len(account_ids), CHUNK_ACCOUNTS):
        chunk = account_ids[start : start + CHUNK_ACCOUNTS]
        with store.read() as connection:
            states, _ = load_states(store, connection, chunk, policy, scopes)
        for account_id in chunk:
            state = states.get(account_id)
            if state is not None and state.clock is not None and state.clock <= at:
                state, _ = core.advance(state, at, policy, scopes)
            else:  # stored state is ahead of `at`: fold the log up to `at`
                try:
                    state, _, _ = engine.state_at(account_id, at)
                except AccountNotFound:
                    continue
            if not state.opened:
                continue
            result.accounts_evaluated += 1
            if H.POLICY_TIGHTENING in state.holds:
                result.already_closed += 1
                continue
            values = features(state, at, policy)
            if not compiled.matches(values):
                continue
            result.count += 1
            result.by_status[core.status_at(state, at, scopes)] += 1
            if len(samples) < sample_size:
                samples.append((account_id, {name: values[name] for name in used}))
    return samples

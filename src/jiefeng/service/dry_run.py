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
from jiefeng.domain.features import features
from jiefeng.domain.scopes import Scopes
from jiefeng.policy.criteria import (
    NOT_EVALUABLE,
    CompiledCriteria,
    CriteriaError,
    transpile_criteria,
)
from jiefeng.service.engine import AccountNotFound, Engine
from jiefeng.service.feature_table import own_status_at
from jiefeng.service.states import load_states
from jiefeng.store.features import (
    fresh_counts,
    matched_groups,
    matched_rows,
    stale_account_ids,
)

CHUNK_ACCOUNTS = 1_000
# Features the fold gives as integers (the table stores every number as a double).
INTEGER_FEATURES = frozenset({"score", "days_past_due", "months_revolving",
                              "account_age_days", "purchases_90d"})


class DryRunResult(Protocol):
    count: int
    already_closed: int
    accounts_evaluated: int
    not_evaluable: int
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
    store = engine.store
    samples: list[tuple[str, dict[str, Any]]] = []
    with store.read() as connection:
        scopes: Scopes = engine.scope_cache.get(store, connection)
        if use_table:
            try:
                folded = _from_table(connection, engine, compiled, at, scopes, result,
                                     sample_size, samples)
            except (SQLAlchemyError, CriteriaError):
                # The database could not evaluate it (an overflow, say), or the text cannot be
                # transpiled (criteria stored before a check existed): fold every account.
                result.count = result.already_closed = result.accounts_evaluated = 0
                result.not_evaluable = 0
                result.by_status.clear()
                samples.clear()
                folded = store.account_ids(connection)
        else:
            folded = store.account_ids(connection)
    samples.extend(_fold(engine, folded, compiled, at, scopes, result, sample_size))
    result.sample.extend({"account_id": account_id, "features": values}
                         for account_id, values in heapq.nsmallest(sample_size, samples,
                                                                   key=lambda s: s[0]))


def _from_table(connection: Any, engine: Engine, compiled: CompiledCriteria, at: dt.datetime,
                scopes: Scopes, result: DryRunResult, sample_size: int,
                samples: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Count the accounts whose feature row is exact at `at` in SQL; return the others."""
    today = local_date(at, zone(scopes.policy_for(at, engine.policy).timezone))
    where = transpile_criteria(compiled.text, _dialect(engine))
    fresh, closed = fresh_counts(connection, at, today)
    result.accounts_evaluated += fresh
    result.already_closed += closed
    for own_status, segment, count in matched_groups(connection, at, today, where):
        result.count += count
        if own_status != "active":
            result.by_status[own_status] += count
        elif not scopes.campaigns:  # maintenance goes by segment: the group answers
            status = own_status_at(own_status, segment, "", at, scopes)
            result.by_status[status] += count
    if scopes.campaigns:  # a campaign may list accounts: ask per active account
        for row in matched_rows(connection, at, today, where, [], own_status="active"):
            result.by_status[own_status_at("active", row.segment, row.account_id, at,
                                           scopes)] += 1
    used = sorted(compiled.features_used)
    for row in matched_rows(connection, at, today, where, used, limit=sample_size):
        samples.append((row.account_id, {name: _as_fold_gives(name, row._mapping[name])
                                         for name in used}))
    return stale_account_ids(connection, at, today)


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
            outcome = compiled.outcome(values)
            if outcome == NOT_EVALUABLE:
                result.not_evaluable += 1
                continue
            if not outcome:
                continue
            result.count += 1
            result.by_status[core.status_at(state, at, scopes)] += 1
            if len(samples) < sample_size:
                samples.append((account_id, {name: values[name] for name in used}))
    return samples

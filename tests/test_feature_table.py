"""The feature table answers sweep dry runs as the fold does: random portfolios, random
criteria (NULLs, arithmetic, division, OR, NOT, BETWEEN, IN), several instants, on SQLite and
PostgreSQL; and its rows are kept by every write."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from backends import db_url  # noqa: F401  (fixture)
from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
from jiefeng.domain.clock import local_date, zone
from jiefeng.policy.criteria import FEATURES, CriteriaError, compile_criteria
from jiefeng.service.engine import Engine
from jiefeng.service.feature_table import feature_row
from jiefeng.service.operator import sweep_dry_run
from jiefeng.store.features import account_features, fresh_counts
from jiefeng.store.sql import SqlStore

NUMBERS = [name for name, spec in FEATURES.items() if spec.kind == "number"]
SEGMENTS = ["standard", "young", "premium", "student", "nonexistent"]


def random_criteria(rng: random.Random) -> str:
    def atom() -> str:
        name = rng.choice(NUMBERS)
        kind = rng.random()
        if kind < 0.08:
            return f"{name} IS {'NOT ' if rng.random() < 0.5 else ''}NULL"
        if kind < 0.16:
            return f"segment {'=' if rng.random() < 0.7 else '<>'} '{rng.choice(SEGMENTS)}'"
        if kind < 0.24:
            low = rng.choice([0, 1, 10, 100, 600])
            return f"{name} BETWEEN {low} AND {low + rng.choice([5, 50, 5000])}"
        if kind < 0.30:
            return f"{name} IN ({', '.join(str(rng.randint(0, 3)) for _ in range(3))})"
        left = name
        if rng.random() < 0.3:
            other = rng.choice(NUMBERS)
            op = rng.choice(["+", "-", "*", "/"])
            left = f"({name} {op} {other})"
        value = rng.choice([0, 0.5, 1, 2, 30, 600, 650, 1000, 5000.25, 0.8])
        return f"{left} {rng.choice(['<', '<=', '>', '>=', '=', '<>'])} {value}"

    def expression(depth: int) -> str:
        if depth == 0 or rng.random() < 0.35:
            return atom()
        joiner = rng.choice([" AND ", " OR "])
        text = joiner.join(expression(depth - 1) for _ in range(rng.randint(2, 3)))
        return f"NOT ({text})" if rng.random() < 0.15 else f"({text})"

    return expression(2)


def _valid(texts: list[str]) -> list[str]:
    """The texts the checks accept (products of two large features are refused)."""
    kept = []
    for text in texts:
        try:
            compile_criteria(text)
        except CriteriaError:
            continue
        kept.append(text)
    return kept


def comparable(result) -> tuple:
    return (result.count, result.already_closed, result.accounts_evaluated,
            dict(result.by_status), result.sample)


@pytest.fixture(scope="module")
def portfolio_events() -> list[dict]:
    return generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=23))


def test_dry_runs_from_the_table_equal_the_fold(db_url, portfolio_events):  # noqa: F811
    engine = Engine(SqlStore(db_url))
    assert engine.ingest_events(portfolio_events).rejected == 0
    rng = random.Random(5)
    criteria = _valid([random_criteria(rng) for _ in range(60)])[:25] + [
        "score < 600", "score IS NULL", "utilization > 0.9 OR days_past_due > 0",
        "account_age_days > 400 AND purchases_90d = 0", "minimum_due / credit_limit > 0.01"]
    last = max(dt.datetime.fromisoformat(e["at"]) for e in portfolio_events)
    instants = [last - dt.timedelta(days=200), last, last + dt.timedelta(hours=3)]
    served_by_table = 0
    for at in instants:
        for text in criteria:
            by_table = sweep_dry_run(engine, text, "score >= 700", at)
            by_fold = sweep_dry_run(engine, text, "score >= 700", at, use_table=False)
            assert comparable(by_table) == comparable(by_fold), (text, at)
            assert by_table.not_evaluable == by_fold.not_evaluable == 0
        with engine.store.read() as connection:
            today = local_date(at, zone(engine.policy.timezone))
            served_by_table += fresh_counts(connection, at, today)[0]
    # Once time has passed for every account (the service's daily advance), the table serves
    # them until their next deadline or accrual.
    engine.advance_all(last + dt.timedelta(hours=10))
    at = last + dt.timedelta(hours=11)
    for text in criteria:
        assert comparable(sweep_dry_run(engine, text, "score >= 700", at)) == \
            comparable(sweep_dry_run(engine, text, "score >= 700", at, use_table=False)), text
    with engine.store.read() as connection:
        today = local_date(at, zone(engine.policy.timezone))
        fresh, _ = fresh_counts(connection, at, today)
    assert fresh > 50, "after advance_all most rows are exact"
    assert served_by_table > 0


def test_every_write_keeps_the_row(tmp_path, portfolio_events):
    engine = Engine(SqlStore(str(tmp_path / "f.db")))
    engine.ingest_events(portfolio_events[:3000])
    with engine.store.read() as connection:
        rows = {row.account_id: row._asdict() for row in
                connection.execute(account_features.select())}
        account_ids = engine.store.account_ids(connection)
    assert set(rows) == set(account_ids)
    scopes = engine.scopes()
    for account_id in account_ids[:20]:
        with engine.store.read() as connection:
            clock = engine.store.account_rows(connection, [account_id])[account_id].clock
        state, _, _ = engine.state_at(account_id, clock)  # the stored state, at its clock
        expected = feature_row(state, engine.base_policy, scopes)
        stored = rows[account_id]
        for name, value in expected.items():
            if isinstance(value, float):
                assert stored[name] == pytest.approx(value), name
            else:
                assert stored[name] == value, name
    # A replay rewrites the table from the log: the same rows.
    engine.replay()
    with engine.store.read() as connection:
        again = {row.account_id: row._asdict() for row in
                 connection.execute(account_features.select())}
    assert again == rows


def test_a_row_as_the_writers_carry_it_is_the_table_in_column_order(tmp_path, portfolio_events):
    """Writers carry a row as a tuple (a sweep's batch carries one per account): its values
    line up with the table's columns, and the named row is the same values."""
    from jiefeng.service.feature_table import feature_values
    from jiefeng.store.features import FEATURE_ROW_COLUMNS

    assert FEATURE_ROW_COLUMNS == tuple(c.name for c in account_features.columns)
    engine = Engine(SqlStore(str(tmp_path / "f.db")))
    engine.ingest_events(portfolio_events[:2000])
    scopes = engine.scopes()
    with engine.store.read() as connection:
        account_ids = engine.store.account_ids(connection)
    for account_id in account_ids[:10]:
        state, _, _ = engine.state_at(account_id)
        values = feature_values(state, engine.base_policy, scopes)
        assert values is not None and len(values) == len(FEATURE_ROW_COLUMNS)
        assert feature_row(state, engine.base_policy, scopes) == dict(
            zip(FEATURE_ROW_COLUMNS, values, strict=True))
        assert values[0] == account_id and values[1] == state.clock.isoformat(
            timespec="microseconds")

"""`jiefeng export events|features --format parquet`: the store as Parquet, read back by
pyarrow and DuckDB, and equal to what the engine itself says."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

from jiefeng.batch.export import account_bucket
from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
from jiefeng.cli import app
from jiefeng.domain.rules import features
from jiefeng.policy.criteria import compile_criteria, transpile_criteria
from jiefeng.service.engine import Engine
from jiefeng.store.sql import SqlStore

runner = CliRunner()
AT = "2025-09-01T00:00:00+08:00"


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("export") / "p.db")
    events = generate_portfolio(PortfolioSpec(accounts=100, months=17, seed=3))
    report = Engine(SqlStore(db)).ingest_events(events)
    assert report.rejected == 0
    return db


def export(db: str, *args: str):
    return runner.invoke(app, ["export", *args, "--db", db])


def test_events_are_partitioned_by_account_hash_and_complete(stored, tmp_path):
    result = export(stored, "events", str(tmp_path), "--buckets", "4")
    assert result.exit_code == 0, result.output
    dataset = ds.dataset(tmp_path / "events", format="parquet", partitioning="hive")
    table = dataset.to_table()
    with SqlStore(stored).read() as connection:
        total = connection.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
        accounts = connection.exec_driver_sql(
            "SELECT count(*) FROM events WHERE account_id IS NOT NULL").scalar_one()
    scope_rows = ds.dataset(tmp_path / "scope_events", format="parquet").count_rows()
    assert table.num_rows == accounts and table.num_rows + scope_rows == total
    # Every row sits in its account's bucket, and an account in one bucket only.
    for account_id, bucket in zip(table["account_id"].to_pylist(),
                                  table["account_bucket"].to_pylist(), strict=True):
        assert bucket == account_bucket(account_id, 4)
    # The body is the stored event, ready for a fold elsewhere.
    first = json.loads(table["body"][0].as_py())
    assert first["event_id"] == table["event_id"][0].as_py()


def test_account_bucket_is_stable():
    # sha256("A000001")[:8] as an integer, modulo the bucket count: fixed for other engines.
    assert account_bucket("A000001", 1_000_000_007) == int(
        __import__("hashlib").sha256(b"A000001").hexdigest()[:8], 16) % 1_000_000_007
    assert {account_bucket(f"A{n}", 16) for n in range(500)} == set(range(16))


def test_a_second_export_replaces_the_first(stored, tmp_path):
    assert export(stored, "events", str(tmp_path), "--buckets", "8").exit_code == 0
    assert export(stored, "events", str(tmp_path), "--buckets", "2").exit_code == 0
    folders = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert folders == ["account_bucket=00", "account_bucket=01"]


def test_features_as_of_a_time_equal_the_engine_s(stored, tmp_path):
    result = export(stored, "features", str(tmp_path), "--at", AT)
    assert result.exit_code == 0, result.output
    rows = ds.dataset(tmp_path / "features", format="parquet",
                      partitioning="hive").to_table().to_pylist()
    at = dt.datetime.fromisoformat(AT)
    engine = Engine(SqlStore(stored))
    assert rows, "some accounts are open on the day"
    for row in rows:
        state, scopes, _ = engine.state_at(row["account_id"], at)
        expected = features(state, at, engine.policy_at(at))
        for name, value in expected.items():
            if isinstance(value, str) or value is None:
                assert row[name] == value, name
            else:
                assert row[name] == pytest.approx(float(value)), name
        assert row["as_of_utc"] == at


@pytest.mark.parametrize("criteria", [
    "utilization > 0.5",
    "score < 600 OR days_past_due > 0",
    "months_revolving >= 2 AND revolving_balance > 100",
    "score IS NULL",
    "segment = 'young' AND NOT (available_credit BETWEEN 100 AND 5000)",
])
def test_duckdb_over_the_export_counts_what_the_criteria_match(stored, tmp_path, criteria):
    assert export(stored, "features", str(tmp_path), "--at", AT).exit_code == 0
    compiled = compile_criteria(criteria)
    rows = ds.dataset(tmp_path / "features", format="parquet").to_table().to_pylist()
    expected = sum(1 for row in rows if compiled.matches(row))
    where = transpile_criteria(criteria, "duckdb")
    counted = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/features/*/*.parquet') WHERE {where}"
    ).fetchall()[0][0]
    assert counted == expected


def test_bad_arguments_are_refused(stored, tmp_path):
    assert export(stored, "accounts", str(tmp_path)).exit_code == 2
    assert export(stored, "events", str(tmp_path), "--format", "csv").exit_code == 2
    bad_time = export(stored, "features", str(tmp_path), "--at", "2025-09-01")
    assert bad_time.exit_code == 2 and "--at" in bad_time.output
    assert not (tmp_path / "features").exists()

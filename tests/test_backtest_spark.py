"""The Spark engine of `jiefeng backtest`: a local Spark session replays a Parquet export with
the same pure fold, and writes the same backtest.json as the local engine, byte for byte."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from backtest_portfolio import backtest, stored  # noqa: F401  (fixture)


def _spark_unavailable() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed (pip install 'jiefeng[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime for a local Spark session"
    return None


@pytest.fixture(autouse=True)
def _needs_spark():
    reason = _spark_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires the Spark engine: {reason}")
    pytest.skip(reason)


def test_spark_writes_the_same_backtest_json_as_local(stored, tmp_path):  # noqa: F811
    db, candidate = stored
    local = backtest(db, candidate, tmp_path / "local", "--accounts", "score IS NULL OR score > 0")
    spark = backtest(db, candidate, tmp_path / "spark", "--engine", "spark", "--workers", "2",
                     "--accounts", "score IS NULL OR score > 0")
    assert local.exit_code == 0, local.output
    assert spark.exit_code == 0, spark.output
    assert (tmp_path / "spark" / "export" / "events").is_dir()  # exported first
    assert (tmp_path / "local" / "backtest.json").read_bytes() == \
        (tmp_path / "spark" / "backtest.json").read_bytes()


def test_spark_reads_a_given_export_and_refuses_a_folder_without_one(stored, tmp_path):  # noqa: F811
    from typer.testing import CliRunner

    from jiefeng.cli import app

    db, candidate = stored
    exported = CliRunner().invoke(app, ["export", "events", str(tmp_path / "exp"), "--db", db])
    assert exported.exit_code == 0, exported.output
    given = backtest(db, candidate, tmp_path / "out", "--engine", "spark",
                     "--input", str(tmp_path / "exp"))
    assert given.exit_code == 0, given.output
    assert not (tmp_path / "out" / "export").exists()
    empty = backtest(db, candidate, tmp_path / "out2", "--engine", "spark",
                     "--input", str(tmp_path / "nothing"))
    assert empty.exit_code == 2 and "--input" in empty.output


@pytest.mark.parametrize("pushed", [True, False], ids=["filtered-in-plan", "filtered-after"])
def test_spark_backtests_a_sample_as_local_does(stored, tmp_path, monkeypatch, pushed):  # noqa: F811
    """A sample's accounts are filtered in Spark's plan (small selections) or after the fold
    (every account, where a filter costs more than it saves): the same backtest.json either
    way, and the same as local."""
    from jiefeng.service import backtest_spark

    if not pushed:
        monkeypatch.setattr(backtest_spark, "MAX_PUSHED_ACCOUNTS", 0)
    db, candidate = stored
    local = backtest(db, candidate, tmp_path / "local", "--sample", "2")
    spark = backtest(db, candidate, tmp_path / "spark", "--engine", "spark", "--sample", "2")
    assert local.exit_code == 0 and spark.exit_code == 0, (local.output, spark.output)
    data = json.loads((tmp_path / "local" / "backtest.json").read_text(encoding="utf-8"))
    assert data["accounts"]["compared"] == 2
    assert (tmp_path / "local" / "backtest.json").read_bytes() == \
        (tmp_path / "spark" / "backtest.json").read_bytes()


def test_a_pushed_selection_matches_identifiers_with_quotes_and_backslashes_exactly():
    """A sample's filter is one SQL expression: identifiers may hold any non-blank character,
    so a quote or a backslash in one must neither break the expression nor match another."""
    from jiefeng.service.backtest_spark import in_list_sql, spark_session, sql_string_literal

    tricky = ["o'brien", "back\\slash", "both\\'", "'", "\\", "plain", "中文-账户"]
    spark = spark_session(1, None)
    for value in tricky:
        assert spark.sql(f"SELECT {sql_string_literal(value)} AS v").first().v == value
    frame = spark.createDataFrame([(v,) for v in [*tricky, "other", "o''brien", "back\\\\slash"]],
                                  "account_id string")
    chosen = ["o'brien", "back\\slash", "\\"]
    kept = {row.account_id for row in frame.where(in_list_sql("account_id", chosen)).collect()}
    assert kept == set(chosen)


def test_the_schema_given_to_spark_is_the_one_it_reads_from_an_export(stored, tmp_path):  # noqa: F811
    """A Spark backtest gives the export's schema instead of having Spark infer it from the
    files: both must be the same, columns, types and the bucket column of the partitions."""
    import pyarrow as pa
    from typer.testing import CliRunner

    from jiefeng.batch.export import EVENT_SCHEMA
    from jiefeng.cli import app
    from jiefeng.service.backtest_spark import spark_ddl, spark_session

    db, _ = stored
    exported = CliRunner().invoke(app, ["export", "events", str(tmp_path / "exp"), "--db", db])
    assert exported.exit_code == 0, exported.output
    spark = spark_session(1, None)
    path = str(tmp_path / "exp" / "events")
    inferred = spark.read.parquet(path)
    given = spark.read.schema(spark_ddl(EVENT_SCHEMA)).parquet(path)
    assert given.schema == inferred.schema
    assert sorted(given.collect()) == sorted(inferred.collect())
    with pytest.raises(ValueError, match="no Spark type"):
        spark_ddl(pa.schema([("amount", pa.float32())]))

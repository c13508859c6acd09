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


def test_spark_backtests_a_sample_as_local_does(stored, tmp_path):  # noqa: F811
    """A sample's accounts are the only rows a task reads: the same backtest.json as local."""
    db, candidate = stored
    local = backtest(db, candidate, tmp_path / "local", "--sample", "2")
    spark = backtest(db, candidate, tmp_path / "spark", "--engine", "spark", "--sample", "2")
    assert local.exit_code == 0 and spark.exit_code == 0, (local.output, spark.output)
    data = json.loads((tmp_path / "local" / "backtest.json").read_text(encoding="utf-8"))
    assert data["accounts"]["compared"] == 2
    assert (tmp_path / "local" / "backtest.json").read_bytes() == \
        (tmp_path / "spark" / "backtest.json").read_bytes()


def test_criteria_that_leave_every_account_out_give_the_same_empty_backtest(stored, tmp_path):  # noqa: F811
    """Every result of a task then has no runs (null columns): Spark must still take them."""
    db, candidate = stored
    local = backtest(db, candidate, tmp_path / "local", "--accounts", "score > 10000")
    spark = backtest(db, candidate, tmp_path / "spark", "--engine", "spark", "--workers", "2",
                     "--accounts", "score > 10000")
    assert local.exit_code == 0 and spark.exit_code == 0, (local.output, spark.output)
    data = json.loads((tmp_path / "spark" / "backtest.json").read_text(encoding="utf-8"))
    assert data["accounts"]["compared"] == 0
    assert data["accounts"]["left_out_by_criteria"] == 4
    assert (tmp_path / "local" / "backtest.json").read_bytes() == \
        (tmp_path / "spark" / "backtest.json").read_bytes()


@pytest.mark.parametrize("layout", ["two-files-a-bucket", "no-buckets"])
def test_an_export_rewritten_in_another_layout_gives_the_same_backtest(stored, tmp_path, layout):  # noqa: F811
    """An export whose buckets hold several files (a tool rewrote them), or with no bucket
    folders at all: an account's rows may then be in any file of its group, and a task must
    still fold all of them, in time order."""
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from jiefeng.cli import app

    db, candidate = stored
    exported = CliRunner().invoke(app, ["export", "events", str(tmp_path / "exp"), "--db", db,
                                        "--buckets", "2"])
    assert exported.exit_code == 0, exported.output
    events = tmp_path / "exp" / "events"
    rows = [pq.read_table(path) for path in sorted(events.rglob("*.parquet"))]
    shutil.rmtree(events)
    for number, table in enumerate(rows):
        # Newest first and cut in two: each account's rows split between files, out of order.
        table = table.sort_by([("seq", "descending")])
        half = table.num_rows // 2
        folder = events / (f"account_bucket={number:02d}" if layout == "two-files-a-bucket"
                           else "")
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.slice(0, half), folder / f"{number}-a.parquet")
        pq.write_table(table.slice(half), folder / f"{number}-b.parquet")
    (events / "_SUCCESS").write_text("", encoding="utf-8")
    local = backtest(db, candidate, tmp_path / "local")
    spark = backtest(db, candidate, tmp_path / "spark", "--engine", "spark", "--workers", "2",
                     "--input", str(tmp_path / "exp"))
    assert local.exit_code == 0 and spark.exit_code == 0, (local.output, spark.output)
    assert (tmp_path / "local" / "backtest.json").read_bytes() == \
        (tmp_path / "spark" / "backtest.json").read_bytes()


def test_a_large_export_runs_a_task_a_bucket_and_the_bar_counts_every_account(
        stored, tmp_path, monkeypatch):  # noqa: F811
    """Past TASK_BYTES a worker, the job runs more tasks than workers (here: one per bucket);
    the result is the local one, and the progress bar ends at the accounts compared."""
    from pathlib import Path

    from typer.testing import CliRunner

    from jiefeng.cli import app
    from jiefeng.policy.schema import default_policy, parse_policy_text
    from jiefeng.service import backtest_spark as SP
    from jiefeng.service import spark_tasks
    from jiefeng.service.backtest import BacktestSpec, run_backtest
    from jiefeng.service.engine import Engine
    from jiefeng.store.sql import SqlStore

    db, candidate = stored
    exported = CliRunner().invoke(app, ["export", "events", str(tmp_path / "exp"), "--db", db])
    assert exported.exit_code == 0, exported.output
    buckets = SP.export_buckets(tmp_path / "exp" / "events")
    assert len(buckets) > 2  # four accounts: more buckets than the two workers
    monkeypatch.setattr(spark_tasks, "TASK_BYTES", 1)
    tasks_run: list[int] = []
    assign = SP.assign_buckets
    monkeypatch.setattr(SP, "assign_buckets",
                        lambda b, n: tasks_run.append(n) or assign(b, n))
    spec = BacktestSpec(default_policy(),
                        parse_policy_text(Path(candidate).read_text(encoding="utf-8")),
                        workers=2)
    store = SqlStore(db, upgrade=False)
    scopes = Engine(store).scopes()
    steps: list[int] = []
    spark = run_backtest(db, store, scopes, spec, progress=steps.append,
                         engine=SP.spark_pairs_from(tmp_path / "exp", None))
    local = run_backtest(db, store, scopes, spec)
    store.close()
    assert tasks_run == [len(buckets)]
    assert spark == local
    assert sum(steps) == spark["accounts"]["compared"] == 4


def _spark_and_local(db, candidate, export_dir, monkeypatch, **spec_fields):
    """Both engines' results through run_backtest, and how the Spark job(s) ran: True for a
    job whose tasks summarized their accounts, False for one that sent every account back."""
    from pathlib import Path

    from jiefeng.policy.schema import default_policy, parse_policy_text
    from jiefeng.service import backtest_spark as SP
    from jiefeng.service.backtest import BacktestSpec, run_backtest
    from jiefeng.service.engine import Engine
    from jiefeng.store.sql import SqlStore

    jobs: list[bool] = []
    fold_buckets = SP._fold_buckets
    monkeypatch.setattr(SP, "_fold_buckets", lambda context, tasks, accounts, summarized: (
        jobs.append(summarized) or fold_buckets(context, tasks, accounts, summarized)))
    spec = BacktestSpec(default_policy(),
                        parse_policy_text(Path(candidate).read_text(encoding="utf-8")),
                        workers=2, **spec_fields)
    store = SqlStore(db, upgrade=False)
    scopes = Engine(store).scopes()
    spark = run_backtest(db, store, scopes, spec, engine=SP.spark_pairs_from(export_dir, None))
    local = run_backtest(db, store, scopes, spec)
    store.close()
    return spark, local, jobs


@pytest.mark.parametrize("spec_fields", [
    {},
    {"criteria": "score IS NULL OR score > 0", "sample": 3},  # each task keeps its first 3
])
def test_each_task_summarizes_its_accounts_and_the_driver_merges_them(
        stored, tmp_path, monkeypatch, spec_fields):  # noqa: F811
    from typer.testing import CliRunner

    from jiefeng.cli import app

    db, candidate = stored
    exported = CliRunner().invoke(app, ["export", "events", str(tmp_path / "exp"), "--db", db])
    assert exported.exit_code == 0, exported.output
    spark, local, jobs = _spark_and_local(db, candidate, tmp_path / "exp", monkeypatch,
                                          **spec_fields)
    assert jobs == [True]  # one job, no account sent back on its own
    assert spark == local
    assert spark["accounts"]["compared"] == (3 if spec_fields else 4)
    assert spark["accounts"]["differing"] >= 1 and spark["differing_sample"]


def test_an_export_with_accounts_the_store_lacks_is_replayed_for_the_stored_ones(
        stored, tmp_path, monkeypatch):  # noqa: F811
    """An export taken from another store (here: one more account): the tasks' summaries
    would count an account this store does not hold, so the accounts come back one by one
    and only the stored ones count, as the local engine counts them."""
    from typer.testing import CliRunner

    from backtest_portfolio import portfolio
    from jiefeng.cli import app
    from jiefeng.service.engine import Engine
    from jiefeng.store.sql import SqlStore

    db, candidate = stored
    exported = CliRunner().invoke(app, ["export", "events", str(tmp_path / "exp"), "--db", db])
    assert exported.exit_code == 0, exported.output
    smaller = str(tmp_path / "smaller.db")
    report = Engine(SqlStore(smaller)).ingest_events(
        [e for e in portfolio() if e["account_id"] != "QUIET2"])
    assert report.rejected == 0
    spark, local, jobs = _spark_and_local(smaller, candidate, tmp_path / "exp", monkeypatch)
    assert jobs == [True, False]
    assert spark == local
    assert spark["accounts"]["compared"] == 3

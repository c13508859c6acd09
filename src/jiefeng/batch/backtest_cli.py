"""`jiefeng backtest`: replay the stored history under a candidate policy and a baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(backtest)


# The help is rich markup: `\[` keeps the extra's brackets, which markup would take as a tag.
def backtest(
    policy: Annotated[Path, typer.Option("--policy", help="The candidate policy file (TOML).")],
    baseline: Annotated[str, typer.Option(
        "--baseline", help='"active" (the store\'s active policy) or a policy file.')] = "active",
    start: Annotated[str | None, typer.Option(
        "--from", help="RFC 3339 start of the window; default: the first stored event.")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="RFC 3339 end of the window; default: the last stored event.")] = None,
    accounts: Annotated[str | None, typer.Option(
        "--accounts", help="SQL criteria over the sweep features, as of the window's start, "
        'e.g. "utilization > 0.8".')] = None,
    sample: Annotated[int | None, typer.Option(
        "--sample", min=1, help="Only this many accounts, a deterministic sample.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=64, help="Processes replaying partitions of accounts.")] = 1,
    engine_name: Annotated[str, typer.Option("--engine", help="local or spark.")] = "local",
    export_dir: Annotated[Path | None, typer.Option(
        "--input", help="Spark: a `jiefeng export events` directory to read; default: export "
                        "the store into OUT/export first.")] = None,
    spark_remote: Annotated[str | None, typer.Option(
        "--spark-remote", help="Spark: attach to a cluster through Spark Connect, "
                               "sc://host:port; default: a local session.")] = None,
    out: Annotated[Path, typer.Option(
        "--out", help="Directory for backtest.json and backtest.html.")] = Path("backtest"),
    db: Annotated[str, typer.Option("--db", envvar="JIEFENG_DB",
                                    help="SQLite file path or postgresql:// URL.")] = "jiefeng.db",
) -> None:
    """What would the candidate policy have done? Holds, frozen-days, releases, bureau reports,
    per hold code, against the baseline; backtest.json and backtest.html in --out.

    --engine spark replays a Parquet export on Spark (the optional extra `jiefeng\\[spark]`):
    the same fold and the same backtest.json."""
    if engine_name == "local" and workers > 1:
        from jiefeng.service.backtest import start_worker_server

        start_worker_server()  # its interpreter starts while this one reads the store
    from jiefeng.batch.backtest_report import render_backtest_html
    from jiefeng.cli import _engine, _parse_at, _policy, console, errors, progress_bar
    from jiefeng.policy.criteria import CriteriaError
    from jiefeng.service.backtest import BacktestError, BacktestSpec, run_backtest

    if engine_name not in ("local", "spark"):
        errors.print("[red]--engine: must be local or spark[/red]")
        raise typer.Exit(2)
    candidate = _policy(policy)
    window_start, window_end = _parse_at(start, "--from"), _parse_at(end, "--to")
    engine = _engine(db, must_exist=True)
    base = engine.policy if baseline == "active" else _policy(Path(baseline), "--baseline")
    spec = BacktestSpec(base, candidate, window_start, window_end, accounts, sample, workers)
    if engine_name == "local" and (export_dir or spark_remote):
        errors.print("--input and --spark-remote: only with --engine spark", markup=False)
        raise typer.Exit(2)
    try:
        with progress_bar() as bar:
            replay = None
            if engine_name == "spark":
                replay = _spark_engine(engine, out, export_dir, spark_remote, bar)
            task = bar.add_task(f"backtest ({engine_name})", total=None)
            result = run_backtest(db, engine.store, engine.scopes(), spec,
                                  progress=lambda n: bar.advance(task, n),
                                  on_total=lambda n: bar.update(task, total=n), engine=replay)
    except BacktestError as error:
        errors.print(str(error), markup=False, highlight=False)
        raise typer.Exit(2) from None
    except CriteriaError as error:
        errors.print(f"--accounts: {error}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "backtest.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2, sort_keys=True) + "\n",
        encoding="utf-8")
    (out / "backtest.html").write_text(render_backtest_html(result), encoding="utf-8")
    figures = result["accounts"]
    console.print(f"compared {figures['compared']} accounts, {figures['differing']} differ "
                  f"({figures['reached_by_changes']} read a setting the candidate changes: "
                  f"{', '.join(result['policies']['changed_settings']) or 'none'}); "
                  f"wrote {out / 'backtest.json'} and {out / 'backtest.html'}",
                  markup=False, highlight=False)


def _spark_engine(engine, out: Path, export_dir: Path | None, remote: str | None, bar):
    """The Spark replay, after exporting the store when no --input is given."""
    from jiefeng.batch.export import export_events
    from jiefeng.service.backtest import BacktestError
    from jiefeng.service.backtest_spark import SPARK_EXTRA_HINT, spark_pairs_from

    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise BacktestError("--engine spark", SPARK_EXTRA_HINT) from None
    if export_dir is None:
        export_dir = out / "export"
        task = bar.add_task("export events", total=None)
        export_events(engine, export_dir, progress=lambda n: bar.advance(task, n))
    return spark_pairs_from(export_dir, remote)

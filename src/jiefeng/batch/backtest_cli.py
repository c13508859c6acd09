"""`jiefeng backtest`: replay the stored history under a candidate policy and a baseline."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command()(backtest)


def _instant(value: str | None, option: str) -> dt.datetime | None:
    from jiefeng.cli import errors

    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        errors.print(f"{option}: {value!r} is not an RFC 3339 time with a UTC offset, e.g. "
                     "2026-06-01T00:00:00+08:00", markup=False, highlight=False)
        raise typer.Exit(2)
    return at


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
    out: Annotated[Path, typer.Option(
        "--out", help="Directory for backtest.json and backtest.html.")] = Path("backtest"),
    db: Annotated[str, typer.Option("--db", envvar="JIEFENG_DB",
                                    help="SQLite file path or postgresql:// URL.")] = "jiefeng.db",
) -> None:
    """What would the candidate policy have done? Holds, frozen-days, releases, bureau reports,
    per hold code, against the baseline; backtest.json and backtest.html in --out."""
    from jiefeng.batch.backtest_report import render_backtest_html
    from jiefeng.cli import _engine, _policy, console, errors, progress_bar
    from jiefeng.policy.criteria import CriteriaError
    from jiefeng.service.backtest import BacktestError, BacktestSpec, run_backtest

    if engine_name not in ("local", "spark"):
        errors.print("[red]--engine: must be local or spark[/red]")
        raise typer.Exit(2)
    if engine_name == "spark":
        errors.print("[red]--engine spark: not available in this version; use --engine local "
                     "(the same fold, in --workers processes)[/red]")
        raise typer.Exit(2)
    candidate = _policy(policy)
    window_start, window_end = _instant(start, "--from"), _instant(end, "--to")
    engine = _engine(db)
    base = engine.policy if baseline == "active" else _policy(Path(baseline))
    spec = BacktestSpec(base, candidate, window_start, window_end, accounts, sample, workers)
    try:
        with progress_bar() as bar:
            task = bar.add_task("backtest", total=None)
            result = run_backtest(db, engine.store, engine.scopes(), spec,
                                  progress=lambda n: bar.advance(task, n),
                                  on_total=lambda n: bar.update(task, total=n))
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
    console.print(f"compared {figures['compared']} accounts, {figures['differing']} differ; "
                  f"wrote {out / 'backtest.json'} and {out / 'backtest.html'}",
                  markup=False, highlight=False)

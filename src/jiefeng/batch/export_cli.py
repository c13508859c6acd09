"""`jiefeng export events|features --format parquet DIR`: the store as Parquet."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class What(StrEnum):
    events = "events"
    features = "features"


class Format(StrEnum):
    parquet = "parquet"


def register(app: typer.Typer) -> None:
    app.command()(export)


def export(
    what: Annotated[What, typer.Argument(help="events (the log) or features (one row an "
                                              "account)")],
    out: Annotated[Path, typer.Argument(help="Directory to write into")],
    file_format: Annotated[Format, typer.Option("--format", help="Only parquet.")] = Format.parquet,
    at: Annotated[str | None, typer.Option(
        "--at", help="RFC 3339 time: events up to it, features as of it; default: everything, "
                     "each account as of its last event.")] = None,
    buckets: Annotated[int, typer.Option(
        "--buckets", min=1, max=1024, help="Partitions by a hash of account_id.")] = 16,
    db: Annotated[str, typer.Option("--db", envvar="JIEFENG_DB",
                                    help="SQLite file path or postgresql:// URL.")] = "jiefeng.db",
) -> None:
    """Write the event log or the per-account features as Parquet, partitioned by a hash of
    account_id (for DuckDB, Spark and `jiefeng backtest --engine spark`)."""
    from jiefeng.batch.export import export_events, export_features
    from jiefeng.cli import _engine, _parse_at, console, progress_bar

    until = _parse_at(at, "--at")
    engine = _engine(db, must_exist=True)
    with progress_bar() as bar:
        task = bar.add_task(f"export {what.value}", total=None)
        advance = lambda n: bar.advance(task, n)  # noqa: E731
        if what is What.events:
            written = export_events(engine, out, buckets=buckets, until=until, progress=advance)
        else:
            written = export_features(engine, out, buckets=buckets, at=until, progress=advance)
    summary = ", ".join(f"{name} {count}" for name, count in written.items())
    console.print(f"wrote {summary} to {out}", markup=False, highlight=False)

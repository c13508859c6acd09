"""The command line: `jiefeng demo|ingest|explain|authorize|replay|backtest|export|policy|db`.

Every command takes `--db` (a SQLite file path, default ./jiefeng.db, or a postgresql:// URL;
`JIEFENG_DB` sets the default). Exit status: 0 success, 1 a negative answer (declined,
mismatch), 2 invalid input.

Why one long module: each command is a thin wrapper over the service (parse options, call,
print); together they read as the CLI's table of contents, as docs/api.md's CLI section does.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from typer.core import TyperGroup

from jiefeng.batch.limits import MAX_ACCOUNTS, MAX_MONTHS, MIN_ACCOUNTS, MIN_MONTHS
from jiefeng.shown import cut


class JiefengGroup(TyperGroup):
    """The root command. Whatever runs it (the `jiefeng` script, `python -m jiefeng`, typer's
    CliRunner on `app`, a program that embeds it), a database that cannot be used is one line
    on stderr naming --db and what to do, exit 2, never a traceback; so is a database that
    fails once the command has opened it (the server went away, a lock never came)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:
            # Only a command that opened a store can have raised these: no import before that.
            connect = sys.modules.get("jiefeng.store.connect")
            if connect is None:
                raise
            if isinstance(error, connect.StoreUnavailable):
                message = str(error)
            elif isinstance(error, connect.OperationalError):
                message = connect.failed_midway(error)
            else:
                raise
            typer.echo(message, err=True)
            raise typer.Exit(2) from None


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=JiefengGroup,
                  help="jiefeng: freeze and unfreeze consumer credit lines, and say why.")
policy_app = typer.Typer(no_args_is_help=True, help="Show or validate a policy file.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")

# Set by `main` (the jiefeng script, `python -m jiefeng`): the process is this command's alone,
# and may end without the interpreter's teardown (`_exit_now`); not where `app` is embedded.
_whole_process = False


def _print_version(shown: bool) -> None:
    if not shown:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("jiefeng")
    except PackageNotFoundError:  # run from a source tree that was never installed
        number = "(not installed)"
    typer.echo(f"jiefeng {number}")
    raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", help="Print jiefeng's version and exit.", callback=_print_version,
        is_eager=True)] = False) -> None:
    """jiefeng: freeze and unfreeze consumer credit lines, and say why."""


app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")

from jiefeng.api.cli import register as register_api_commands  # noqa: E402

register_api_commands(app)  # serve, keys, token

from jiefeng.batch.backtest_cli import register as register_backtest  # noqa: E402
from jiefeng.batch.export_cli import register as register_export  # noqa: E402

register_backtest(app)  # backtest
register_export(app)  # export

console = Console()
errors = Console(stderr=True)

DbOption = Annotated[
    str, typer.Option("--db", envvar="JIEFENG_DB",
                      help="SQLite file path or postgresql:// URL.")
]
PolicyOption = Annotated[
    Path | None, typer.Option("--policy", help="Policy file (TOML); default: the built-in policy.")
]


def _policy(path: Path | None, option: str = "--policy"):
    """The policy of the file `option` names (None: the built-in default), or exit 2 saying
    why not in one line."""
    from jiefeng.policy.schema import PolicyInvalid, default_policy, load_policy

    if path is None:
        return default_policy()
    try:
        return load_policy(path)
    except (OSError, PolicyInvalid) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        errors.print(f"{option} {path}: {reason}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _engine(db: str, policy_path: Path | None = None, *, must_exist: bool = False):
    """`must_exist` for commands that only read: they never create a database."""
    from jiefeng.service.engine import Engine, EngineCaches
    from jiefeng.store.sql import SqlStore

    try:
        caches = EngineCaches(activations=policy_path is None)  # JIEFENG_CACHE_ACCOUNTS
    except ValueError as error:
        errors.print(str(error), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    # The code and the policy are loaded for good: leave them out of every later collection.
    gc.freeze()
    # Without --policy: the store's active policy version, else the built-in default.
    return Engine(SqlStore(db, must_exist=must_exist),
                  _policy(policy_path) if policy_path else None, caches=caches)


def _parse_at(value: str | None, option: str = "--at") -> dt.datetime | None:
    """An RFC 3339 time with a UTC offset given to `option`; exit 2 naming it otherwise."""
    if value is None:
        return None
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        errors.print(cut(f"{option}: {value!r} is not an RFC 3339 timestamp"), markup=False,
                     soft_wrap=True)
        raise typer.Exit(2) from None
    if at.tzinfo is None:
        errors.print(f"{option}: needs a UTC offset, e.g. 2025-06-01T12:00:00+08:00",
                     markup=False)
        raise typer.Exit(2)
    return at


def progress_bar(*, shown: bool = True) -> Progress:
    """The bar long commands draw on stderr; `shown=False` (a command's --quiet) draws none."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=errors, transient=False, disable=not shown)


def _audit_commands(store: Any, items: list[tuple[int, bytes]], report: Any) -> None:
    """Operator commands and appeals applied from a file go to the audit log (kind `cli`,
    actor the OS user), as they do over HTTP. `items` needs only the lines of commands
    (`scan`'s `keep_types`); `report` must hold their results."""
    if not items:
        return  # no command in the file: nothing to audit, nothing to import
    import getpass

    from jiefeng.service.audit import AuditLog, cli_command_entries

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    accepted_lines = {r.position for r in report.results if r.status == "accepted"}
    AuditLog(store).append_many(
        cli_command_entries(items, accepted_lines, user, dt.datetime.now(dt.UTC)))


# A file at least this large is likely several transactions (FILE_BATCH_EVENTS lines of about
# 150 bytes each): its writer and second folding process are started before it is read.
PRESTART_BYTES = 2 * 1024 * 1024


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="JSON Lines file, one event per line; - for stdin")],
    db: DbOption = "jiefeng.db",
    policy: PolicyOption = None,
    quiet: Annotated[bool, typer.Option(
        "--quiet", help="Only the totals: no progress bar, no line per rejected event.")] = False,
    pipeline: Annotated[bool, typer.Option(
        "--pipeline/--no-pipeline",
        help="Fold in this process while a second one writes (files over one transaction).",
    )] = True,
) -> None:
    """Store and apply events. Idempotent: a repeated event_id is reported as a duplicate.

    The file is read twice, never held whole: once to index its lines, then one transaction
    at a time (stdin is copied to a temporary file first)."""
    from jiefeng.domain.event_kinds import COMMAND_TYPES
    from jiefeng.service.pipeline_processes import EarlyScan, can_fork, launch

    def unreadable(error: OSError) -> typer.Exit:
        errors.print(f"[red]{'stdin' if str(file) == '-' else file}: {error.strerror}[/red]")
        return typer.Exit(2)

    try:
        if str(file) == "-":
            from jiefeng.service.event_file import spooled

            source = spooled(sys.stdin.buffer)
        else:
            source = file.open("rb")
    except OSError as error:
        raise unreadable(error) from None
    # A file of several transactions is ingested by a writer and a second folding process,
    # started before the database is opened and the file read. On Linux they are forked once
    # this process has imported jiefeng, and import nothing; elsewhere they are fresh
    # interpreters, started first so that their imports overlap this process's.
    prestart = pipeline and os.fstat(source.fileno()).st_size >= PRESTART_BYTES
    forked = prestart and can_fork()
    launched = launch() if prestart and not forked else None
    # Forking, a child indexes the file's first lines meanwhile, on the core these imports
    # leave idle (the index's modules are light: see jiefeng.service.event_file).
    early = EarlyScan.start(source, COMMAND_TYPES) if forked else None
    try:
        from jiefeng.service.event_file import scan

        if forked:
            launched = launch(forked=True, inherited=[early.connection] if early else [])
        engine = _engine(db, policy)
        processes = engine.start_file_processes(launched) if launched is not None else None
    except BaseException:
        if launched is not None:
            launched.close()
        if early is not None:
            early.close()
        source.close()
        raise
    try:
        # Bytes, cut on \n only: a bad line is rejected alone (see jiefeng.service.lines).
        # The second folding process, idle until the first batch, indexes part of the rest.
        lines = scan(source, keep_types=COMMAND_TYPES,
                     elsewhere=processes.helper if processes is not None else None,
                     first=early)
    except OSError as error:
        if processes is not None:
            processes.close()
        raise unreadable(error) from None
    finally:
        if early is not None:
            early.close()  # collected, or the scan failed before: never left running
    with lines:
        with progress_bar(shown=not quiet) as bar:
            task = bar.add_task("ingest", total=len(lines))
            report = engine.ingest_file(lines, lambda done: bar.advance(task, done), pipeline,
                                        processes)
    # The report holds the rejected results and those of the kept lines, not one per line.
    rejected = [r for r in report.results if r.status == "rejected"]
    accepted, duplicates = report.accepted, report.duplicates
    # security: who applied commands locally
    _audit_commands(engine.store, lines.kept, report)
    if not quiet:
        for result in rejected:
            event = f" event {result.event_id}:" if result.event_id else ""
            # What the line holds (an id or a type of 10,000 characters) is cut, not echoed.
            console.print(cut(f"line {result.position}:{event} {result.field}: {result.reason}"),
                          markup=False, highlight=False, soft_wrap=True)
    console.print(f"accepted {accepted}, duplicate {duplicates}, rejected {len(rejected)}")
    if _whole_process:
        _exit_now(engine.store, 2 if rejected else 0)
    if rejected:
        raise typer.Exit(2)


def _exit_now(store: Any, code: int) -> None:
    """End a command that runs as the whole process (`main`) without the interpreter's
    teardown: after a file ingest, freeing its objects one by one (the states it keeps, the
    file's index, the modules) took about a tenth of a second once everything was committed
    and printed. The store is closed first (SQLite folds its write-ahead log back into the
    database file then), the log handlers and the output flushed."""
    import logging

    store.close()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def explain(
    account: Annotated[str, typer.Argument(help="Account id")],
    at: Annotated[str | None, typer.Option("--at", help="RFC 3339 time; default now")] = None,
    lang: Annotated[str, typer.Option("--lang", help="zh-CN or en")] = "zh-CN",
    as_json: Annotated[bool, typer.Option("--json", help="The structured explanation")] = False,
    trace: Annotated[bool, typer.Option(
        "--trace", help="The decision trace of each active hold (JSON, jiefeng.trace/1)")] = False,
    db: DbOption = "jiefeng.db",
    policy: PolicyOption = None,
) -> None:
    """Why is this account frozen, and what can the customer do?"""
    from jiefeng.explain.render import SUPPORTED_LANGS, render_text
    from jiefeng.service.engine import AccountNotFound

    if lang not in SUPPORTED_LANGS:
        errors.print(f"[red]--lang: must be one of {', '.join(SUPPORTED_LANGS)}[/red]")
        raise typer.Exit(2)
    engine = _engine(db, policy, must_exist=True)
    try:
        if trace:  # the staff's view: parameters and facts of every hold, confidential ones too
            print(json.dumps(engine.traces(account, _parse_at(at)), ensure_ascii=False, indent=2))
            return
        explanation = engine.explain(account, _parse_at(at))
    except AccountNotFound as error:
        errors.print(cut(str(error)), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(explanation, ensure_ascii=False, indent=2))
    else:
        print(render_text(explanation, lang))


@app.command()
def authorize(
    account: Annotated[str, typer.Argument(help="Account id")],
    amount: Annotated[str, typer.Option("--amount", help='Decimal CNY, e.g. "120.50"')],
    merchant: Annotated[str, typer.Option("--merchant")] = "unknown",
    kind: Annotated[str, typer.Option("--kind", help="purchase, transfer, cash_withdrawal")] = (
        "purchase"),
    password_ok: Annotated[bool | None, typer.Option(
        "--password-ok/--password-wrong", help="Result of the payment password check")] = None,
    at: Annotated[str | None, typer.Option("--at", help="RFC 3339 time; default now")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    db: DbOption = "jiefeng.db",
    policy: PolicyOption = None,
) -> None:
    """Would this purchase be approved? Changes nothing; exit 0 approved, 1 declined."""
    from jiefeng.domain.decisions import PurchaseRequest
    from jiefeng.domain.money import parse_amount_fen
    from jiefeng.service.engine import AccountNotFound

    try:
        request = PurchaseRequest(parse_amount_fen(amount), merchant, kind, password_ok)
    except ValueError as error:
        message = str(error)
        errors.print(f"[red]{message if ':' in message else '--amount: ' + message}[/red]")
        raise typer.Exit(2) from None
    engine = _engine(db, policy, must_exist=True)
    try:
        decision = engine.authorize(account, request, _parse_at(at))
    except AccountNotFound as error:
        errors.print(cut(str(error)), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps(decision.to_dict(), ensure_ascii=False, indent=2))
    else:
        verdict = "approved" if decision.approved else "declined: " + ", ".join(decision.codes)
        print(f"{account} {verdict} (policy {decision.policy_version})")
    raise typer.Exit(0 if decision.approved else 1)


@app.command()
def replay(
    db: DbOption = "jiefeng.db",
    policy: PolicyOption = None,
    check_only: Annotated[bool, typer.Option("--check-only",
                                             help="Compare, do not rewrite state")] = False,
) -> None:
    """Rebuild every account's state from the event log and compare it with the stored state."""
    engine = _engine(db, policy, must_exist=True)
    with progress_bar() as bar:
        task = bar.add_task("replay", total=None)
        report = engine.replay(progress=lambda n: bar.advance(task, n), write=not check_only)
    console.print(f"accounts {report.accounts}, events {report.events}, "
                  f"mismatched {len(report.mismatched)}")
    for account_id in report.mismatched[:20]:
        console.print(f"  mismatch: {account_id}")
    if report.mismatched:
        raise typer.Exit(1)


@app.command()
def demo(
    db: DbOption = "jiefeng.db",
    accounts: Annotated[int, typer.Option("--accounts", min=MIN_ACCOUNTS,
                                          max=MAX_ACCOUNTS)] = 2000,
    months: Annotated[int, typer.Option("--months", min=MIN_MONTHS, max=MAX_MONTHS)] = 18,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    out: Annotated[Path, typer.Option("--out", help="Where the HTML report goes")] = Path("out"),
    lang: Annotated[str, typer.Option("--lang", help="zh-CN or en")] = "zh-CN",
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Delete the SQLite --db file first (a used database is refused).")
    ] = False,
) -> None:
    """Generate a synthetic portfolio in which every cause occurs and lifts, run it, report.

    The same demo again on its database is fine (its events are duplicates); a database that
    holds other events is refused (exit 2) unless --fresh starts the SQLite file again."""
    from jiefeng.batch.demo import DemoRefused, run_demo

    try:
        run_demo(db=db, accounts=accounts, months=months, seed=seed, out=out, lang=lang,
                 console=console, progress=progress_bar, fresh=fresh)
    except DemoRefused as error:
        errors.print(str(error), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


OptionalDbOption = Annotated[
    str | None, typer.Option("--db", help="SQLite file path or postgresql:// URL: read the "
                                          "store's policy versions.")
]


def _active_policy_text(db: str) -> str:
    """The text of the store's active version; the built-in default if none was activated."""
    from sqlalchemy import select

    from jiefeng.policy.schema import default_policy_text
    from jiefeng.service import policies
    from jiefeng.store import service_tables as st
    from jiefeng.store.sql import SqlStore

    store = SqlStore(db, must_exist=True)
    try:
        active = next((p for p in policies.list_all(store) if p["active"]), None)
        if active is None:
            return default_policy_text()
        with store.read() as connection:
            return connection.execute(select(st.policies.c.body).where(
                st.policies.c.version == active["version"])).scalar_one()
    finally:
        store.close()


@policy_app.command("show")
def policy_show(
    file: Annotated[Path | None, typer.Argument(help="Policy file; default: built-in")] = None,
    db: OptionalDbOption = None,
) -> None:
    """Print a policy, validated: a file, else the active version of --db's store, else the
    built-in default."""
    from jiefeng.policy.schema import default_policy_text, read_policy_text

    if file is not None and db is not None:
        errors.print("give a policy file or --db, not both", markup=False)
        raise typer.Exit(2)
    if file is not None:
        _policy(file, option="policy file")
        print(read_policy_text(file))
    elif db is not None:
        print(_active_policy_text(db))
    else:
        print(default_policy_text())


@policy_app.command("validate")
def policy_validate(file: Annotated[Path, typer.Argument(help="Policy file (TOML)")],
                    db: OptionalDbOption = None) -> None:
    """Check a policy file; exit 2 with each field and reason if it is invalid. With --db, also
    refuse a version the store already holds with other settings (upload would refuse it)."""
    from jiefeng.policy.schema import PolicyInvalid, parse_policy_text, read_policy_text

    try:
        text = read_policy_text(file)
        policy = parse_policy_text(text)
    except OSError as error:
        errors.print(f"[red]{file}: {error.strerror}[/red]")
        raise typer.Exit(2) from None
    except PolicyInvalid as error:
        for field_name, reason in error.problems:
            console.print(f"{field_name}: {reason}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    if db is not None:
        import hashlib

        from jiefeng.service import policies
        from jiefeng.store.sql import SqlStore

        store = SqlStore(db, must_exist=True)
        try:
            stored = policies.get(store, policy.version)
        except policies.PolicyNotFound:
            stored = None
        finally:
            store.close()
        digest = hashlib.sha256(text.encode()).hexdigest()
        if stored is not None and stored["sha256"] != digest:
            console.print(f"version: {policy.version!r} is already stored with other "
                          "settings; give the changed policy a new version",
                          markup=False, highlight=False)
            raise typer.Exit(2)
    console.print(f"valid: policy version {policy.version}")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = "jiefeng.db") -> None:
    """Create or migrate the schema to the latest version (Alembic)."""
    from jiefeng.store.sql import SqlStore

    store = SqlStore(db)
    console.print(f"schema at revision {store.current_revision()}")


def main() -> None:
    global _whole_process
    # Ingest and replay allocate millions of short-lived objects next to a large cache of
    # account states and few reference cycles; the default thresholds walk that cache in
    # frequent collections that find almost nothing to free.
    gc.set_threshold(200_000, 50, 1000)
    _whole_process = True
    app()  # JiefengGroup turns a database that cannot be used into one line and exit 2


if __name__ == "__main__":
    main()

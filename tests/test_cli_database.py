"""The database as a new user meets it on the command line (hardening items 17 and 18).

Item 17: a database that cannot be used (a path in a missing folder, a file that is not a
database, PostgreSQL on a wrong port, a wrong user or database name) is one line on stderr
naming --db, exit 2 and no traceback, whichever way the CLI runs: typer's CliRunner on `app`
(as tests and embedding programs call it), `python -m jiefeng`, the `jiefeng` script, and
`jiefeng serve`, which refuses to start.

Item 18: a command that only reads never creates a database nor writes a schema into an empty
one: run in an empty folder, on an empty SQLite file, on another program's SQLite file or on an
empty PostgreSQL database, it exits 2 saying where it found no jiefeng database and how to make
one. Every command is classified below; a new command fails the classification test until it
is put on one side.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from backends import PG_ADMIN_URL, fresh_pg_database, require_postgres
from jiefeng.cli import app
from jiefeng.store.connect import StoreUnavailable

runner = CliRunner()
DEFAULT_POLICY = str(resources.files("jiefeng.policy").joinpath("default.toml"))

# Commands that only read: none may create a database. (`replay` rewrites the state of a
# database that is there, `keys revoke` and `token create` need one; none makes one.)
READ_ONLY = {
    "explain": ["explain", "A1"],
    "authorize": ["authorize", "A1", "--amount", "1"],
    "replay": ["replay"],
    "backtest": ["backtest", "--policy", DEFAULT_POLICY],
    "export": ["export", "events", "out"],
    "policy show": ["policy", "show", "--db", "jiefeng.db"],
    "policy validate": ["policy", "validate", DEFAULT_POLICY, "--db", "jiefeng.db"],
    "keys list": ["keys", "list"],
    "keys revoke": ["keys", "revoke", "k1"],
    "token create": ["token", "create", "--account", "A1"],
}
# Commands that create the database when it is not there (README: `jiefeng ingest`, `demo`,
# `db upgrade`; `serve` and `keys create` set up a service before its first event).
WRITING = {"ingest", "demo", "db upgrade", "serve", "keys create"}


def _leaf_commands() -> set[str]:
    import typer.main

    names: set[str] = set()

    def walk(command, prefix: str) -> None:
        children = getattr(command, "commands", None)
        if not children:
            names.add(prefix)
            return
        for name, child in children.items():
            walk(child, f"{prefix} {name}".strip())

    walk(typer.main.get_command(app), "")
    return names


def test_every_command_is_classified_as_read_only_or_writing() -> None:
    assert _leaf_commands() == set(READ_ONLY) | WRITING
    assert not set(READ_ONLY) & WRITING


def _invoke(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("JIEFENG_DB", raising=False)
    return runner.invoke(app, args)


def one_line(result, *needles: str) -> str:
    """CliRunner's result: exit 2, one line on stderr, no exception escaped."""
    assert result.exit_code == 2, (result.output, result.exception)
    assert not isinstance(result.exception, StoreUnavailable)
    message = result.stderr.strip()
    assert "Traceback" not in result.output and len(message.splitlines()) == 1, result.output
    for needle in needles:
        assert needle in message, message
    return message


def process_one_line(completed: subprocess.CompletedProcess, *needles: str) -> str:
    assert completed.returncode == 2, (completed.stdout, completed.stderr)
    message = completed.stderr.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, message
    return message


def python_m_jiefeng(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "JIEFENG_DB"}
    return subprocess.run([sys.executable, "-m", "jiefeng", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


# --- item 18: read-only commands never create a database ------------------------------------


@pytest.mark.parametrize("name", sorted(READ_ONLY))
def test_read_only_commands_in_an_empty_folder(tmp_path, monkeypatch, name) -> None:
    result = _invoke(READ_ONLY[name], tmp_path, monkeypatch)
    one_line(result, "--db jiefeng.db", "no database found", str(tmp_path / "jiefeng.db"),
             "jiefeng ingest", "jiefeng db upgrade")
    assert list(tmp_path.iterdir()) == []  # no database, no -wal, no out/


@pytest.mark.parametrize("name", sorted(READ_ONLY))
def test_read_only_commands_leave_an_empty_sqlite_file_empty(tmp_path, monkeypatch,
                                                             name) -> None:
    (tmp_path / "jiefeng.db").touch()
    result = _invoke(READ_ONLY[name], tmp_path, monkeypatch)
    one_line(result, "no jiefeng database found", str(tmp_path / "jiefeng.db"), "is empty",
             "jiefeng db upgrade")
    assert [p.name for p in tmp_path.iterdir()] == ["jiefeng.db"]
    assert (tmp_path / "jiefeng.db").stat().st_size == 0


def test_read_only_commands_leave_another_programs_sqlite_file_alone(tmp_path,
                                                                     monkeypatch) -> None:
    other = tmp_path / "jiefeng.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    connection.close()
    before = other.read_bytes()
    for name, args in READ_ONLY.items():
        result = _invoke(args, tmp_path, monkeypatch)
        one_line(result, "no jiefeng database found", "holds no jiefeng tables")
        assert other.read_bytes() == before, name
    assert [p.name for p in tmp_path.iterdir()] == ["jiefeng.db"]


def test_a_read_only_command_run_as_a_process_creates_nothing(tmp_path) -> None:
    process_one_line(python_m_jiefeng("keys", "list", cwd=tmp_path), "no database found",
                     str(tmp_path / "jiefeng.db"))
    process_one_line(python_m_jiefeng("token", "create", "--account", "A1", cwd=tmp_path),
                     "no database found")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_read_only_commands_write_no_schema_into_an_empty_postgres_database(
        tmp_path, monkeypatch) -> None:
    require_postgres()
    import psycopg

    for url in fresh_pg_database():
        for name, args in READ_ONLY.items():
            args = [arg if arg != "jiefeng.db" else url for arg in args]
            if "--db" not in args:
                args = [*args, "--db", url]
            result = _invoke(args, tmp_path, monkeypatch)
            one_line(result, "no jiefeng database found there", "--db postgresql://",
                     "jiefeng db upgrade")
            with psycopg.connect(url) as connection:
                tables = connection.execute(
                    "SELECT count(*) FROM information_schema.tables "
                    "WHERE table_schema = 'public'").fetchone()[0]
            assert tables == 0, name


def test_the_writing_commands_still_create_their_database(tmp_path, monkeypatch) -> None:
    result = _invoke(["db", "upgrade"], tmp_path, monkeypatch)
    assert result.exit_code == 0 and (tmp_path / "jiefeng.db").exists()
    listed = _invoke(["keys", "list"], tmp_path, monkeypatch)
    assert listed.exit_code == 0 and listed.output == ""


def test_token_create_refuses_an_account_that_is_not_there(tmp_path, monkeypatch) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"event_id":"o1","type":"account_opened","at":"2026-01-05T10:00:00+08:00",'
        '"account_id":"A1","credit_limit":"5000.00","id_expires_on":"2035-01-01"}\n',
        encoding="utf-8")
    assert _invoke(["ingest", str(events)], tmp_path, monkeypatch).exit_code == 0
    refused = _invoke(["token", "create", "--account", "A2"], tmp_path, monkeypatch)
    one_line(refused, "--account", "no account 'A2'", "--db jiefeng.db")
    assert refused.stdout == ""  # no token issued
    long = _invoke(["token", "create", "--account", "Q" * 10_000], tmp_path, monkeypatch)
    message = one_line(long, "--account", "Q" * 64 + "…")
    assert len(message) < 300
    issued = _invoke(["token", "create", "--account", "A1"], tmp_path, monkeypatch)
    assert issued.exit_code == 0 and issued.stdout.count(".") == 2  # a JWT


# --- item 17: a database that cannot be used is one line, exit 2 ----------------------------


def _not_a_database(tmp_path: Path) -> str:
    (tmp_path / "notes.db").write_text("hello, not SQLite\n" * 100, encoding="utf-8")
    return "notes.db"


SQLITE_CASES = {
    "missing folder": (lambda tmp: str(tmp / "no" / "x.db"), ["does not exist", "no"]),
    "not a database": (_not_a_database, ["notes.db", "is not a SQLite database"]),
}


@pytest.mark.parametrize("case", sorted(SQLITE_CASES))
@pytest.mark.parametrize("command", [["ingest", "-"], ["explain", "A1"], ["keys", "create",
                                                                           "--role", "admin"]])
def test_unusable_sqlite_paths_through_the_cli_runner(tmp_path, monkeypatch, case,
                                                      command) -> None:
    make, needles = SQLITE_CASES[case]
    db = make(tmp_path)
    one_line(_invoke([*command, "--db", db], tmp_path, monkeypatch), f"--db {db}", *needles)


@pytest.mark.parametrize("case", sorted(SQLITE_CASES))
def test_unusable_sqlite_paths_through_python_m_jiefeng(tmp_path, case) -> None:
    make, needles = SQLITE_CASES[case]
    db = make(tmp_path)
    process_one_line(python_m_jiefeng("ingest", "-", "--db", db, cwd=tmp_path), *needles)
    process_one_line(python_m_jiefeng("replay", "--db", db, cwd=tmp_path), *needles)


PG_CASES = {
    "wrong port": (lambda base: base.replace(":5432", ":5999"), "check the host and port"),
    "wrong user": (lambda base: base.replace("postgres@", "jiefeng_nobody@", 1), "check the user"),
    "wrong database": (lambda base: base.rpartition("/")[0] + "/jiefeng_no_such_db",
                       "does not exist"),
}


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(PG_CASES))
def test_postgres_connection_errors_through_the_cli_runner(tmp_path, monkeypatch,
                                                           case) -> None:
    require_postgres()
    change, needle = PG_CASES[case]
    url = change(PG_ADMIN_URL)
    for command in (["explain", "A1"], ["ingest", "-"], ["db", "upgrade"]):
        one_line(_invoke([*command, "--db", url], tmp_path, monkeypatch), needle,
                 "--db postgresql://")


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(PG_CASES))
def test_postgres_connection_errors_through_python_m_jiefeng(tmp_path, case) -> None:
    require_postgres()
    change, needle = PG_CASES[case]
    process_one_line(python_m_jiefeng("keys", "list", "--db", change(PG_ADMIN_URL),
                                      cwd=tmp_path), needle, "--db postgresql://")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("db, needle", [
    ("{tmp}/no/x.db", "does not exist"),
    ("postgresql://postgres@127.0.0.1:5999/jiefeng", "check the host and port"),
])
def test_serve_refuses_to_start_on_an_unusable_database(tmp_path, db, needle) -> None:
    if db.startswith("postgresql"):
        pytest.importorskip("psycopg")
    db = db.format(tmp=tmp_path)
    process_one_line(python_m_jiefeng("serve", "--db", db, "--port", str(_free_port()),
                                      cwd=tmp_path), needle, "--db")


def test_the_console_script_maps_it_too(tmp_path) -> None:
    script = Path(sys.executable).with_name("jiefeng")
    if not script.exists():
        pytest.skip("jiefeng is not installed as a script in this environment")
    env = {key: value for key, value in os.environ.items() if key != "JIEFENG_DB"}
    completed = subprocess.run([str(script), "explain", "A1"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
    process_one_line(completed, "no database found")
    assert list(tmp_path.iterdir()) == []


def test_ingest_cuts_long_ids_and_types_in_rejected_lines(tmp_path, monkeypatch) -> None:
    long_id, long_type = "I" * 10_000, "T" * 10_000
    events = tmp_path / "events.jsonl"
    events.write_text(
        f'{{"event_id":"{long_id}","type":"{long_type}","at":"2026-01-05T10:00:00+08:00"}}\n',
        encoding="utf-8")
    result = _invoke(["ingest", str(events), "--db", "x.db"], tmp_path, monkeypatch)
    assert result.exit_code == 2
    line = next(text for text in result.stdout.splitlines() if text.startswith("line 1:"))
    assert len(line) < 400, len(line)
    assert "I" * 64 + "…" in line and "I" * 65 not in line
    assert "T" * 64 + "…" in line and "T" * 65 not in line


def test_explain_cuts_a_long_account_id(tmp_path, monkeypatch) -> None:
    assert _invoke(["db", "upgrade"], tmp_path, monkeypatch).exit_code == 0
    message = one_line(_invoke(["explain", "A" * 10_000], tmp_path, monkeypatch),
                       "account_id", "A" * 64 + "…")
    assert len(message) < 200


def test_a_database_that_fails_during_a_command_is_one_line(tmp_path, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    assert _invoke(["db", "upgrade"], tmp_path, monkeypatch).exit_code == 0

    def gone(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, Exception(
            "server closed the connection unexpectedly\n\tThis probably means ..."))

    monkeypatch.setattr("jiefeng.service.engine.Engine.explain", gone)
    one_line(_invoke(["explain", "A1"], tmp_path, monkeypatch),
             "--db: the database failed during the command",
             "server closed the connection unexpectedly", "run the command again")

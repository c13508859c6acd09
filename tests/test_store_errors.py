"""A database that cannot be used is one line naming --db, exit 2, no traceback; read-only
commands never create a database (hardening items 16, 17, 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends import PG_ADMIN_URL, require_postgres


def jiefeng(*args: str, cwd: Path, prelude: str = "pass") -> subprocess.CompletedProcess:
    code = f"import sys; {prelude}; from jiefeng.cli import main; sys.argv = ['jiefeng', " \
           f"*{list(args)!r}]; main()"
    env = {**os.environ}
    env.pop("JIEFENG_DB", None)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    message = result.stderr.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    for needle in needles:
        assert needle in message, message
    return message


@pytest.mark.parametrize("command", [["explain", "A1"], ["authorize", "A1", "--amount", "1"],
                                     ["replay"], ["export", "events", "out"],
                                     ["backtest", "--policy", "p.toml"]])
def test_read_only_commands_never_create_a_database(tmp_path, command):
    (tmp_path / "p.toml").write_text("", encoding="utf-8")
    result = jiefeng(*command, cwd=tmp_path)
    if command[0] == "backtest" and result.returncode == 2 and "policy" in result.stderr:
        pass  # the empty policy file is refused first: still nothing created
    else:
        one_line_error(result, "--db jiefeng.db", "no database found", str(tmp_path))
    assert not (tmp_path / "jiefeng.db").exists()


def test_a_path_in_a_missing_folder(tmp_path):
    one_line_error(jiefeng("ingest", "-", "--db", str(tmp_path / "no" / "x.db"), cwd=tmp_path),
                   "does not exist", str(tmp_path / "no"))


def test_a_file_that_is_not_a_database(tmp_path):
    (tmp_path / "notes.db").write_text("hello, not SQLite\n" * 100, encoding="utf-8")
    one_line_error(jiefeng("ingest", "-", "--db", "notes.db", cwd=tmp_path),
                   "notes.db", "is not a SQLite database")


def test_postgres_without_psycopg_names_the_extra(tmp_path):
    result = jiefeng("explain", "A1", "--db", "postgresql://u@127.0.0.1/x", cwd=tmp_path,
                     prelude="sys.modules['psycopg'] = None")
    one_line_error(result, "jiefeng[postgres]")


@pytest.mark.postgres
@pytest.mark.parametrize("url_change, needle", [
    (lambda base: base.rpartition("/")[0] + "/jiefeng_no_such_db", "does not exist"),
    (lambda base: base.replace(":5432", ":5999"), "check the host and port"),
    (lambda base: base.replace("postgres@", "jiefeng_nobody@", 1), "check the user"),
])
def test_postgres_connection_errors_are_one_line(tmp_path, url_change, needle):
    require_postgres()
    one_line_error(jiefeng("explain", "A1", "--db", url_change(PG_ADMIN_URL), cwd=tmp_path),
                   needle, "--db postgresql://")

"""Opening a store: what can go wrong, said in one line that names `--db` and what to do.

A missing driver, a database that is not there, a wrong port or user, a path in a folder that
does not exist, a file that is not a database: each is a `StoreUnavailable` whose message the
CLI prints as it is (exit 2, whichever way the CLI is run) and `serve` refuses to start with.

A read-only use (`must_exist`) never creates a database, nor writes a schema into one that has
none: a missing SQLite file, an empty one, another program's SQLite file, and a PostgreSQL
database without jiefeng's tables are each "no jiefeng database" naming where it looked and
how to make one. A SQLite file is looked at read-only before anything connects to it.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

CREATE_HINT = ("create one with `jiefeng ingest FILE --db {db}`, `jiefeng demo --db {db}` or "
               "`jiefeng db upgrade --db {db}`, or pass another --db")
POSTGRES_EXTRA_HINT = ("PostgreSQL needs the postgres extra: pip install 'jiefeng[postgres]' "
                       "(psycopg)")


class StoreUnavailable(RuntimeError):
    """The database cannot be used; the message is the one line to show."""


def _psycopg_installed() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


def shown(url: str) -> str:
    """The URL as the user wrote it, without its password, for messages."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql")
    return parsed.render_as_string(hide_password=True)


def db_shown(url: str) -> str:
    """--db as a message names it: a SQLite file's path, else the URL without its password."""
    path = sqlite_path(url)
    return str(path) if path is not None else shown(url)


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def check_before_connecting(url: str, *, must_exist: bool) -> None:
    """What can be known without connecting: the driver, the folder, the file."""
    backend = make_url(url).get_backend_name()
    if backend == "postgresql" and not _psycopg_installed():
        raise StoreUnavailable(f"--db {shown(url)}: {POSTGRES_EXTRA_HINT}")
    path = sqlite_path(url)
    if path is None:
        return
    if not path.parent.exists():
        raise StoreUnavailable(f"--db {path}: the folder {path.parent} does not exist; "
                               "create it or give another path")
    if must_exist and not path.exists():
        raise StoreUnavailable(f"--db {path}: no database found at {path.resolve()}; "
                               + CREATE_HINT.format(db=path))
    if path.is_dir():
        raise StoreUnavailable(f"--db {path}: is a folder, not a database file")
    if must_exist:
        _sqlite_has_schema(path)


def _sqlite_has_schema(path: Path) -> None:
    """A read-only look (nothing written, not even WAL mode) at an existing SQLite file."""
    if path.stat().st_size > 0:
        try:
            with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro",
                                         uri=True)) as connection:
                found = connection.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' "
                    "AND name = 'alembic_version'").fetchone()
        except sqlite3.DatabaseError as error:
            if "not a database" in str(error).lower():
                raise StoreUnavailable(f"--db {path}: is not a SQLite database (a file of "
                                       "another kind is there); give another path") from None
            raise StoreUnavailable(f"--db {path}: cannot open it: {error}") from None
        if found:
            return
    raise no_jiefeng_database(f"sqlite:///{path}")


def no_jiefeng_database(url: str) -> StoreUnavailable:
    """A database that is there but holds no jiefeng schema (read-only uses do not add one)."""
    path = sqlite_path(url)
    if path is not None:
        empty = path.stat().st_size == 0
        what = "the file is empty" if empty else "the file holds no jiefeng tables"
        return StoreUnavailable(f"--db {path}: no jiefeng database found at {path.resolve()} "
                                f"({what}); " + CREATE_HINT.format(db=path))
    where = shown(url)
    return StoreUnavailable(f"--db {where}: no jiefeng database found there (no jiefeng "
                            "tables in it); " + CREATE_HINT.format(db=where))


def explain_error(url: str, error: SQLAlchemyError) -> StoreUnavailable:
    """A driver's connection error as one line."""
    original = error.orig if isinstance(error, DBAPIError) else error
    first_line = str(original).strip().splitlines()[0] if str(original).strip() else ""
    lowered = first_line.lower()
    path = sqlite_path(url)
    if path is not None:
        if "not a database" in lowered:
            return StoreUnavailable(f"--db {path}: is not a SQLite database (a file of another "
                                    "kind is there); give another path")
        return StoreUnavailable(f"--db {path}: cannot open it: {first_line}")
    where = shown(url)
    if "does not exist" in lowered and "database" in lowered:
        return StoreUnavailable(f"--db {where}: {first_line}; create it (createdb) or fix "
                                "the name")
    if "role" in lowered or "authentication" in lowered:
        return StoreUnavailable(f"--db {where}: {first_line}; check the user and password")
    if "connection refused" in lowered or "could not connect" in lowered \
            or "timeout" in lowered or "connection failed" in lowered:
        return StoreUnavailable(f"--db {where}: no PostgreSQL answers there ({first_line}); "
                                "check the host and port")
    return StoreUnavailable(f"--db {where}: {first_line or type(original).__name__}")


def failed_midway(error: OperationalError) -> str:
    """A database that failed after it was opened (the server went away, a lock never came),
    as one line. What was committed before stays; a repeated ingest reports it as duplicates."""
    original = error.orig if error.orig is not None else error
    text = str(original).strip()
    first_line = text.splitlines()[0] if text else type(original).__name__
    return (f"--db: the database failed during the command: {first_line}; run the command "
            "again once the database answers (events already stored are kept; a repeated "
            "ingest reports them as duplicates)")

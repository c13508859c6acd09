"""Opening a store: what can go wrong, said in one line that names `--db` and what to do.

A missing driver, a database that is not there, a wrong port or user, a path in a folder that
does not exist, a file that is not a database: each is a `StoreUnavailable` whose message the
CLI prints as it is (exit 2) and `serve` refuses to start with.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

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
        raise StoreUnavailable(f"--db {path}: no database found at {path.resolve()}; run "
                               "`jiefeng ingest` or `jiefeng demo` first, or pass --db")
    if path.is_dir():
        raise StoreUnavailable(f"--db {path}: is a folder, not a database file")


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

"""Database backends for store and service tests: SQLite always, PostgreSQL when reachable.

PostgreSQL tests create a fresh database per test and drop it afterwards. Without a server
they skip with the reason; under CI=true a missing server is a failure, not a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_ADMIN_URL = os.environ.get("JIEFENG_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_unavailable() -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return None
    except psycopg.Error as error:
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {error}".strip()


def require_postgres() -> None:
    reason = _pg_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires PostgreSQL: {reason}")
    pytest.skip(reason)


def fresh_pg_database() -> Iterator[str]:
    import psycopg

    name = f"jiefeng_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file path, or a postgresql:// URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "jiefeng.db")
        return
    require_postgres()
    yield from fresh_pg_database()

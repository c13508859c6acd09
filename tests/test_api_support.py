"""Helpers for the API tests: an app on a temporary SQLite file with a settable clock, keys for
each role, customer tokens, and wire-format events. (No tests here; the API test modules import
these fixtures.)"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about httpx vs httpx2
    from fastapi.testclient import TestClient

from jiefeng.api.app import create_app

TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=TZ)  # accounts open here
NOW = T0 + dt.timedelta(hours=1)  # the service clock starts here
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


class Clock:
    """The service clock: fixed, moved only by the test."""

    def __init__(self, at: dt.datetime = NOW):
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, delta: dt.timedelta) -> None:
        self.at += delta


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def opened(account_id: str, event_id: str | None = None, at: dt.datetime = T0,
           **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id or f"open-{account_id}", "type": "account_opened",
            "at": at.isoformat(), "account_id": account_id, "credit_limit": "10000.00",
            "id_expires_on": "2035-12-31", **fields}


def event(type_: str, account_id: str, event_id: str, at: dt.datetime,
          **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "at": at.isoformat(), "account_id": account_id,
            **fields}


def wrong_passwords(account_id: str, start: dt.datetime, count: int = 5) -> list[dict[str, Any]]:
    return [event("password_attempt", account_id, f"{account_id}-pw-{i}",
                  start + dt.timedelta(minutes=i), ok=False) for i in range(count)]


class Api:
    """A test client with a key per role and helpers for customer tokens."""

    def __init__(self, client: TestClient, clock: Clock):
        self.client = client
        self.clock = clock
        self.services = client.app.state.services
        self.keys: dict[str, str] = {}
        for role in ("ingest", "reviewer", "operator", "admin"):
            self.keys[role] = self.make_key([role], f"{role}-1")

    def make_key(self, roles: list[str], name: str) -> str:
        return self.services.keys.create(roles, name, "test", self.clock()).key

    def as_role(self, role: str) -> dict[str, str]:
        return bearer(self.keys[role])

    def customer(self, account_id: str, ttl_hours: int = 24) -> dict[str, str]:
        return bearer(self.services.tokens.issue(account_id, self.clock(), ttl_hours))

    def ingest(self, *events: dict[str, Any]) -> Any:
        response = self.client.post("/v1/events", json={"events": list(events)},
                                    headers=self.as_role("ingest"))
        assert response.status_code == 200, response.text
        return response.json()

    def audit(self) -> list[dict[str, Any]]:
        response = self.client.get("/v1/audit", params={"limit": 500},
                                   headers=self.as_role("admin"))
        assert response.status_code == 200, response.text
        return response.json()["entries"]


def make_api(tmp_path: Path, clock: Clock | None = None, db: str | None = None,
             **app_options: Any) -> Iterator[Api]:
    clock = clock or Clock()
    app = create_app(db or str(tmp_path / "api.db"), now=clock, **app_options)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, clock)
    app.state.services.store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The service on SQLite, and again on a fresh PostgreSQL database (see backends.py)."""
    if request.param == "sqlite":
        yield from make_api(tmp_path)
        return
    from backends import fresh_pg_database, require_postgres

    require_postgres()
    for url in fresh_pg_database():
        yield from make_api(tmp_path, db=url)


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    assert "Traceback" not in response.text
    if field is not None:
        fields = [e["field"] for e in body.get("errors", [])]
        assert field in fields, body
    return body

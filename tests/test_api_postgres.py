"""The API on PostgreSQL: migration 0002 (with the audit log's append-only trigger), keys,
appeals, sweeps and policies through HTTP. Skipped when no server answers on 127.0.0.1:5432."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator

import pytest

from test_api_support import MINUTE, T0, Api, Clock, assert_problem, event, opened

pytestmark = pytest.mark.postgres

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def pg_api() -> Iterator[Api]:
    sa = pytest.importorskip("sqlalchemy")
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception:  # noqa: BLE001 - no server, no test
        admin.dispose()
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"jiefeng_api_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

        from jiefeng.api.app import create_app
    clock = Clock()
    app = create_app(f"postgresql://postgres@127.0.0.1:5432/{name}", now=clock)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client, clock)
    finally:
        app.state.services.store.close()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def test_service_on_postgres(pg_api: Api) -> None:
    api = pg_api
    api.ingest(opened("A2"), event("purchase", "A2", "A2-t1", T0 + 20 * MINUTE, amount="500.00",
                                   merchant_id="M1", kind="transfer"),
               opened("S1"), event("score_update", "S1", "S1-s", T0 + MINUTE, score=500))
    customer = api.customer("A2")
    appeal = api.client.post("/v1/accounts/A2/appeals", headers=customer,
                             json={"hold_code": "cash_out_suspected"}).json()
    decided = api.client.post(f"/v1/appeals/{appeal['appeal_id']}/decision",
                              headers=api.as_role("reviewer"), json={"decision": "approve"})
    assert decided.json()["status"] == "approved"
    stats = api.client.get("/v1/appeals/stats", headers=api.as_role("reviewer")).json()
    assert stats["by_hold_code"]["cash_out_suspected"]["overturn_rate"] == 1.0
    assert api.client.get("/v1/accounts/A2", headers=customer).json()["status"] == "active"

    operator = api.as_role("operator")
    sweep = {"criteria": "score < 550", "reopen_criteria": "score >= 600"}
    dry = api.client.post("/v1/sweeps/dry-run", headers=operator, json=sweep).json()
    assert dry["count"] == 1
    applied = api.client.post("/v1/sweeps", headers=operator,
                              json={**sweep, "dry_run_token": dry["token"]})
    assert applied.json()["accounts_closed"] == 1
    assert api.client.post("/v1/policies", headers={**operator,
                                                    "Content-Type": "application/toml"},
                           content='version = "pg-1"\n').status_code == 201
    assert api.client.post("/v1/policies/pg-1/activate", headers=operator).json()["active"]
    assert_problem(api.client.get("/v1/audit", headers=operator), 403)
    assert len(api.audit()) >= 6

    from sqlalchemy import text

    with pytest.raises(Exception, match="append-only"):
        with api.services.store.transaction() as connection:
            connection.execute(text("DELETE FROM audit_log"))

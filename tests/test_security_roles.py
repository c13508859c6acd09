"""Credentials and roles: 401 without a valid credential, 403 for the wrong role or another
customer's account; keys hashed and revocable; tokens signed and expiring; every operator,
reviewer and admin action in the append-only audit log with its request id."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import select, text

from jiefeng.store import service_tables as st
from test_api_support import (  # noqa: F401 - `api` is a fixture
    DAY,
    HOUR,
    MINUTE,
    NOW,
    T0,
    Api,
    api,
    assert_problem,
    bearer,
    event,
    opened,
)

WINDOW = {"start": (NOW + HOUR).isoformat(), "end": (NOW + 2 * HOUR).isoformat()}

# (method, path, json body) for one representative call per protected area.
CALLS: dict[str, tuple[str, str, Any]] = {
    "ingest": ("POST", "/v1/events", {"events": [opened("R9", event_id="open-R9-x")]}),
    "authorize": ("POST", "/v1/accounts/A1/authorize", {"amount": "1.00"}),
    "account": ("GET", "/v1/accounts/A1", None),
    "explanation": ("GET", "/v1/accounts/A1/explanation", None),
    "history": ("GET", "/v1/accounts/A1/events", None),
    "appeal": ("POST", "/v1/accounts/A1/appeals", {"hold_code": "password_locked"}),
    "queue": ("GET", "/v1/appeals", None),
    "stats": ("GET", "/v1/appeals/stats", None),
    "decide": ("POST", "/v1/appeals/nope/decision", {"decision": "approve"}),
    "maintenance": ("POST", "/v1/maintenance-windows", WINDOW),
    "windows": ("GET", "/v1/maintenance-windows", None),
    "migration": ("POST", "/v1/migrations", {"account_ids": ["A1"]}),
    "manual_hold": ("POST", "/v1/accounts/A1/manual-holds", {"reason": "check"}),
    "dry_run": ("POST", "/v1/sweeps/dry-run", {"criteria": "score < 1",
                                               "reopen_criteria": "score > 2"}),
    "policies": ("GET", "/v1/policies", None),
    "audit": ("GET", "/v1/audit", None),
    "keys": ("GET", "/v1/keys", None),
    "create_key": ("POST", "/v1/keys", {"roles": ["ingest"]}),
}

ALLOWED: dict[str, set[str]] = {
    "ingest": {"ingest", "admin"},
    "authorize": {"ingest", "operator", "admin"},
    "account": {"operator", "reviewer", "admin", "customer"},
    "explanation": {"operator", "reviewer", "admin", "customer"},
    "history": {"operator", "reviewer", "admin", "customer"},
    "appeal": {"customer"},
    "queue": {"reviewer", "operator", "admin"},
    "stats": {"reviewer", "operator", "admin"},
    "decide": {"reviewer", "admin"},
    "maintenance": {"operator", "admin"},
    "windows": {"operator", "admin"},
    "migration": {"operator", "admin"},
    "manual_hold": {"operator", "admin"},
    "dry_run": {"operator", "admin"},
    "policies": {"operator", "admin"},
    "audit": {"admin"},
    "keys": {"admin"},
    "create_key": {"admin"},
}

WHO = ("ingest", "reviewer", "operator", "admin", "customer")


def _call(api: Api, name: str, headers: dict[str, str]) -> Any:
    method, path, body = CALLS[name]
    return api.client.request(method, path, json=body, headers=headers)


def _headers(api: Api, who: str) -> dict[str, str]:
    return api.customer("A1") if who == "customer" else api.as_role(who)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_each_role_is_refused_what_it_may_not_do(api: Api, name: str) -> None:
    api.ingest(opened("A1"), *[event("password_attempt", "A1", f"A1-pw{i}", T0 + i * MINUTE,
                                     ok=False) for i in range(5)])
    for who in WHO:
        response = _call(api, name, _headers(api, who))
        if who in ALLOWED[name]:
            assert response.status_code not in (401, 403), (name, who, response.text)
        else:
            assert_problem(response, 403)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_no_or_bad_credentials_are_401(api: Api, name: str) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, bearer("jf_nope"),
                    bearer("jf_0123456789abcdef_" + "A" * 43), bearer("not.a.token")):
        response = _call(api, name, headers)
        body = assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "Traceback" not in body["detail"]


def test_customer_reads_only_its_own_account(api: Api) -> None:
    api.ingest(opened("CA"), opened("CB"))
    customer_a = api.customer("CA")
    assert api.client.get("/v1/accounts/CA", headers=customer_a).status_code == 200
    for path in ("/v1/accounts/CB", "/v1/accounts/CB/explanation", "/v1/accounts/CB/events",
                 "/v1/accounts/NOSUCH"):
        assert_problem(api.client.get(path, headers=customer_a), 403)
    assert_problem(api.client.post("/v1/accounts/CB/appeals", headers=customer_a,
                                   json={"hold_code": "overdue"}), 403)
    # A customer token for an account that does not exist: 404, not someone else's data.
    assert_problem(api.client.get("/v1/accounts/GHOST", headers=api.customer("GHOST")), 404)


def test_operator_needs_reviewer_role_to_decide(api: Api) -> None:
    api.ingest(opened("OD"), event("purchase", "OD", "OD-t", T0 + MINUTE, amount="5.00",
                                   merchant_id="M", kind="transfer"))
    appeal = api.client.post("/v1/accounts/OD/appeals", headers=api.customer("OD"),
                             json={"hold_code": "cash_out_suspected"}).json()
    path = f"/v1/appeals/{appeal['appeal_id']}/decision"
    assert_problem(api.client.post(path, headers=api.as_role("operator"),
                                   json={"decision": "approve"}), 403)
    both = api.make_key(["operator", "reviewer"], "dora")
    assert api.client.post(path, headers=bearer(both),
                           json={"decision": "approve"}).status_code == 200


def test_customer_token_expires_and_forgeries_fail(api: Api) -> None:
    import jwt

    api.ingest(opened("TK"))
    token = api.services.tokens.issue("TK", api.clock(), ttl_hours=1)
    assert api.client.get("/v1/accounts/TK", headers=bearer(token)).status_code == 200
    api.clock.advance(HOUR + MINUTE)
    body = assert_problem(api.client.get("/v1/accounts/TK", headers=bearer(token)), 401)
    assert "expired" in body["detail"]

    claims = {"iss": "jiefeng", "typ": "customer", "sub": "TK",
              "iat": int(api.clock().timestamp()), "exp": int((api.clock() + DAY).timestamp())}
    forged = jwt.encode(claims, "guessed-secret-guessed-secret-guessed", algorithm="HS256")
    assert_problem(api.client.get("/v1/accounts/TK", headers=bearer(forged)), 401)
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert_problem(api.client.get("/v1/accounts/TK", headers=bearer(unsigned)), 401)


def test_token_secret_from_environment(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jiefeng.service.security import CustomerTokens, signing_secret
    from jiefeng.store.sql import SqlStore

    store = SqlStore(str(tmp_path / "s.db"))
    stored = signing_secret(store, NOW)
    assert signing_secret(store, NOW) == stored  # generated once, then reused
    monkeypatch.setenv("JIEFENG_TOKEN_SECRET", "s" * 40)
    assert signing_secret(store, NOW) == b"s" * 40
    token = CustomerTokens(b"s" * 40).issue("A", NOW)
    assert CustomerTokens(signing_secret(store, NOW)).verify(token, NOW).account_id == "A"
    monkeypatch.setenv("JIEFENG_TOKEN_SECRET", "short")
    with pytest.raises(ValueError, match="JIEFENG_TOKEN_SECRET"):
        signing_secret(store, NOW)
    store.close()


def test_keys_are_stored_hashed_shown_once_and_revocable(api: Api) -> None:
    admin = api.as_role("admin")
    created = api.client.post("/v1/keys", headers=admin,
                              json={"roles": ["reviewer"], "name": "erin"})
    assert created.status_code == 201, created.text
    new = created.json()
    key = new["key"]
    assert key.startswith("jf_") and new["roles"] == ["reviewer"]
    with api.services.store.read() as connection:
        row = connection.execute(select(st.api_keys).where(
            st.api_keys.c.key_id == new["key_id"])).one()
    assert row.secret_sha256 == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(tuple(row))
    listed = api.client.get("/v1/keys", headers=admin).json()["keys"]
    assert all("key" not in k for k in listed)
    assert key not in api.client.get("/v1/keys", headers=admin).text

    assert api.client.get("/v1/appeals", headers=bearer(key)).status_code == 200
    revoked = api.client.post(f"/v1/keys/{new['key_id']}/revoke", headers=admin,
                              json={"reason": "left the team"})
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    body = assert_problem(api.client.get("/v1/appeals", headers=bearer(key)), 401)
    assert "revoked" in body["detail"]
    assert_problem(api.client.post("/v1/keys/nope/revoke", headers=admin), 404, "key_id")
    assert_problem(api.client.post("/v1/keys", headers=admin, json={"roles": ["root"]}), 422,
                   "roles[0]")
    # A tampered key (right id, wrong secret) is refused.
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert_problem(api.client.get("/v1/keys", headers=bearer(tampered)), 401)


def test_audit_log_records_operator_reviewer_and_admin_actions(api: Api) -> None:
    api.ingest(opened("AU"), event("purchase", "AU", "AU-t", T0 + MINUTE, amount="5.00",
                                   merchant_id="M", kind="transfer"))
    operator = api.as_role("operator")
    created = api.client.post("/v1/maintenance-windows", headers={**operator,
                                                                  "X-Request-ID": "ops-42"},
                              json={**WINDOW, "window_id": "mw-a", "reason": "db upgrade"})
    assert created.status_code == 201
    appeal = api.client.post("/v1/accounts/AU/appeals", headers={
        **api.customer("AU"), "X-Request-ID": "cust-1"},
        json={"hold_code": "cash_out_suspected", "statement": "rent"}).json()
    api.client.post(f"/v1/appeals/{appeal['appeal_id']}/decision",
                    headers={**api.as_role("reviewer"), "X-Request-ID": "rev-7"},
                    json={"decision": "reject", "reason": "no documents"})
    api.client.post("/v1/keys", headers={**api.as_role("admin"), "X-Request-ID": "adm-1"},
                    json={"roles": ["ingest"], "name": "feeder"})
    api.client.get("/v1/audit", headers={**api.as_role("ingest"), "X-Request-ID": "sneaky"})

    entries = {e["request_id"]: e for e in api.audit()}
    window = entries["ops-42"]
    assert window["action"] == "maintenance.create"
    assert window["who"]["actor"] == "operator-1"
    assert window["who"]["roles"] == ["operator"]
    assert window["target"] == "mw-a"
    assert window["reason"] == "db upgrade"
    assert window["status"] == 201
    assert entries["cust-1"]["who"] == {"kind": "customer", "actor": "AU", "key_id": None,
                                        "roles": []}
    decision = entries["rev-7"]
    assert (decision["action"], decision["target"], decision["reason"]) == (
        "appeals.decide", appeal["appeal_id"], "no documents")
    assert entries["adm-1"]["action"] == "keys.create"
    denied = entries["sneaky"]
    assert (denied["action"], denied["status"], denied["who"]["actor"]) == (
        "audit.read", 403, "ingest-1")
    # Machine ingest is not audited (the event log has it).
    assert not [e for e in entries.values() if e["action"] == "events.ingest"]


def test_audit_log_is_append_only(api: Api) -> None:
    api.client.get("/v1/keys", headers=api.as_role("admin"))
    assert api.audit()
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(Exception, match="append-only"):
            with api.services.store.transaction() as connection:
                connection.execute(text(statement))
    assert api.audit()[0]["who"]["actor"] == "admin-1"

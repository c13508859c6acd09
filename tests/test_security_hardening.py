"""Security hardening (issue 9, items 1-7): each event type needs its role on every HTTP path,
`actor` is the caller, commands are audited; internal reasons stay internal; single-use sweep
tokens; the last admin key is kept; failed credentials are limited; customer tokens carry an
id and can be revoked; account data is never cached."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from jiefeng.domain.events import OPERATOR_TYPES
from jiefeng.service.credential_limits import FailureLimiter
from jiefeng.service.security import EVENT_ROLES, CustomerTokens, derive_key
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
    make_api,
    opened,
    wrong_passwords,
)

SHA = "0" * 64


def _command(type_: str, event_id: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": type_, "at": (T0 + MINUTE).isoformat(), **fields}


# One valid body of every operator command (the table test below keeps it complete).
COMMANDS: dict[str, dict[str, Any]] = {
    "maintenance_scheduled": _command(
        "maintenance_scheduled", "c-ms", window_id="w1", start=(NOW + HOUR).isoformat(),
        end=(NOW + 2 * HOUR).isoformat()),
    "maintenance_cancelled": _command("maintenance_cancelled", "c-mc", window_id="w1"),
    "migration_started": _command("migration_started", "c-mig", campaign_id="m1",
                                  account_ids=["A1"]),
    "migration_completed": _command("migration_completed", "c-migc", campaign_id="m1"),
    "policy_sweep": _command("policy_sweep", "c-sw", sweep_id="s1", criteria="score < 9999",
                             reopen_criteria="score > 9999"),
    "appeal_decided": _command("appeal_decided", "c-ad", appeal_id="ap-1", decision="approve"),
    "manual_hold_placed": _command("manual_hold_placed", "c-mh", account_id="A1",
                                   reason="internal: fraud ring 7"),
    "manual_hold_released": _command("manual_hold_released", "c-mr", account_id="A1"),
    "policy_activated": _command("policy_activated", "c-pa", version="v9", sha256=SHA),
}


def _post_events(api: Api, headers: dict[str, str], *events: dict[str, Any]) -> Any:
    return api.client.post("/v1/events", json={"events": list(events)}, headers=headers)


def _history(api: Api, account_id: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = api.client.get(f"/v1/accounts/{account_id}/events", headers=headers)
    assert response.status_code == 200, response.text
    return [item["event"] for item in response.json()["events"]]


def _status(api: Api, account_id: str) -> str:
    return api.client.get(f"/v1/accounts/{account_id}",
                          headers=api.as_role("operator")).json()["status"]


# --- 1. each event type needs its role; actor is the caller; commands are audited -------------


def test_every_event_type_has_one_role_and_commands_need_staff() -> None:
    assert set(COMMANDS) == OPERATOR_TYPES
    assert {EVENT_ROLES[t] for t in OPERATOR_TYPES - {"appeal_decided"}} == {"operator"}
    assert EVENT_ROLES["appeal_decided"] == "reviewer"
    assert EVENT_ROLES["appeal_submitted"] == "ingest"
    assert EVENT_ROLES["purchase"] == "ingest"


@pytest.mark.parametrize("type_", sorted(COMMANDS))
def test_ingest_key_cannot_send_operator_or_reviewer_commands(api: Api, type_: str) -> None:
    api.ingest(opened("A1"))
    body = assert_problem(_post_events(api, api.as_role("ingest"), opened("A2"),
                                       COMMANDS[type_]), 403, "events[1].type")
    assert "needs role" in body["detail"]
    # Nothing of the batch applied, not even the event the key may send.
    missing = api.client.get("/v1/accounts/A2", headers=api.as_role("operator"))
    assert_problem(missing, 404)
    assert _status(api, "A1") == "active"
    refusals = [e for e in api.audit() if e["action"] == "events.ingest"]
    assert [e["status"] for e in refusals] == [403]  # the refusal, not the ingest before it


def test_operator_key_cannot_send_customer_activity_nor_decide_appeals(api: Api) -> None:
    api.ingest(opened("A1"))
    operator = api.as_role("operator")
    assert_problem(_post_events(api, operator, event("purchase", "A1", "p1", T0 + MINUTE,
                                                     amount="1.00", merchant_id="M")),
                   403, "events[0].type")
    assert_problem(_post_events(api, operator, COMMANDS["appeal_decided"]), 403,
                   "events[0].type")
    reviewer = api.as_role("reviewer")
    assert_problem(_post_events(api, reviewer, COMMANDS["manual_hold_placed"]), 403,
                   "events[0].type")


def test_a_command_through_events_is_the_callers_and_audited(api: Api) -> None:
    api.ingest(opened("A1"))
    placed = _post_events(api, api.as_role("operator"), COMMANDS["manual_hold_placed"])
    assert placed.status_code == 200, placed.text
    assert placed.json()["accepted"] == 1
    assert _status(api, "A1") == "frozen"
    hold = next(e for e in _history(api, "A1", api.as_role("operator"))
                if e["type"] == "manual_hold_placed")
    assert hold["actor"] == "operator-1"  # filled in from the credential
    entry = next(e for e in api.audit() if e["action"] == "events.manual_hold_placed")
    assert entry["who"]["actor"] == "operator-1" and entry["who"]["roles"] == ["operator"]
    assert entry["target"] == "A1" and entry["reason"] == "internal: fraud ring 7"
    assert entry["status"] == 200 and entry["path"] == "/v1/events"


def test_a_body_actor_naming_someone_else_is_refused(api: Api) -> None:
    api.ingest(opened("A1"))
    operator = api.as_role("operator")
    forged = {**COMMANDS["manual_hold_placed"], "actor": "somebody.else"}
    body = assert_problem(_post_events(api, operator, forged), 403, "events[0].actor")
    assert "operator-1" in body["errors"][0]["reason"]
    assert _status(api, "A1") == "active"
    own = {**COMMANDS["manual_hold_placed"], "actor": "operator-1"}
    assert _post_events(api, operator, own).json()["accepted"] == 1


def test_admin_sends_any_event_as_itself(api: Api) -> None:
    admin = api.as_role("admin")
    response = _post_events(api, admin, opened("A1"), COMMANDS["manual_hold_placed"])
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 2
    hold = [e for e in _history(api, "A1", admin) if e["type"] == "manual_hold_placed"]
    assert hold[0]["actor"] == "admin-1"


def _appeal_on_manual_hold(api: Api, placer: str) -> str:
    api.ingest(opened("A5"))
    placed = _post_events(api, bearer(placer), {**COMMANDS["manual_hold_placed"],
                                                "account_id": "A5"})
    assert placed.status_code == 200, placed.text
    appeal = api.client.post("/v1/accounts/A5/appeals", headers=api.customer("A5"),
                             json={"hold_code": "manual_review", "statement": "sent them"})
    assert appeal.status_code == 201, appeal.text
    return appeal.json()["appeal_id"]


def test_whoever_placed_the_hold_cannot_decide_its_appeal_through_events(api: Api) -> None:
    carol = api.make_key(["operator", "reviewer"], "carol")
    appeal_id = _appeal_on_manual_hold(api, carol)
    decision = {**_command("appeal_decided", "d-1", appeal_id=appeal_id, decision="approve"),
                "at": (NOW + MINUTE).isoformat()}
    assert_problem(_post_events(api, bearer(carol), decision), 403, "events[0].appeal_id")
    # Without the account in the body too (it is looked up from the appeal).
    assert_problem(_post_events(api, bearer(carol), {**decision, "account_id": "A5"}), 403,
                   "events[0].appeal_id")
    decided = _post_events(api, api.as_role("reviewer"), decision)
    assert decided.status_code == 200, decided.text
    assert decided.json()["accepted"] == 1
    api.clock.advance(MINUTE)  # the decision is dated a minute after the service clock
    assert _status(api, "A5") == "active"
    entry = next(e for e in api.audit() if e["action"] == "events.appeal_decided")
    assert entry["who"]["actor"] == "reviewer-1" and entry["target"] == appeal_id


def test_placing_and_deciding_in_one_batch_is_refused(api: Api) -> None:
    admin = api.as_role("admin")
    api.ingest(opened("A6"))
    batch = [{**COMMANDS["manual_hold_placed"], "account_id": "A6"},
             _command("appeal_decided", "d-2", appeal_id="ap-x", decision="approve",
                      account_id="A6")]
    assert_problem(_post_events(api, admin, *batch), 403, "events[1].appeal_id")
    assert _status(api, "A6") == "active"


def test_appeal_submitted_relayed_by_ingest_is_audited(api: Api) -> None:
    api.ingest(opened("A2"), event("purchase", "A2", "A2-t1", T0 + 20 * MINUTE,
                                   amount="500.00", merchant_id="M1", kind="transfer"))
    submitted = event("appeal_submitted", "A2", "sub-1", T0 + 30 * MINUTE, appeal_id="ap-9",
                      hold_code="cash_out_suspected", statement="rent")
    assert api.ingest(submitted)["accepted"] == 1
    entry = next(e for e in api.audit() if e["action"] == "events.appeal_submitted")
    assert entry["who"]["actor"] == "ingest-1" and entry["target"] == "A2"
    # Plain customer activity is machine traffic, not audited.
    assert not any(e["action"] == "events.ingest" and e["status"] == 200 for e in api.audit())


def test_a_customer_token_cannot_post_events(api: Api) -> None:
    api.ingest(opened("A1"))
    assert_problem(_post_events(api, api.customer("A1"), opened("A1", event_id="again")), 403)


# --- 2. internal reasons never reach a customer token -------------------------------------------


def test_customer_history_leaves_out_the_manual_hold_reason(api: Api) -> None:
    api.ingest(opened("A1"))
    operator = api.as_role("operator")
    assert api.client.post("/v1/accounts/A1/manual-holds", headers=operator,
                           json={"reason": "internal: fraud ring 7"}).status_code == 201
    assert api.client.post("/v1/accounts/A1/manual-holds/release", headers=operator,
                           json={"reason": "internal: cleared by team 3"}).status_code == 200
    customer = api.client.get("/v1/accounts/A1/events", headers=api.customer("A1"))
    assert "internal:" not in customer.text and "operator-1" not in customer.text
    types = [e["type"] for e in customer.json()["events"] for e in [e["event"]]]
    assert "manual_hold_placed" in types and "manual_hold_released" in types
    staff = _history(api, "A1", operator)
    assert [e["reason"] for e in staff if e["type"].startswith("manual_hold")] == [
        "internal: fraud ring 7", "internal: cleared by team 3"]
    for view in ("explanation", ""):
        path = f"/v1/accounts/A1/{view}".rstrip("/")
        seen = api.client.get(path, headers=api.customer("A1"),
                              params={"at": (NOW + MINUTE).isoformat()})
        assert seen.status_code == 200 and "internal:" not in seen.text


# --- 3. a sweep dry-run token is single-use -----------------------------------------------------


def test_a_dry_run_token_applies_one_sweep_only(api: Api) -> None:
    api.ingest(opened("S1"), event("score_update", "S1", "S1-score", T0 + HOUR / 2, score=520))
    operator = api.as_role("operator")
    sweep = {"criteria": "score < 550", "reopen_criteria": "score >= 600"}
    token = api.client.post("/v1/sweeps/dry-run", headers=operator, json=sweep).json()["token"]
    first = api.client.post("/v1/sweeps", headers=operator,
                            json={**sweep, "sweep_id": "sw-1", "dry_run_token": token})
    assert first.status_code == 201, first.text
    second = api.client.post("/v1/sweeps", headers=operator,
                             json={**sweep, "sweep_id": "sw-2", "dry_run_token": token})
    body = assert_problem(second, 422, "dry_run_token")
    assert "already used" in body["errors"][0]["reason"]
    # A refused apply (the sweep id is taken) does not spend the token.
    fresh = api.client.post("/v1/sweeps/dry-run", headers=operator, json=sweep).json()["token"]
    taken = api.client.post("/v1/sweeps", headers=operator,
                            json={**sweep, "sweep_id": "sw-1", "dry_run_token": fresh})
    assert_problem(taken, 409, "sweep_id")
    again = api.client.post("/v1/sweeps", headers=operator,
                            json={**sweep, "sweep_id": "sw-3", "dry_run_token": fresh})
    assert again.status_code == 201, again.text


# --- 4. the last active admin key is kept -------------------------------------------------------


def _key_id(api: Api, name: str) -> str:
    return next(k["key_id"] for k in api.services.keys.list() if k["name"] == name)



def test_the_last_admin_key_cannot_be_revoked(api: Api) -> None:
    admin = api.as_role("admin")
    own = _key_id(api, "admin-1")
    refused = api.client.post(f"/v1/keys/{own}/revoke", headers=admin)
    body = assert_problem(refused, 409, "key_id")
    assert "last active admin" in body["detail"]
    assert api.client.get("/v1/keys", headers=admin).status_code == 200  # still works

    second = api.make_key(["admin", "operator"], "admin-2")
    assert api.client.post(f"/v1/keys/{own}/revoke", headers=admin).status_code == 200
    assert_problem(api.client.get("/v1/keys", headers=admin), 401)
    other = _key_id(api, "admin-2")
    assert_problem(api.client.post(f"/v1/keys/{other}/revoke", headers=bearer(second)), 409,
                   "key_id")
    # Keys without the admin role are revoked as before.
    reviewer = _key_id(api, "reviewer-1")
    assert api.client.post(f"/v1/keys/{reviewer}/revoke",
                           headers=bearer(second)).status_code == 200


def test_cli_refuses_to_revoke_the_last_admin_key(tmp_path: Path) -> None:
    from jiefeng.cli import app
    from jiefeng.service.security import ApiKeys
    from jiefeng.store.sql import SqlStore

    db = str(tmp_path / "cli.db")
    store = SqlStore(db)
    key = ApiKeys(store).create(["admin"], "root", "test", NOW)
    store.close()
    result = CliRunner().invoke(app, ["keys", "revoke", key.key_id, "--db", db])
    assert result.exit_code == 2
    assert "last active admin key" in result.output
    assert "Traceback" not in result.output


# --- 5. failed credentials are limited per client -----------------------------------------------


@pytest.fixture
def limited_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JIEFENG_AUTH_MAX_FAILURES", "3")
    monkeypatch.setenv("JIEFENG_AUTH_WINDOW_SECONDS", "60")
    yield from make_api(tmp_path)


def test_too_many_refused_credentials_get_429_with_retry_after(limited_api: Api) -> None:
    api = limited_api
    bad = bearer("jf_0123456789abcdef_" + "x" * 43)
    for _ in range(3):
        assert_problem(api.client.get("/v1/keys", headers=bad), 401)
    limited = api.client.get("/v1/keys", headers=bad)
    assert_problem(limited, 429)
    assert limited.headers["Retry-After"] == "60"
    # Even a right guess is refused now: the limit is on the client, not the key.
    assert_problem(api.client.get("/v1/keys", headers=api.as_role("admin")), 429)
    api.clock.advance(dt.timedelta(seconds=59))
    assert api.client.get("/v1/keys", headers=bad).headers["Retry-After"] == "1"
    api.clock.advance(dt.timedelta(seconds=1))
    assert api.client.get("/v1/keys", headers=api.as_role("admin")).status_code == 200
    assert_problem(api.client.get("/v1/keys", headers=bad), 401)  # a new window


def test_the_failure_table_is_bounded() -> None:
    limiter = FailureLimiter(max_failures=1, window_seconds=60, max_clients=2)
    for client in ("a", "b", "c"):
        limiter.record_failure(client, NOW)
    assert limiter.retry_after_seconds("a", NOW) is None  # forgotten: least recently failed
    assert limiter.retry_after_seconds("b", NOW) == 60
    assert limiter.retry_after_seconds("c", NOW) == 60
    assert len(limiter._failures) == 2


@pytest.mark.parametrize("value", ["0", "-1", "many", "1.5"])
def test_limit_settings_are_validated(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("JIEFENG_AUTH_MAX_FAILURES", value)
    with pytest.raises(ValueError, match="JIEFENG_AUTH_MAX_FAILURES: give a whole number"):
        FailureLimiter.from_env()
    monkeypatch.delenv("JIEFENG_AUTH_MAX_FAILURES")
    monkeypatch.setenv("JIEFENG_AUTH_WINDOW_SECONDS", value)
    with pytest.raises(ValueError, match="JIEFENG_AUTH_WINDOW_SECONDS"):
        FailureLimiter.from_env()


# --- 6. customer tokens: id, expiry, revocation; the secret from the environment ---------------


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def test_customer_tokens_carry_an_id_and_an_expiry(api: Api) -> None:
    first = api.services.tokens.issue("A1", NOW, ttl_hours=2)
    second = api.services.tokens.issue("A1", NOW, ttl_hours=2)
    claims = _claims(first)
    assert claims["exp"] == int(NOW.timestamp()) + 2 * 3600
    assert claims["jti"] and claims["jti"] != _claims(second)["jti"]


def test_a_token_without_an_id_is_refused(api: Api) -> None:
    api.ingest(opened("A1"))
    key = derive_key(_secret(api), "customer-token")
    issued = int(NOW.timestamp())
    old = jwt.encode({"iss": "jiefeng", "typ": "customer", "sub": "A1", "iat": issued,
                      "exp": issued + 3600}, key, algorithm="HS256")
    assert_problem(api.client.get("/v1/accounts/A1", headers=bearer(old)), 401)


def _secret(api: Api) -> bytes:
    from jiefeng.service.security import signing_secret

    return signing_secret(api.services.store, NOW)


def _revoke(api: Api, account_id: str, headers: dict[str, str], **body: Any) -> Any:
    return api.client.post(f"/v1/accounts/{account_id}/customer-tokens/revoke",
                           headers=headers, json=body or None)


def test_an_operator_revokes_one_customer_token(api: Api) -> None:
    api.ingest(opened("A1"))
    lost = api.services.tokens.issue("A1", NOW)
    kept = api.services.tokens.issue("A1", NOW)
    assert api.client.get("/v1/accounts/A1", headers=bearer(lost)).status_code == 200
    revoked = _revoke(api, "A1", api.as_role("operator"), jti=_claims(lost)["jti"],
                      reason="phone stolen")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["scope"] == "token" and revoked.json()["revoked_by"] == "operator-1"
    body = assert_problem(api.client.get("/v1/accounts/A1", headers=bearer(lost)), 401)
    assert "revoked" in body["detail"]
    assert api.client.get("/v1/accounts/A1", headers=bearer(kept)).status_code == 200
    # By the token itself, too.
    assert _revoke(api, "A1", api.as_role("admin"), token=kept).status_code == 200
    assert_problem(api.client.get("/v1/accounts/A1", headers=bearer(kept)), 401)
    entry = next(e for e in api.audit() if e["action"] == "tokens.revoke")
    assert entry["target"] == "A1" and entry["reason"] == "phone stolen"
    with api.services.store.read() as connection:
        kinds = [r.kind for r in connection.execute(select(st.revoked_tokens))]
    assert kinds == ["customer", "customer"]


def test_revoking_all_of_an_accounts_tokens_spares_later_ones(api: Api) -> None:
    api.ingest(opened("A1"), opened("A2"))
    before = api.services.tokens.issue("A1", NOW)
    other_account = api.services.tokens.issue("A2", NOW)
    revoked = _revoke(api, "A1", api.as_role("operator"))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["scope"] == "all_tokens_issued_so_far"
    assert_problem(api.client.get("/v1/accounts/A1", headers=bearer(before)), 401)
    assert api.client.get("/v1/accounts/A2", headers=bearer(other_account)).status_code == 200
    api.clock.advance(dt.timedelta(seconds=1))
    after = api.customer("A1")
    assert api.client.get("/v1/accounts/A1", headers=after).status_code == 200


def test_revocation_input_and_roles_are_checked(api: Api) -> None:
    api.ingest(opened("A1"))
    token = api.services.tokens.issue("A1", NOW)
    operator = api.as_role("operator")
    assert_problem(_revoke(api, "A2", operator, token=token), 422, "token")
    assert_problem(_revoke(api, "A1", operator, token="not.a.token"), 422, "token")
    assert_problem(_revoke(api, "A1", operator, jti="x"), 422, "jti")
    assert_problem(_revoke(api, "A1", operator, jti=_claims(token)["jti"], token=token), 422,
                   "jti")
    for role in ("ingest", "reviewer"):
        assert_problem(_revoke(api, "A1", api.as_role(role), token=token), 403)
    assert_problem(_revoke(api, "A1", bearer(token), token=token), 403)
    assert api.client.get("/v1/accounts/A1", headers=bearer(token)).status_code == 200


def test_with_the_environment_secret_nothing_is_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIEFENG_TOKEN_SECRET", "e" * 48)
    for service in make_api(tmp_path):
        service.ingest(opened("A1"))
        token = CustomerTokens(b"e" * 48).issue("A1", NOW)
        assert service.client.get("/v1/accounts/A1", headers=bearer(token)).status_code == 200
        with service.services.store.read() as connection:
            assert connection.execute(select(st.service_secrets)).all() == []


# --- 7. account data is not cached; the HTML page is locked down --------------------------------


def test_account_data_is_never_cached(api: Api) -> None:
    api.ingest(opened("A1"), *wrong_passwords("A1", T0 + MINUTE))
    customer = api.customer("A1")
    for path in ("/v1/accounts/A1", "/v1/accounts/A1/explanation", "/v1/accounts/A1/events",
                 "/v1/accounts/A1/explanation?format=text"):
        response = api.client.get(path, headers=customer)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-store", path
    decision = api.client.post("/v1/accounts/A1/authorize", headers=api.as_role("ingest"),
                               json={"amount": "1.00"})
    assert decision.headers["cache-control"] == "no-store"
    assert api.client.get("/v1/accounts/A1", headers=bearer("nope")).headers[
        "cache-control"] == "no-store"


def test_the_html_explanation_has_a_content_security_policy(api: Api) -> None:
    api.ingest(opened("A1"))
    for params, headers in (({"format": "html"}, {}), ({}, {"Accept": "text/html"})):
        page = api.client.get("/v1/accounts/A1/explanation", params=params,
                              headers={**api.customer("A1"), **headers})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"


def test_cli_ingest_is_trusted_and_audits_the_commands_it_applies(tmp_path: Path) -> None:
    import json

    from jiefeng.cli import app
    from jiefeng.service.audit import AuditLog
    from jiefeng.store.sql import SqlStore

    lines = [opened("A1"), {**COMMANDS["manual_hold_placed"], "actor": "ops.night"},
             event("purchase", "A1", "p1", T0 + 2 * MINUTE, amount="1.00", merchant_id="M")]
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    db = str(tmp_path / "cli.db")
    result = CliRunner().invoke(app, ["ingest", str(events_file), "--db", db])
    assert result.exit_code == 0, result.output
    store = SqlStore(db)
    entries = AuditLog(store).page()
    store.close()
    assert [(e["action"], e["who"]["kind"], e["target"]) for e in entries] == [
        ("events.manual_hold_placed", "cli", "A1")]
    assert entries[0]["who"]["actor"] and entries[0]["who"]["key_id"] is None
    assert entries[0]["path"] == "jiefeng ingest (line 2)"


@pytest.mark.parametrize(("name", "value"), [("JIEFENG_AUTH_MAX_FAILURES", "zero"),
                                             ("JIEFENG_TOKEN_SECRET", "short")])
def test_serve_refuses_a_bad_security_setting_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    from jiefeng.cli import app

    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "s.db")])
    assert result.exit_code == 2
    assert name in result.output and "Traceback" not in result.output

"""End to end through HTTP: a customer sees a freeze, time lifts it; an appeal is approved or
rejected; operator commands become events with their actor."""

from __future__ import annotations

import datetime as dt

from test_api_support import (  # noqa: F401 - `api` is a fixture
    DAY,
    HOUR,
    MINUTE,
    NOW,
    T0,
    Api,
    api,
    assert_problem,
    event,
    opened,
    wrong_passwords,
)


def _explanation(api: Api, account_id: str, headers: dict[str, str], **params: str) -> dict:
    response = api.client.get(f"/v1/accounts/{account_id}/explanation", params=params,
                              headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _codes(body: dict) -> list[str]:
    return [hold["code"] for hold in body["holds"]]


def test_password_lock_seen_by_customer_and_lifted_24h_later(api: Api) -> None:
    api.ingest(opened("A1"), *wrong_passwords("A1", T0 + 10 * MINUTE))
    customer = api.customer("A1")

    now = _explanation(api, "A1", customer)
    assert now["status"] == "frozen"
    assert _codes(now) == ["password_locked"]
    assert now["can_repay"] is True
    assert now["policy_version"]

    summary = api.client.get("/v1/accounts/A1", headers=customer).json()
    assert summary["status"] == "frozen"
    assert summary["holds"][0]["code"] == "password_locked"
    assert summary["holds"][0]["releases_at"] is not None
    assert summary["ledger"]["credit_limit"] == "10000.00"

    later = (NOW + DAY).isoformat()
    lifted = _explanation(api, "A1", customer, at=later)
    assert lifted["status"] == "active"
    assert lifted["holds"] == []
    # The same question about the earlier moment still gets the earlier answer.
    assert _explanation(api, "A1", customer, at=NOW.isoformat())["status"] == "frozen"


def test_cash_out_appeal_approved_releases_the_hold(api: Api) -> None:
    api.ingest(opened("A2"), event("purchase", "A2", "A2-t1", T0 + 20 * MINUTE,
                                   amount="500.00", merchant_id="M1", kind="transfer"))
    customer = api.customer("A2")
    before = _explanation(api, "A2", customer)
    assert "cash_out_suspected" in _codes(before)

    response = api.client.post("/v1/accounts/A2/appeals", headers=customer, json={
        "hold_code": "cash_out_suspected", "statement": "It was rent for my flat.",
        "purchase_event_ids": []})
    assert response.status_code == 201, response.text
    appeal = response.json()
    assert appeal["status"] == "pending"
    assert appeal["account_id"] == "A2"
    assert dt.datetime.fromisoformat(appeal["sla_due_at"]) == NOW + 72 * HOUR  # fast SLA

    queue = api.client.get("/v1/appeals", headers=api.as_role("reviewer")).json()["appeals"]
    assert [a["appeal_id"] for a in queue] == [appeal["appeal_id"]]
    assert queue[0]["sla_breached"] is False

    decided = api.client.post(f"/v1/appeals/{appeal['appeal_id']}/decision",
                              headers=api.as_role("reviewer"),
                              json={"decision": "approve", "reason": "rent, documented"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"
    assert decided.json()["decided_by"] == "reviewer-1"

    after = _explanation(api, "A2", customer)
    assert after["status"] == "active"
    assert "cash_out_suspected" not in _codes(after)

    stats = api.client.get("/v1/appeals/stats", headers=api.as_role("reviewer")).json()
    assert stats["by_hold_code"]["cash_out_suspected"]["overturn_rate"] == 1.0

    # The decision is an event with its actor, in the account's history.
    history = api.client.get("/v1/accounts/A2/events",
                             headers=api.as_role("operator")).json()["events"]
    decided_events = [e["event"] for e in history if e["event"]["type"] == "appeal_decided"]
    assert decided_events and decided_events[0]["actor"] == "reviewer-1"
    # Customers see their history without operator names.
    mine = api.client.get("/v1/accounts/A2/events", headers=customer).json()["events"]
    assert all("actor" not in e["event"] for e in mine)


def test_rejected_appeal_keeps_hold_and_shows_reason(api: Api) -> None:
    api.ingest(opened("A3"), event("purchase", "A3", "A3-t1", T0 + HOUR / 2, amount="100.00",
                                   merchant_id="M1", kind="cash_withdrawal"))
    customer = api.customer("A3")
    appeal = api.client.post("/v1/accounts/A3/appeals", headers=customer,
                             json={"hold_code": "cash_out_suspected"}).json()
    no_reason = api.client.post(f"/v1/appeals/{appeal['appeal_id']}/decision",
                                headers=api.as_role("reviewer"), json={"decision": "reject"})
    assert_problem(no_reason, 422, "reason")
    rejected = api.client.post(f"/v1/appeals/{appeal['appeal_id']}/decision",
                               headers=api.as_role("reviewer"),
                               json={"decision": "reject", "reason": "no receipt provided"})
    assert rejected.status_code == 200, rejected.text
    again = api.client.post(f"/v1/appeals/{appeal['appeal_id']}/decision",
                            headers=api.as_role("reviewer"),
                            json={"decision": "approve", "reason": "changed my mind"})
    assert_problem(again, 409, "appeal_id")

    body = _explanation(api, "A3", customer)
    assert body["status"] == "frozen"
    hold = next(h for h in body["holds"] if h["code"] == "cash_out_suspected")
    assert hold["appeal"]["status"] == "rejected"
    assert hold["appeal"]["reason"] == "no receipt provided"


def test_appeal_rejections_name_the_field(api: Api) -> None:
    api.ingest(opened("A4"))
    customer = api.customer("A4")
    response = api.client.post("/v1/accounts/A4/appeals", headers=customer,
                               json={"hold_code": "cash_out_suspected"})
    assert_problem(response, 422, "hold_code")
    response = api.client.post("/v1/accounts/A4/appeals", headers=customer,
                               json={"hold_code": "x", "surprise": 1})
    assert_problem(response, 422, "surprise")


def test_manual_hold_placer_cannot_decide_its_appeal(api: Api) -> None:
    api.ingest(opened("A5"))
    both = api.make_key(["operator", "reviewer"], "carol")
    placed = api.client.post("/v1/accounts/A5/manual-holds", headers={
        "Authorization": f"Bearer {both}"}, json={"reason": "documents under review"})
    assert placed.status_code == 201, placed.text
    customer = api.customer("A5")
    assert "manual_review" in _codes(_explanation(api, "A5", customer))
    appeal = api.client.post("/v1/accounts/A5/appeals", headers=customer,
                             json={"hold_code": "manual_review", "statement": "sent them"})
    assert appeal.status_code == 201, appeal.text
    appeal_id = appeal.json()["appeal_id"]

    refused = api.client.post(f"/v1/appeals/{appeal_id}/decision",
                              headers={"Authorization": f"Bearer {both}"},
                              json={"decision": "approve"})
    assert_problem(refused, 403)
    ok = api.client.post(f"/v1/appeals/{appeal_id}/decision", headers=api.as_role("reviewer"),
                         json={"decision": "approve"})
    assert ok.status_code == 200, ok.text
    assert _explanation(api, "A5", customer)["status"] == "active"


def test_manual_hold_release_and_unknown_account(api: Api) -> None:
    api.ingest(opened("A6"))
    operator = api.as_role("operator")
    assert api.client.post("/v1/accounts/A6/manual-holds", headers=operator,
                           json={"reason": "check"}).status_code == 201
    released = api.client.post("/v1/accounts/A6/manual-holds/release", headers=operator,
                               json={"reason": "checked"})
    assert released.status_code == 200, released.text
    assert api.client.get("/v1/accounts/A6", headers=operator).json()["status"] == "active"
    assert_problem(api.client.post("/v1/accounts/A6/manual-holds/release", headers=operator),
                   422, "account_id")
    assert_problem(api.client.post("/v1/accounts/NOPE/manual-holds", headers=operator,
                                   json={"reason": "x"}), 404, "account_id")


def test_maintenance_window_lifecycle(api: Api) -> None:
    api.ingest(opened("A7"))
    operator = api.as_role("operator")
    start, end = NOW + HOUR, NOW + 3 * HOUR
    created = api.client.post("/v1/maintenance-windows", headers=operator, json={
        "window_id": "mw-1", "start": start.isoformat(), "end": end.isoformat(),
        "reason": "core banking upgrade"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "scheduled"
    assert created.json()["actor"] == "operator-1"
    duplicate = api.client.post("/v1/maintenance-windows", headers=operator, json={
        "window_id": "mw-1", "start": start.isoformat(), "end": end.isoformat()})
    assert_problem(duplicate, 409, "window_id")
    backwards = api.client.post("/v1/maintenance-windows", headers=operator, json={
        "start": end.isoformat(), "end": start.isoformat()})
    assert_problem(backwards, 422, "end")

    during = (start + HOUR).isoformat()
    summary = api.client.get("/v1/accounts/A7", params={"at": during}, headers=operator).json()
    assert [h["code"] for h in summary["holds"]] == ["maintenance"]

    listed = api.client.get("/v1/maintenance-windows", headers=operator).json()["windows"]
    assert [w["window_id"] for w in listed] == ["mw-1"]
    cancelled = api.client.post("/v1/maintenance-windows/mw-1/cancel", headers=operator,
                                json={"reason": "postponed"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert_problem(api.client.post("/v1/maintenance-windows/mw-1/cancel", headers=operator),
                   409, "window_id")
    assert_problem(api.client.post("/v1/maintenance-windows/nope/cancel", headers=operator),
                   404, "window_id")
    summary = api.client.get("/v1/accounts/A7", params={"at": during}, headers=operator).json()
    assert summary["holds"] == []


def test_migration_campaign(api: Api) -> None:
    api.ingest(opened("A8"), opened("A9"))
    operator = api.as_role("operator")
    started = api.client.post("/v1/migrations", headers=operator, json={
        "campaign_id": "c1", "account_ids": ["A8", "A9"]})
    assert started.status_code == 201, started.text
    assert api.client.get("/v1/accounts/A8", headers=operator).json()["status"] == "frozen"
    partial = api.client.post("/v1/migrations/c1/complete", headers=operator,
                              json={"account_ids": ["A8"]})
    assert partial.status_code == 200, partial.text
    assert api.client.get("/v1/accounts/A8", headers=operator).json()["status"] == "active"
    assert api.client.get("/v1/accounts/A9", headers=operator).json()["status"] == "frozen"
    done = api.client.post("/v1/migrations/c1/complete", headers=operator)
    assert done.json()["status"] == "completed"
    assert api.client.get("/v1/accounts/A9", headers=operator).json()["status"] == "active"
    listed = api.client.get("/v1/migrations", headers=operator).json()["campaigns"]
    assert listed[0]["campaign_id"] == "c1"
    both = api.client.post("/v1/migrations", headers=operator,
                           json={"account_ids": ["A8"], "segment": "mass"})
    assert_problem(both, 422, "account_ids")
    assert_problem(api.client.post("/v1/migrations/zz/complete", headers=operator), 404,
                   "campaign_id")


def test_sweep_needs_a_matching_dry_run_token(api: Api) -> None:
    api.ingest(opened("S1"), opened("S2"),
               event("score_update", "S1", "S1-score", T0 + HOUR / 2, score=520))
    operator = api.as_role("operator")
    sweep = {"criteria": "score < 550", "reopen_criteria": "score >= 600"}

    dry = api.client.post("/v1/sweeps/dry-run", headers=operator, json=sweep)
    assert dry.status_code == 200, dry.text
    result = dry.json()
    assert result["count"] == 1
    assert result["sample"] == [{"account_id": "S1", "features": {"score": 520}}]
    assert sum(result["by_status"].values()) == 1

    missing = api.client.post("/v1/sweeps", headers=operator, json=sweep)
    assert_problem(missing, 422, "dry_run_token")
    forged = api.client.post("/v1/sweeps", headers=operator,
                             json={**sweep, "dry_run_token": "abc.def"})
    assert_problem(forged, 422, "dry_run_token")
    other = api.client.post("/v1/sweeps/dry-run", headers=operator,
                            json={"criteria": "score < 500", "reopen_criteria": "score >= 600"})
    mismatched = api.client.post("/v1/sweeps", headers=operator,
                                 json={**sweep, "dry_run_token": other.json()["token"]})
    assert_problem(mismatched, 422, "dry_run_token")

    api.clock.advance(2 * HOUR)
    expired = api.client.post("/v1/sweeps", headers=operator,
                              json={**sweep, "dry_run_token": result["token"]})
    assert_problem(expired, 422, "dry_run_token")

    fresh = api.client.post("/v1/sweeps/dry-run", headers=operator, json=sweep).json()
    applied = api.client.post("/v1/sweeps", headers=operator,
                              json={**sweep, "sweep_id": "sw-1", "dry_run_token": fresh["token"]})
    assert applied.status_code == 201, applied.text
    assert applied.json()["accounts_closed"] == 1
    assert api.client.get("/v1/accounts/S1", headers=operator).json()["status"] == "closed"
    assert api.client.get("/v1/accounts/S2", headers=operator).json()["status"] == "active"
    again = api.client.post("/v1/sweeps", headers=operator,
                            json={**sweep, "sweep_id": "sw-1", "dry_run_token": fresh["token"]})
    assert_problem(again, 409, "sweep_id")


def test_sweep_criteria_errors_name_the_field(api: Api) -> None:
    operator = api.as_role("operator")
    response = api.client.post("/v1/sweeps/dry-run", headers=operator, json={
        "criteria": "score < 550; DROP TABLE events", "reopen_criteria": "score >= 600"})
    assert_problem(response, 422, "criteria")
    response = api.client.post("/v1/sweeps/dry-run", headers=operator, json={
        "criteria": "score < 550", "reopen_criteria": "nosuchfeature > 1"})
    assert_problem(response, 422, "reopen_criteria")


POLICY = """
version = "tight-2026.12"
[password]
max_consecutive_failures = 3
lock_hours = 12
"""


def test_policy_versions_upload_activate_and_decide(api: Api) -> None:
    operator = api.as_role("operator")
    toml = {"Content-Type": "application/toml"}
    bad = api.client.post("/v1/policies", headers={**operator, **toml},
                          content=b'version = "x"\n[password]\nlock_hours = 0\n')
    assert_problem(bad, 422, "password.lock_hours")
    checked = api.client.post("/v1/policies/validate", headers=operator,
                              json={"toml": "version = 3"})
    assert checked.status_code == 200
    assert checked.json()["valid"] is False

    uploaded = api.client.post("/v1/policies", headers={**operator, **toml}, content=POLICY)
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["active"] is False
    assert api.client.post("/v1/policies", headers=operator,
                           json={"toml": POLICY}).status_code == 200  # same text: harmless
    changed = POLICY.replace("lock_hours = 12", "lock_hours = 6")
    assert_problem(api.client.post("/v1/policies", headers={**operator, **toml},
                                   content=changed), 409, "version")
    assert_problem(api.client.post("/v1/policies/nope/activate", headers=operator), 404,
                   "version")

    activated = api.client.post("/v1/policies/tight-2026.12/activate", headers=operator)
    assert activated.status_code == 200, activated.text
    listed = api.client.get("/v1/policies", headers=operator).json()
    assert listed["active_version"] == "tight-2026.12"

    # Before the activation the built-in policy decided: 3 wrong passwords did not lock.
    api.ingest(opened("P1"), *wrong_passwords("P1", T0 + HOUR / 4, count=3))
    before = api.client.post("/v1/accounts/P1/authorize", headers=api.as_role("ingest"),
                             json={"amount": "10.00", "at": (T0 + HOUR / 2).isoformat()}).json()
    assert before["policy_version"] != "tight-2026.12" and before["codes"] == []
    # From the activation on, the tight policy decides: 3 lock.
    activated_at = api.clock()
    api.ingest(*[event("password_attempt", "P1", f"P1-late-pw-{i}", activated_at + i * MINUTE,
                       ok=False) for i in range(1, 4)])
    api.clock.advance(10 * MINUTE)
    decision = api.client.post("/v1/accounts/P1/authorize", headers=api.as_role("ingest"),
                               json={"amount": "10.00"}).json()
    assert decision["policy_version"] == "tight-2026.12"
    assert decision["codes"] == ["password_locked"]
    # The activation is an event in the log: a replay reproduces the same decisions.
    assert api.services.engine().replay(write=False).mismatched == []
    explanation = _explanation(api, "P1", api.customer("P1"))
    assert explanation["policy_version"] == "tight-2026.12"


def test_explanation_renders_text_and_html(api: Api) -> None:
    api.ingest(opened("R1"), *wrong_passwords("R1", T0 + HOUR / 4))
    customer = api.customer("R1")
    text = api.client.get("/v1/accounts/R1/explanation", params={"format": "text",
                                                                 "lang": "en"},
                          headers=customer)
    assert text.status_code == 200, text.text
    assert text.headers["content-type"].startswith("text/plain")
    html = api.client.get("/v1/accounts/R1/explanation",
                          headers={**customer, "Accept": "text/html"})
    assert html.status_code == 200, html.text
    assert html.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert html.headers["x-content-type-options"] == "nosniff"
    bad_lang = api.client.get("/v1/accounts/R1/explanation", params={"lang": "fr"},
                              headers=customer)
    assert_problem(bad_lang, 422, "lang")

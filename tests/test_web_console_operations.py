"""The console's operations (operator role) over HTTP: maintenance windows, migrations,
sweeps with their dry run, policy versions. Each makes the API's event with the signed-in
key as actor, is audited, and refuses forged forms and other roles."""

from __future__ import annotations

import re

from jiefeng.policy.schema import default_policy_text
from test_api_support import MINUTE, NOW, T0, Api, api, event, opened  # noqa: F401  (fixture)
from test_web_console_http import _csrf, _sign_in


def _ops_page(api: Api) -> str:
    page = api.client.get("/console/operations?lang=en")
    assert page.status_code == 200, page.text
    return page.text


def test_only_operators_reach_operations(api: Api) -> None:
    for role, status in (("reviewer", 403), ("ingest", 403), ("operator", 200), ("admin", 200)):
        _sign_in(api, role)
        assert api.client.get("/console/operations?lang=en").status_code == status, role
    _sign_in(api, "operator")
    csrf = _csrf(_ops_page(api))
    _sign_in(api, "reviewer")
    refused = api.client.post("/console/maintenance?lang=en", data={
        "start": (NOW + 60 * MINUTE).isoformat(), "end": (NOW + 120 * MINUTE).isoformat(),
        "csrf": csrf})
    assert refused.status_code == 403
    windows = api.client.get("/v1/maintenance-windows", headers=api.as_role("operator"))
    assert windows.json()["windows"] == []


def test_an_operator_schedules_and_cancels_a_maintenance_window(api: Api) -> None:
    _sign_in(api, "operator")
    html = _ops_page(api)
    bad = api.client.post("/console/maintenance?lang=en", data={
        "start": "tomorrow", "end": (NOW + 120 * MINUTE).isoformat(), "csrf": _csrf(html)})
    assert bad.status_code == 422
    # The reason stands next to the field it is about, and what was typed is kept.
    assert re.search(r'id="error-start">give an RFC 3339 time', bad.text)
    assert 'value="tomorrow"' in bad.text
    done = api.client.post("/console/maintenance?lang=en", data={
        "start": (NOW + 60 * MINUTE).isoformat(), "end": (NOW + 120 * MINUTE).isoformat(),
        "reason": "database upgrade", "csrf": _csrf(html)}, follow_redirects=False)
    assert done.status_code == 303
    windows = api.client.get("/v1/maintenance-windows",
                             headers=api.as_role("operator")).json()["windows"]
    assert [(w["status"], w["actor"]) for w in windows] == [("scheduled", "operator-1")]
    window_id = windows[0]["window_id"]
    assert f'data-window="{window_id}"' in _ops_page(api)
    forged = api.client.post(f"/console/maintenance/{window_id}/cancel?lang=en",
                             data={"csrf": "made-up"})
    assert forged.status_code == 403
    cancelled = api.client.post(f"/console/maintenance/{window_id}/cancel?lang=en",
                                data={"csrf": _csrf(html)}, follow_redirects=False)
    assert cancelled.status_code == 303
    windows = api.client.get("/v1/maintenance-windows",
                             headers=api.as_role("operator")).json()["windows"]
    assert windows[0]["status"] == "cancelled"
    entries = [(e["action"], e["reason"], e["status"]) for e in api.audit()
               if e["action"].startswith("console.maintenance")]
    assert ("console.maintenance.schedule", "database upgrade", 303) in entries
    assert ("console.maintenance.cancel", None, 403) in entries


def test_an_operator_starts_and_completes_a_migration(api: Api) -> None:
    api.ingest(opened("M1"))
    _sign_in(api, "operator")
    html = _ops_page(api)
    empty = api.client.post("/console/migrations?lang=en", data={"csrf": _csrf(html)})
    assert empty.status_code == 422
    assert re.search(r'id="error-segment">name a segment or list the accounts', empty.text)
    assert empty.text.count('id="error-segment"') == 1  # under the migration form only
    api.client.post("/console/migrations?lang=en", data={"account_ids": "M1",
                                                         "csrf": _csrf(html)})
    campaigns = api.client.get("/v1/migrations", headers=api.as_role("operator")).json()
    campaign = campaigns["campaigns"][0]
    assert campaign["status"] == "running" and campaign["account_count"] == 1
    summary = api.client.get("/v1/accounts/M1", headers=api.as_role("operator")).json()
    assert [h["code"] for h in summary["holds"]] == ["migration"]
    api.client.post(f"/console/migrations/{campaign['campaign_id']}/complete?lang=en",
                    data={"csrf": _csrf(html)})
    summary = api.client.get("/v1/accounts/M1", headers=api.as_role("operator")).json()
    assert summary["holds"] == []


def test_a_sweep_needs_its_dry_run_and_the_token_works_once(api: Api) -> None:
    api.ingest(opened("S1"), opened("S2"),
               event("score_update", "S1", "S1-s", T0 + MINUTE, score=500))
    _sign_in(api, "operator")
    html = _ops_page(api)
    broken = api.client.post("/console/sweeps/dry-run?lang=en", data={
        "criteria": "scor < 550", "reopen_criteria": "score >= 700", "csrf": _csrf(html)})
    assert broken.status_code == 422 and 'id="error-criteria"' in broken.text
    assert "scor &lt; 550</textarea>" in broken.text
    dry = api.client.post("/console/sweeps/dry-run?lang=en", data={
        "criteria": "score < 550", "reopen_criteria": "score >= 700", "csrf": _csrf(html)})
    assert dry.status_code == 200
    assert re.search(r'id="dry-run-count">1<', dry.text)
    token = re.search(r'name="dry_run_token" value="([^"]+)"', dry.text).group(1)
    form = {"criteria": "score < 550", "reopen_criteria": "score >= 700",
            "dry_run_token": token, "csrf": _csrf(html)}
    applied = api.client.post("/console/sweeps?lang=en", data=form)
    assert applied.status_code == 200 and "1 accounts closed" in applied.text
    again = api.client.post("/console/sweeps?lang=en", data=form)
    assert again.status_code == 422
    assert re.search(r'id="operation-error">dry_run_token: ', again.text)  # no such input
    summary = api.client.get("/v1/accounts/S1", headers=api.as_role("operator")).json()
    assert summary["status"] == "closed"
    assert api.client.get("/v1/accounts/S2",
                          headers=api.as_role("operator")).json()["status"] == "active"


def test_policy_versions_are_validated_compared_and_activated(api: Api) -> None:
    _sign_in(api, "operator")
    html = _ops_page(api)
    invalid = api.client.post("/console/policies?lang=en", data={
        "toml": 'version = "x"\n[billing]\nminimum_payment_pct = 0\n', "csrf": _csrf(html)})
    assert invalid.status_code == 422 and "minimum_payment_pct" in invalid.text
    text = default_policy_text().replace('version = "', 'version = "console-', 1).replace(
        "grace_days = 0", "grace_days = 3")
    assert "grace_days = 3" in text
    uploaded = api.client.post("/console/policies?lang=en", data={"toml": text,
                                                                  "csrf": _csrf(html)})
    assert uploaded.status_code == 200
    assert 'data-setting="billing.grace_days"' in uploaded.text
    assert 'data-setting="version"' in uploaded.text
    version = re.search(r'data-version="([^"]+)"', uploaded.text).group(1)
    assert version.startswith("console-")
    activated = api.client.post(f"/console/policies/{version}/activate?lang=en",
                                data={"reason": "grace days", "csrf": _csrf(html)},
                                follow_redirects=False)
    assert activated.status_code == 303
    listing = api.client.get("/v1/policies", headers=api.as_role("operator")).json()
    assert listing["active_version"] == version
    assert re.search(r'id="active-version">' + re.escape(version), _ops_page(api))
    entries = [(e["action"], e["target"], e["who"]["actor"]) for e in api.audit()
               if e["action"] == "console.policies.activate"]
    assert entries == [("console.policies.activate", version, "operator-1")]

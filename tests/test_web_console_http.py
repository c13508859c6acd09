"""The operator console over HTTP (no browser): sign-in, roles enforced by the server for
every page and action, CSRF, audit with the signed-in key, and what each page shows."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from test_api_support import MINUTE, T0, Api, api, event, opened  # noqa: F401  (fixture)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _sign_in(api: Api, role: str) -> None:
    api.client.cookies.clear()
    page = api.client.get("/console/sign-in?lang=en")
    response = api.client.post("/console/sign-in?lang=en", data={
        "key": api.keys[role], "csrf": _csrf(page.text)}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console?lang=en"
    cookie = next(h for h in response.headers.get_list("set-cookie")
                  if h.startswith("jiefeng_console="))
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert "path=/console" in cookie.lower()


def _frozen_with_appeal(api: Api) -> str:
    """A2 frozen for cash-out, with the customer's appeal pending; returns its id."""
    api.ingest(opened("A2"), event("purchase", "A2", "A2-t1", T0 + 20 * MINUTE,
                                   amount="500.00", merchant_id="M1", kind="transfer"),
               opened("A3"))
    response = api.client.post("/v1/accounts/A2/appeals", headers=api.customer("A2"), json={
        "hold_code": "cash_out_suspected", "statement": "It was rent for my flat.",
        "purchase_event_ids": ["A2-t1"]})
    assert response.status_code == 201, response.text
    return response.json()["appeal_id"]


def test_every_console_page_needs_a_signed_in_key(api: Api) -> None:
    appeal_id = _frozen_with_appeal(api)
    for path in ("/console", "/console/accounts/A2", "/console/appeals",
                 f"/console/appeals/{appeal_id}", "/console/audit"):
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/console/sign-in")
    # A forged cookie is no key either.
    api.client.cookies.set("jiefeng_console", "jf_forged", path="/console")
    assert api.client.get("/console", follow_redirects=False).status_code == 303


def test_sign_in_refuses_bad_keys_customer_tokens_and_missing_csrf(api: Api) -> None:
    api.ingest(opened("A3"))
    page = api.client.get("/console/sign-in?lang=en")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store"
    csrf = _csrf(page.text)
    wrong = api.client.post("/console/sign-in?lang=en", data={"key": "jf_nope", "csrf": csrf})
    assert wrong.status_code == 401 and "not accepted" in wrong.text
    token = api.services.tokens.issue("A3", api.clock(), 1)
    customer = api.client.post("/console/sign-in?lang=en", data={"key": token, "csrf": csrf})
    assert customer.status_code == 401 and "customer token" in customer.text
    forged = api.client.post("/console/sign-in?lang=en",
                             data={"key": api.keys["admin"], "csrf": "made-up"})
    assert forged.status_code == 403
    assert "jiefeng_console=" not in forged.headers.get("set-cookie", "")


def test_the_server_enforces_roles_on_every_page(api: Api) -> None:
    appeal_id = _frozen_with_appeal(api)
    allowed = {
        "ingest": set(),
        "operator": {"/console", "/console/accounts/A2", "/console/appeals",
                     f"/console/appeals/{appeal_id}"},
        "reviewer": {"/console", "/console/accounts/A2", "/console/appeals",
                     f"/console/appeals/{appeal_id}"},
        "admin": {"/console", "/console/accounts/A2", "/console/appeals",
                  f"/console/appeals/{appeal_id}", "/console/audit"},
    }
    every = set().union(*allowed.values())
    for role, pages in allowed.items():
        _sign_in(api, role)
        for path in sorted(every):
            status = api.client.get(path + "?lang=en").status_code
            assert status == (200 if path in pages else 403), (role, path, status)
    # Hidden where the role lacks it, too (the server refuses it anyway).
    _sign_in(api, "operator")
    assert 'id="nav-audit"' not in api.client.get("/console?lang=en").text


def test_a_reviewer_decides_an_appeal_and_the_decision_is_audited(api: Api) -> None:
    appeal_id = _frozen_with_appeal(api)
    _sign_in(api, "reviewer")
    page = api.client.get(f"/console/appeals/{appeal_id}?lang=en")
    assert page.status_code == 200
    assert "It was rent for my flat." in page.text and "A2-t1" in page.text  # disputed
    assert 'id="decision-form"' in page.text
    # A rejection needs a reason: refused, nothing applied.
    refused = api.client.post(f"/console/appeals/{appeal_id}/decision?lang=en", data={
        "decision": "reject", "reason": " ", "csrf": _csrf(page.text)})
    assert refused.status_code == 422
    assert re.search(r'id="error-reason">say why: the customer sees this reason', refused.text)
    assert "Pending" in refused.text
    decided = api.client.post(f"/console/appeals/{appeal_id}/decision?lang=en", data={
        "decision": "approve", "reason": "rent, documented", "csrf": _csrf(page.text)},
        follow_redirects=False)
    assert decided.status_code == 303
    after = api.client.get(f"/console/appeals/{appeal_id}?lang=en").text
    assert 'id="appeal-status">Approved' in after and "reviewer-1" in after
    explanation = api.client.get("/v1/accounts/A2/explanation",
                                 headers=api.as_role("operator")).json()
    assert explanation["status"] == "active"
    entries = [e for e in api.audit() if e["action"] == "console.appeals.decide"]
    assert [(e["who"]["actor"], e["target"], e["reason"], e["status"]) for e in entries] == [
        ("reviewer-1", appeal_id, None, 422), ("reviewer-1", appeal_id, "rent, documented", 303)]
    # Deciding twice is a conflict, not a second event.
    again = api.client.post(f"/console/appeals/{appeal_id}/decision?lang=en", data={
        "decision": "reject", "reason": "no", "csrf": _csrf(page.text)})
    assert again.status_code == 409


def test_an_operator_cannot_decide_and_a_forged_form_applies_nothing(api: Api) -> None:
    appeal_id = _frozen_with_appeal(api)
    _sign_in(api, "operator")
    page = api.client.get(f"/console/appeals/{appeal_id}?lang=en")
    assert 'id="decision-form"' not in page.text  # shown only to reviewers ...
    response = api.client.post(f"/console/appeals/{appeal_id}/decision?lang=en", data={
        "decision": "approve", "reason": "x", "csrf": _csrf(page.text)})
    assert response.status_code == 403  # ... and refused by the server
    _sign_in(api, "reviewer")
    forged = api.client.post(f"/console/appeals/{appeal_id}/decision?lang=en", data={
        "decision": "approve", "reason": "x", "csrf": "made-up"})
    assert forged.status_code == 403
    queue = api.client.get("/v1/appeals", headers=api.as_role("reviewer")).json()["appeals"]
    assert [a["status"] for a in queue] == ["pending"]
    refusals = [e for e in api.audit() if e["action"] == "console.appeals.decide"]
    assert {(e["who"]["actor"], e["status"]) for e in refusals} == {
        ("operator-1", 403), ("reviewer-1", 403)}


def test_overview_counts_statuses_holds_and_appeals(api: Api) -> None:
    _frozen_with_appeal(api)
    api.clock.advance(dt.timedelta(hours=80))  # past the 72-hour SLA of a cash-out appeal
    _sign_in(api, "operator")
    html = api.client.get("/console?lang=en").text
    assert re.search(r'data-status="frozen">1<', html)
    assert re.search(r'data-status="active">1<', html)
    assert re.search(r'data-code="cash_out_suspected">1<', html)
    assert re.search(r'id="appeals-waiting">1<', html)
    assert re.search(r'id="sla-breached"[^>]*>1<', html)
    chart = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html,
                      re.S).group(1)
    assert '"cash_out_suspected": [' in chart.replace('":[', '": [')
    assert "<script>" not in html  # no inline script: the CSP forbids it


def test_account_page_shows_holds_timeline_ledger_events_and_the_customer_view(
        api: Api) -> None:
    _frozen_with_appeal(api)
    _sign_in(api, "operator")
    html = api.client.get("/console/accounts/A2?lang=en").text
    assert 'data-code="cash_out_suspected"' in html
    assert 'data-kind="hold_placed"' in html and "A2-t1" in html  # placed by that event
    assert "appeal_submitted" in html  # the history
    assert 'id="customer-view"' in html and "jf-explanation" in html
    # Each active hold shows its decision trace; the timeline names the rule that placed it.
    trace = re.search(r'<td class="jf-trace">(.*?)</td>', html, re.S).group(1)
    assert "cash_out.kind_not_allowed" in trace and "cash_out.quiet_days" in trace
    assert "Decision trace" in html
    assert html.count("<code>cash_out.kind_not_allowed</code>") >= 2
    missing = api.client.get("/console/accounts/" + "Z" * 500 + "?lang=en")
    assert missing.status_code == 404 and "Z" * 65 not in missing.text


def test_audit_page_filters_by_actor_action_and_time(api: Api) -> None:
    _frozen_with_appeal(api)
    _sign_in(api, "operator")
    api.client.get("/console/accounts/A2?lang=en")
    _sign_in(api, "admin")
    html = api.client.get("/console/audit?lang=en&actor=operator-1").text
    actions = set(re.findall(r'data-action="([^"]+)"', html))
    assert "console.account" in actions and "appeals.submit" not in actions
    only = api.client.get("/console/audit?lang=en&action=console.account").text
    assert set(re.findall(r'data-action="([^"]+)"', only)) == {"console.account"}
    later = (api.clock() + dt.timedelta(days=1)).isoformat()
    assert 'id="audit-entries"' not in api.client.get(
        f"/console/audit?lang=en&since={later.replace('+', '%2B')}").text
    bad = api.client.get("/console/audit?lang=en&since=yesterday")
    assert bad.status_code == 422


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_console_pages_come_in_both_languages(api: Api, lang: str) -> None:
    _sign_in(api, "admin")
    html = api.client.get(f"/console?lang={lang}").text
    assert f'<html lang="{lang}">' in html
    assert ("资产组合总览" if lang == "zh-CN" else "Portfolio overview") in html

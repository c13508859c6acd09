"""The customer page over HTTP (no browser): the appeal form, progress and countdowns, and
the rights block from the policy's [disclosures]."""

from __future__ import annotations

import re

from jiefeng.policy.schema import default_policy
from jiefeng.web import customer_view, pages
from test_api_support import MINUTE, T0, Api, api, event, opened  # noqa: F401  (fixture)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def _signed_in(api: Api, account_id: str) -> str:
    api.client.cookies.clear()
    token = api.services.tokens.issue(account_id, api.clock(), 24)
    page = api.client.get(f"/me/sign-in?token={token}&lang=en")
    assert page.status_code == 200 and "/me/sign-in" not in str(page.url), page.text
    return page.text


def _cash_out(api: Api) -> None:
    api.ingest(opened("A2"), event("purchase", "A2", "A2-t1", T0 + 20 * MINUTE,
                                   amount="500.00", merchant_id="M1", kind="transfer"),
               event("purchase", "A2", "A2-p0", T0 + 10 * MINUTE, amount="32.10",
                     merchant_id="M7"))


def test_the_customer_appeals_from_the_page_and_it_is_audited(api: Api) -> None:
    _cash_out(api)
    html = _signed_in(api, "A2")
    assert 'id="appeal-form"' in html
    assert '<option value="cash_out_suspected"' in html
    assert 'value="A2-p0"' in html  # an approved purchase can be named as disputed
    response = api.client.post("/me/appeals?lang=en", data={
        "hold_code": "cash_out_suspected", "statement": "It was rent for my flat.",
        "purchase_event_ids": ["A2-p0"], "csrf": _csrf(html)}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/me?lang=en&sent=1"
    after = api.client.get("/me?lang=en&sent=1").text
    assert 'id="notice"' in after
    assert '<option value="cash_out_suspected"' not in after  # one pending appeal per hold
    queue = api.client.get("/v1/appeals", headers=api.as_role("reviewer")).json()["appeals"]
    assert [(a["account_id"], a["hold_code"], a["statement"]) for a in queue] == [
        ("A2", "cash_out_suspected", "It was rent for my flat.")]
    entries = [e for e in api.audit() if e["action"] == "appeals.submit"]
    assert [(e["who"]["kind"], e["who"]["actor"], e["status"]) for e in entries] == [
        ("customer", "A2", 303)]


def test_an_appeal_without_the_forms_token_or_for_no_active_hold_applies_nothing(
        api: Api) -> None:
    _cash_out(api)
    html = _signed_in(api, "A2")
    forged = api.client.post("/me/appeals?lang=en", data={
        "hold_code": "cash_out_suspected", "statement": "x", "csrf": "made-up"})
    assert forged.status_code == 403 and 'id="page-error"' in forged.text
    wrong = api.client.post("/me/appeals?lang=en", data={
        "hold_code": "dormant", "statement": "x", "csrf": _csrf(html)})
    assert wrong.status_code == 422 and 'id="error-hold_code"' in wrong.text
    assert "x</textarea>" in wrong.text  # what was typed is kept
    unknown = api.client.post("/me/appeals?lang=en", data={
        "hold_code": "cash_out_suspected", "statement": "x",
        "purchase_event_ids": ["not-mine"], "csrf": _csrf(html)})
    assert unknown.status_code == 422 and 'id="error-purchase_event_ids"' in unknown.text
    queue = api.client.get("/v1/appeals", headers=api.as_role("reviewer")).json()["appeals"]
    assert queue == []
    # Signed out: no appeal at all, whatever the form says.
    api.client.cookies.clear()
    anonymous = api.client.post("/me/appeals?lang=en", data={
        "hold_code": "cash_out_suspected", "statement": "x", "csrf": _csrf(html)},
        follow_redirects=False)
    assert anonymous.status_code == 303 and "/me/sign-in" in anonymous.headers["location"]


def test_a_hold_that_lifts_by_itself_has_a_countdown(api: Api) -> None:
    _cash_out(api)
    html = _signed_in(api, "A2")
    countdown = re.search(r'<li data-code="cash_out_suspected">.*?</li>', html, re.S).group(0)
    assert "data-countdown" in countdown and 'datetime="20' in countdown


def test_the_rights_block_comes_from_the_policy() -> None:
    policy = default_policy()
    en = customer_view.rights(policy, pages.messages("en"))
    assert "your card issuer" in en[0] and policy.support.phone in en[0]
    assert "within 20 days" in en[1]
    custom = policy.model_copy(update={"disclosures": policy.disclosures.model_copy(update={
        "creditor_name": "Example Consumer Finance Co.", "bureau_dispute_days": 15,
        "human_review_contact": "review@issuer.example"})})
    zh = customer_view.rights(custom, pages.messages("zh-CN"))
    assert "Example Consumer Finance Co." in zh[0] and "15 日" in zh[1]
    assert "review@issuer.example" in zh[2]


def test_progress_bars_read_the_release_conditions() -> None:
    m = pages.messages("en")
    explanation = {"holds": [
        {"code": "overdue", "releases_at": None, "release": [
            {"condition": "repay_past_due", "progress": {"repaid": "320.00", "of": "1020.00"}}]},
        {"code": "dormant", "releases_at": None, "release": [
            {"condition": "recent_activity",
             "progress": {"done": 2, "required": 5, "window_days": 30}}]},
        {"code": "score_below_threshold", "releases_at": None, "release": [
            {"condition": "score_at_least", "required": 600, "current": 580}]},
        {"code": "password_locked", "releases_at": "2026-02-13T08:04:00+08:00",
         "release": [{"condition": "lock_expires"}]}]}
    widgets = {w["code"]: w for w in customer_view.hold_widgets(explanation, "en", m)}
    assert widgets["overdue"]["progress"] == [
        {"value": 320.0, "max": 1020.0, "label": "Repaid ¥320.00 of ¥1020.00 past-due minimum"}]
    assert widgets["dormant"]["progress"][0]["label"] == "2 of 5 done"
    assert widgets["score_below_threshold"]["progress"][0]["value"] == 580
    assert widgets["password_locked"]["progress"] == []
    assert widgets["password_locked"]["releases_at"] == "2026-02-13T08:04:00+08:00"


def test_a_closed_line_is_titled_closed(api: Api) -> None:
    api.ingest(opened("C1"), event("score_update", "C1", "C1-s", T0 + MINUTE, score=500))
    sweep = api.client.post("/v1/sweeps/dry-run", headers=api.as_role("operator"),
                            json={"criteria": "score < 550", "reopen_criteria": "score >= 700"})
    applied = api.client.post("/v1/sweeps", headers=api.as_role("operator"), json={
        "criteria": "score < 550", "reopen_criteria": "score >= 700",
        "dry_run_token": sweep.json()["token"]})
    assert applied.status_code == 201, applied.text
    html = _signed_in(api, "C1")
    assert "<title>Why is my credit line closed?</title>" in html
    _cash_out(api)
    assert "<title>Why is my credit line frozen?</title>" in _signed_in(api, "A2")

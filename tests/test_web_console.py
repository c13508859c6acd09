"""The operator console in a real browser (headless Chromium via Playwright, the system's
package): sign in with a reviewer key, see the overview with its charts, open the oldest
appeal, approve it after the confirmation. Screenshots in zh-CN and en at 375 px and 1280 px
go to test-artifacts/."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest

from test_api_support import event, opened
from test_web_customer import (  # noqa: F401  (fixtures)
    NOW,
    T0,
    _needs_browser,
    _page,
    _shot,
    browser,
    service,
)


@pytest.fixture(scope="module")
def console(service):  # noqa: F811
    """Keys for each role, and an account frozen for cash-out whose customer appealed."""
    keys = {role: service.services.keys.create([role], f"{role}-web", "test",
                                               service.clock()).key
            for role in ("reviewer", "admin")}
    service.ingest(opened("CASH"), event("purchase", "CASH", "CASH-t1",
                                         T0 + dt.timedelta(minutes=20), amount="500.00",
                                         merchant_id="M1", kind="transfer"))
    response = httpx.post(f"{service.base}/v1/accounts/CASH/appeals",
                          headers={"Authorization": f"Bearer {service.token('CASH')}"},
                          json={"hold_code": "cash_out_suspected",
                                "statement": "Rent for my flat.",
                                "purchase_event_ids": ["CASH-t1"]})
    assert response.status_code == 201, response.text
    return {"keys": keys, "appeal_id": response.json()["appeal_id"]}


def _sign_in(page, service, key: str, lang: str) -> None:  # noqa: F811
    page.goto(f"{service.base}/console/sign-in?lang={lang}")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/console?lang={lang}")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("width", [375, 1280])
def test_console_pages_in_both_languages_and_sizes(service, browser, console, lang,  # noqa: F811
                                                   width):
    context, page, problems = _page(browser, width, lang)
    _sign_in(page, service, console["keys"]["admin"], lang)
    page.wait_for_function("window.jiefengCharts && window.jiefengCharts.length === 2")
    assert page.locator("#appeals-waiting").inner_text() in ("0", "1")
    wide = page.evaluate("""w => [...document.querySelectorAll('body *')]
        .filter(e => e.getBoundingClientRect().right > w)
        .map(e => e.tagName + '.' + e.className + '#' + e.id + ':' +
             Math.round(e.getBoundingClientRect().right))""", width)
    assert page.evaluate("document.documentElement.scrollWidth") <= width, wide
    _shot(page, f"console-overview-{lang}-{width}")
    for path, name in (("/console/accounts/CASH", "account"), ("/console/appeals", "appeals"),
                       ("/console/audit", "audit")):
        page.goto(f"{service.base}{path}?lang={lang}")
        assert page.locator("html").get_attribute("lang") == lang
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
        _shot(page, f"console-{name}-{lang}-{width}")
    assert problems == [], problems  # no CSP violation, no script error
    context.close()


def test_a_reviewer_approves_the_oldest_appeal_after_confirming(service, browser,  # noqa: F811
                                                              console):
    context, page, problems = _page(browser, 1280, "en")
    _sign_in(page, service, console["keys"]["reviewer"], "en")
    assert page.locator("#nav-audit").count() == 0  # not an admin
    page.click("#nav-appeals")
    page.click(f'tr[data-appeal="{console["appeal_id"]}"] a >> nth=0')
    assert "Rent for my flat." in page.locator("#statement").inner_text()
    assert "CASH-t1" in page.locator("#disputed").inner_text()
    page.check('input[value="approve"]')
    page.fill("#reason", "rent, documented")
    asked: list[str] = []

    def dismiss_first_then_accept(dialog):
        asked.append(dialog.message)
        dialog.dismiss() if len(asked) == 1 else dialog.accept()

    page.on("dialog", dismiss_first_then_accept)
    page.click("#decision-form button[type=submit]")  # dismissed: nothing is sent
    assert page.locator("#appeal-status").inner_text() == "Pending"
    page.click("#decision-form button[type=submit]")
    page.wait_for_selector("#decided")
    assert page.locator("#appeal-status").inner_text() == "Approved"
    assert "reviewer-web" in page.locator("#decided").inner_text()
    assert len(asked) == 2 and "cannot be undone" in asked[0]
    explanation = httpx.get(f"{service.base}/v1/accounts/CASH/explanation",
                            headers={"Authorization": f"Bearer {service.operator_key}"}).json()
    assert "cash_out_suspected" not in [h["code"] for h in explanation["holds"]]
    assert problems == [], problems
    context.close()
    assert NOW  # the service clock of these tests (see test_web_customer)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("width", [375, 1280])
def test_operations_page_in_both_languages_and_sizes(service, browser, console, lang,  # noqa: F811
                                                     width):
    context, page, problems = _page(browser, width, lang)
    _sign_in(page, service, service.operator_key, lang)
    page.click("#nav-operations")
    # The click starts a navigation: counting before the new page has loaded finds nothing.
    page.wait_for_url(f"**/console/operations?lang={lang}")
    for section in ("#maintenance", "#migrations", "#sweeps", "#policies"):
        assert page.locator(section).count() == 1
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    _shot(page, f"console-operations-{lang}-{width}")
    assert problems == [], problems
    context.close()


def test_an_operator_dry_runs_a_sweep_and_applies_it_after_confirming(service, browser,  # noqa: F811
                                                                     console):
    context, page, problems = _page(browser, 1280, "en")
    _sign_in(page, service, service.operator_key, "en")
    page.goto(f"{service.base}/console/operations?lang=en")
    page.fill("#criteria", "score < 650")
    page.fill("#reopen_criteria", "score >= 700")
    page.click("#dry-run-form button[type=submit]")
    count = page.locator("#dry-run-count").inner_text()
    assert count == "1"  # LATE has a score of 640
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#apply-form button[type=submit]")
    page.wait_for_selector("#notice")
    assert "1 accounts closed" in page.locator("#notice").inner_text()
    assert asked and "Close 1 accounts" in asked[0]
    summary = httpx.get(f"{service.base}/v1/accounts/LATE",
                        headers={"Authorization": f"Bearer {service.operator_key}"}).json()
    assert summary["status"] == "closed"
    assert problems == [], problems
    context.close()


def test_a_customer_appeal_approved_in_the_console_reactivates_the_line(service, browser,  # noqa: F811
                                                                       console):
    """The customer appeals cash_out_suspected from their page, picking two purchases; a
    reviewer approves it in the console; the customer's page then shows the line active."""
    service.ingest(opened("E2E"),
                   *[event("purchase", "E2E", f"E2E-p{n}", T0 + dt.timedelta(minutes=n),
                           amount=f"{30 + n}.50", merchant_id="M7") for n in (1, 2)],
                   event("purchase", "E2E", "E2E-t1", T0 + dt.timedelta(minutes=20),
                         amount="500.00", merchant_id="M1", kind="transfer"),
                   # The two purchases repaid before the statement: nothing falls past due.
                   event("repayment", "E2E", "E2E-r1", T0 + dt.timedelta(days=2),
                         amount="64.00"))
    customer_context, customer, customer_problems = _page(browser, 375, "en")
    customer.goto(f"{service.base}/me/sign-in?token={service.token('E2E')}&lang=en")
    assert "cash_out_suspected" in customer.locator("article.jf-hold").evaluate_all(
        "els => els.map(e => e.dataset.code)")
    customer.select_option("#hold_code", "cash_out_suspected")
    customer.fill("#statement", "Both were groceries; the transfer was rent.")
    customer.check('input[value="E2E-p1"]')
    customer.check('input[value="E2E-p2"]')
    customer.click("#appeal-form button[type=submit]")
    customer.wait_for_selector("#notice")

    reviewer_context, reviewer, reviewer_problems = _page(browser, 1280, "en")
    _sign_in(reviewer, service, console["keys"]["reviewer"], "en")
    reviewer.goto(f"{service.base}/console/appeals?lang=en")
    reviewer.click('tr:has(a:text("E2E")) td:first-child a')
    disputed = reviewer.locator("#disputed").inner_text()
    assert "E2E-p1" in disputed and "E2E-p2" in disputed
    reviewer.check('input[value="approve"]')
    reviewer.fill("#reason", "receipts match")
    reviewer.on("dialog", lambda dialog: dialog.accept())
    reviewer.click("#decision-form button[type=submit]")
    reviewer.wait_for_selector("#decided")

    customer.reload()
    assert customer.locator("article.jf-hold").evaluate_all(
        "els => els.map(e => e.dataset.code)") == []
    _shot(customer, "customer-after-approval-en-375")
    assert customer_problems == [] and reviewer_problems == []
    customer_context.close()
    reviewer_context.close()


def test_a_reviewer_cannot_open_or_post_operations(service, browser, console):  # noqa: F811
    context, page, _ = _page(browser, 1280, "en")
    _sign_in(page, service, console["keys"]["reviewer"], "en")
    assert page.locator("#nav-operations").count() == 0
    response = page.goto(f"{service.base}/console/operations?lang=en")
    assert response.status == 403 and page.locator("#refused").count() == 1
    posted = page.request.post(f"{service.base}/console/maintenance?lang=en", form={
        "start": "2026-02-13T01:00:00+08:00", "end": "2026-02-13T02:00:00+08:00",
        "csrf": "any"})
    assert posted.status == 403
    context.close()


def test_maintenance_scheduled_in_the_console_shows_in_the_portfolio_chart(  # noqa: F811
        service, browser, console):
    context, page, problems = _page(browser, 1280, "en")
    _sign_in(page, service, service.operator_key, "en")
    page.goto(f"{service.base}/console/operations?lang=en")
    start = NOW + dt.timedelta(hours=1)
    page.fill('#maintenance-form input[name="start"]', start.isoformat())
    page.fill('#maintenance-form input[name="end"]', (start + dt.timedelta(hours=2)).isoformat())
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("#maintenance-form button[type=submit]")
    page.wait_for_selector("#maintenance tr[data-window]")
    page.click("#nav-overview")
    page.wait_for_function("window.jiefengCharts && window.jiefengCharts.length === 2")
    counts = page.evaluate("""() => {
        const placed = window.jiefengCharts[0].data.datasets.find(d => d.label === 'maintenance');
        return placed ? placed.data : null; }""")
    assert counts is not None and counts[-1] > 0  # this week: the accounts it covers
    _shot(page, "console-overview-maintenance-en-1280")
    assert problems == [], problems
    context.close()

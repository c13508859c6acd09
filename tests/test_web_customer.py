"""The customer page in a real browser: headless Chromium (the system's package) driven by
Playwright, against the service on a loopback port. Screenshots of every page in zh-CN and en
at 375 px and 1280 px go to test-artifacts/."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from jiefeng.api.app import create_app
from jiefeng.policy.schema import default_policy_text
from test_api_support import Clock, event, opened, wrong_passwords

CHROMIUM = os.environ.get("JIEFENG_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TZ = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=TZ)
# The 2026-02-01 statement is due 02-09; on 02-12 its minimum is three days past due.
NOW = dt.datetime(2026, 2, 12, 10, 0, tzinfo=TZ)
REPAY_URL = "https://issuer.example/repay"


def _browser_unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (the test extra installs it)"
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _needs_browser():
    reason = _browser_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true requires the browser tests: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Service:
    def __init__(self, app, base: str, clock: Clock):
        self.app = app
        self.base = base
        self.clock = clock
        self.services = app.state.services
        self.ingest_key = self.services.keys.create(["ingest"], "ingest-1", "test", clock()).key
        self.operator_key = self.services.keys.create(["operator"], "ops-1", "test",
                                                      clock()).key

    def ingest(self, *events: dict) -> None:
        response = httpx.post(f"{self.base}/v1/events", json={"events": list(events)},
                              headers={"Authorization": f"Bearer {self.ingest_key}"})
        assert response.status_code == 200, response.text
        assert all(r["status"] != "rejected" for r in response.json()["results"]), response.text

    def token(self, account_id: str) -> str:
        return self.services.tokens.issue(account_id, self.clock(), 24)


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> Iterator[Service]:
    db = str(tmp_path_factory.mktemp("web") / "web.db")
    clock = Clock(NOW)
    app = create_app(db, now=clock)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    svc = Service(app, base, clock)
    policy = default_policy_text().replace(
        'appeal_path = "/me/appeals"', f'appeal_path = "/me/appeals"\nrepay_url = "{REPAY_URL}"')
    policy = policy.replace('version = "', 'version = "web-', 1)
    operator = {"Authorization": f"Bearer {svc.operator_key}",
                "Content-Type": "application/toml"}
    uploaded = httpx.post(f"{base}/v1/policies", headers=operator, content=policy.encode())
    assert uploaded.status_code == 201, uploaded.text
    version = uploaded.json()["version"]
    clock.at = T0 - dt.timedelta(days=1)  # the policy is active before the accounts open
    assert httpx.post(f"{base}/v1/policies/{version}/activate",
                      headers={"Authorization": f"Bearer {svc.operator_key}"}).status_code == 200
    clock.at = NOW
    svc.ingest(
        opened("LATE"), event("purchase", "LATE", "LATE-p1", T0 + dt.timedelta(days=2),
                              amount="1000.00", merchant_id="M-1"),
        event("score_update", "LATE", "LATE-s1", T0 + dt.timedelta(days=3), score=640,
              dimensions={"compliance": 60, "behaviour": 70, "identity": 80, "assets": 50,
                          "connections": 65}),
        *wrong_passwords("LATE", NOW - dt.timedelta(hours=2)),
        opened("OTHER"))
    yield svc
    server.should_exit = True
    thread.join(timeout=10)
    svc.services.store.close()


@pytest.fixture(scope="module")
def browser():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        yield launched
        launched.close()


def _page(browser, width: int, lang: str = "zh-CN"):
    context = browser.new_context(viewport={"width": width, "height": 900}, locale=lang)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return context, page, problems


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_a_frozen_customer_sees_both_holds_repays_and_sees_cure_probation(service, browser):
    context, page, problems = _page(browser, 375)
    page.goto(f"{service.base}/me/sign-in?token={service.token('LATE')}&lang=en")
    assert page.url.endswith("/me?lang=en")  # signed in; the token left the address bar
    holds = page.locator("article.jf-hold")
    assert sorted(holds.evaluate_all("els => els.map(e => e.dataset.code)")) == \
        ["overdue", "password_locked"]
    overdue = page.locator('article[data-code="overdue"]').inner_text()
    assert "minimum" in overdue.lower() and "¥" in overdue
    locked = page.locator('article[data-code="password_locked"]').inner_text()
    assert "2026" in locked  # when it lifts by itself
    countdown = page.locator('li[data-code="password_locked"] time[data-countdown]')
    assert " h " in countdown.inner_text()  # and the time left, on the service's clock
    repaid = page.locator('li[data-code="overdue"] .jf-bar').inner_text()
    assert "Repaid ¥0.00 of ¥" in repaid  # progress toward the past-due minimum
    assert page.locator("#repay").get_attribute("href") == REPAY_URL
    page.wait_for_function("window.jiefengScoreChart !== undefined")  # the chart drew
    _shot(page, "customer-frozen-en-375")
    # The customer repays through the issuer; the repayment reaches jiefeng as an event.
    service.ingest(event("repayment", "LATE", "LATE-r1", NOW - dt.timedelta(minutes=5),
                         amount="1100.00"))
    page.reload()
    codes = page.locator("article.jf-hold").evaluate_all("els => els.map(e => e.dataset.code)")
    assert "overdue" not in codes and "cure_probation" in codes
    assert problems == [], problems  # no CSP violation, no script error
    context.close()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("width", [375, 1280])
def test_every_page_in_both_languages_and_sizes(service, browser, lang, width):
    context, page, problems = _page(browser, width, lang)
    page.goto(f"{service.base}/me/sign-in?lang={lang}")
    assert page.locator("html").get_attribute("lang") == lang
    _shot(page, f"sign-in-{lang}-{width}")
    page.fill("#token", service.token("LATE"))
    page.click("button[type=submit]")
    page.wait_for_url(f"**/me?lang={lang}")
    assert page.locator("article.jf-hold").count() >= 1
    # Nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    _shot(page, f"customer-{lang}-{width}")
    page.click("button.jf-link")  # sign out
    page.wait_for_url(f"**/me/sign-in?lang={lang}")
    page.goto(f"{service.base}/me?lang={lang}")
    assert "/me/sign-in" in page.url  # signed out: the page asks for a token again
    assert problems == [], problems
    context.close()


def test_a_customer_sees_only_their_own_account(service, browser):
    context, page, _ = _page(browser, 1280, "en")
    page.goto(f"{service.base}/me/sign-in?token={service.token('OTHER')}&lang=en")
    assert page.locator("#account").inner_text() == "Account OTHER"
    assert "LATE" not in page.locator("body").inner_text()
    page.goto(f"{service.base}/me?lang=en&account_id=LATE")  # no way to name another account
    assert page.locator("#account").inner_text() == "Account OTHER"
    assert page.locator("article.jf-hold").count() == 0  # OTHER has no hold; LATE has two
    context.close()


def test_bad_tokens_and_forms_without_csrf_are_refused(service, browser):
    context, page, _ = _page(browser, 1280, "en")
    response = page.goto(f"{service.base}/me/sign-in?token=not-a-token&lang=en")
    assert response.status == 401
    assert "not valid" in page.locator(".jf-error").inner_text()
    assert page.locator("#token").get_attribute("aria-invalid") == "true"
    context.close()
    operator_key = httpx.post(f"{service.base}/me/sign-in", data={
        "token": service.operator_key, "csrf": "x"}, cookies={"jiefeng_csrf": "x"})
    assert operator_key.status_code == 401  # an API key is not a customer's sign-in
    forged = httpx.post(f"{service.base}/me/sign-in", data={"token": service.token("LATE")})
    assert forged.status_code == 403  # no CSRF token: refused, nothing set
    assert "jiefeng_session" not in forged.cookies
    page_headers = httpx.get(f"{service.base}/me/sign-in").headers
    assert "script-src 'self'" in page_headers["content-security-policy"]
    assert page_headers["x-content-type-options"] == "nosniff"
    assert page_headers["cache-control"] == "no-store"


def test_sign_in_failures_count_against_the_client_limit(tmp_path, monkeypatch):
    """The sign-in form is no way around the API's failed-credential limit (429)."""
    import warnings as _warnings

    monkeypatch.setenv("JIEFENG_AUTH_MAX_FAILURES", "3")
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    app = create_app(str(tmp_path / "limit.db"), now=Clock(NOW))
    with TestClient(app) as client:
        client.get("/me/sign-in")
        statuses = []
        for n in range(4):  # each answer carries a fresh CSRF cookie, which the form echoes
            csrf = client.cookies.get("jiefeng_csrf")
            statuses.append(client.post("/me/sign-in", data={"token": f"wrong-{n}",
                                                             "csrf": csrf},
                                        follow_redirects=False).status_code)
        assert statuses == [401, 401, 401, 429]
        blocked = client.get("/me/sign-in", params={"token": "wrong"}, follow_redirects=False)
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    app.state.services.store.close()


def test_api_docs_work_offline(service, browser):
    """/docs loads Swagger UI from the package itself, and renders the API's operations."""
    html = httpx.get(f"{service.base}/docs").text
    assert "cdn" not in html.lower() and "/static/vendor/swagger-ui-5.35.0/" in html
    context, page, problems = _page(browser, 1280, "en")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{service.base}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    assert page.locator(".opblock-summary-path").count() > 20
    assert all(url.startswith(service.base) for url in requested), requested
    assert problems == [], problems
    context.close()


def test_a_countdown_ticks_and_an_appeal_is_sent_from_the_page(service, browser):
    """A cash-out hold lifts by itself after quiet days: its countdown runs in the browser.
    The customer appeals it from the page, naming a purchase; the page says it was sent."""
    service.ingest(opened("APPEAL"),
                   event("purchase", "APPEAL", "APPEAL-p0", T0 + dt.timedelta(minutes=5),
                         amount="32.10", merchant_id="M7"),
                   event("purchase", "APPEAL", "APPEAL-t1", T0 + dt.timedelta(minutes=20),
                         amount="500.00", merchant_id="M1", kind="transfer"))
    context, page, problems = _page(browser, 375, "en")
    page.goto(f"{service.base}/me/sign-in?token={service.token('APPEAL')}&lang=en")
    countdown = page.locator('li[data-code="cash_out_suspected"] time[data-countdown]')
    first = countdown.inner_text()
    assert " d " in first  # days left, in the reader's clock
    page.wait_for_function(
        "t => document.querySelector('li[data-code=\"cash_out_suspected\"] time').textContent"
        " !== t", arg=first)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.select_option("#hold_code", "cash_out_suspected")
    page.fill("#statement", "It was rent for my flat.")
    page.check('input[value="APPEAL-p0"]')
    page.click("#appeal-form button[type=submit]")
    page.wait_for_selector("#notice")
    assert page.locator("#appeal-form").count() == 0  # the only appealable hold is pending
    _shot(page, "customer-appeal-sent-en-375")
    assert "rights" in page.locator("#rights").get_attribute("id")
    assert problems == [], problems
    context.close()

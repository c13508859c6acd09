"""The customer page: "why is my line frozen, and how do I unfreeze it?"

Signed in with the customer token the issuer's app hands over (a link with `?token=`, or the
sign-in form); the token is kept in an HttpOnly, SameSite=Strict cookie and checked on every
request exactly as the API checks it, so the page only ever shows that token's own account.
Every page carries a Content-Security-Policy, nosniff and no-store; every form a CSRF token.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from jiefeng.api.auth import TooManyFailures, authenticate_limited
from jiefeng.api.context import request_context
from jiefeng.api.services import Services
from jiefeng.explain.render import render_html
from jiefeng.explain.structured import build_explanation
from jiefeng.service import operator as ops
from jiefeng.service.engine import AccountNotFound
from jiefeng.service.security import CredentialInvalid, Principal
from jiefeng.web import customer_view, pages

router = APIRouter(include_in_schema=False)
SESSION_COOKIE = "jiefeng_session"
DIMENSIONS = ("compliance", "behaviour", "identity", "assets", "connections")


def _services(request: Request) -> Services:
    return request.app.state.services


def _page(html: str, status: int = 200, csrf: str | None = None) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status, headers=pages.PAGE_HEADERS)
    if csrf is not None:
        response.set_cookie(pages.CSRF_COOKIE, csrf, httponly=True, samesite="strict",
                            path="/me")
    return response


def _csrf(request: Request) -> str:
    return request.cookies.get(pages.CSRF_COOKIE) or pages.new_csrf()


def _customer(request: Request, token: str | None, *, signing_in: bool = False) -> Principal:
    """The customer a token names; CredentialInvalid otherwise (API keys included). A sign-in
    counts against the API's per-client failure limit (TooManyFailures)."""
    if not token:
        raise CredentialInvalid("no token")
    if signing_in:
        principal = authenticate_limited(request, token)
    else:
        svc = _services(request)
        principal = svc.authenticator.authenticate(token, svc.now())
    if not principal.is_customer:
        raise CredentialInvalid("this is not a customer token")
    return principal


def _session_customer(request: Request) -> Principal | None:
    """The customer the session cookie names, checked as the API checks a token; None if
    there is none or it no longer holds."""
    try:
        return _customer(request, request.cookies.get(SESSION_COOKIE))
    except CredentialInvalid:
        return None


def _to_sign_in(lang: str) -> Response:
    return RedirectResponse(f"/me/sign-in?lang={lang}", status_code=303,
                            headers=pages.PAGE_HEADERS)


def _too_many(lang: str, error: TooManyFailures) -> Response:
    fresh = pages.new_csrf()
    response = _page(pages.render("sign_in.html", lang, csrf=fresh, error=pages.messages(
        lang)["too_many"].format(seconds=error.retry_after)), 429, fresh)
    response.headers["Retry-After"] = str(error.retry_after)
    return response


def _signed_in(token: str, lang: str, secure: bool) -> Response:
    response = RedirectResponse(f"/me?lang={lang}", status_code=303,
                                headers=pages.PAGE_HEADERS)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=secure)
    return response


@router.get("/me/sign-in")
def sign_in_page(request: Request, lang: str | None = None,
                 token: str | None = None) -> Response:
    lang = pages.lang_of(lang)
    if token:  # the issuer's app links here with the token: sign in, then drop it from the URL
        try:
            _customer(request, token, signing_in=True)
        except TooManyFailures as error:
            return _too_many(lang, error)
        except CredentialInvalid as error:
            csrf = _csrf(request)
            return _page(pages.render("sign_in.html", lang, csrf=csrf, error=pages.messages(
                lang)["bad_token"].format(reason=error)), 401, csrf)
        return _signed_in(token, lang, request.url.scheme == "https")
    csrf = _csrf(request)
    return _page(pages.render("sign_in.html", lang, csrf=csrf, error=None), csrf=csrf)


@router.post("/me/sign-in")
def sign_in(request: Request, lang: str | None = None, token: str = Form(""),
            csrf: str = Form("")) -> Response:
    lang = pages.lang_of(lang)
    m = pages.messages(lang)
    fresh = pages.new_csrf()
    if not pages.csrf_ok(request.cookies.get(pages.CSRF_COOKIE), csrf):
        return _page(pages.render("sign_in.html", lang, csrf=fresh, error=m["csrf_failed"]),
                     403, fresh)
    if not token.strip():
        return _page(pages.render("sign_in.html", lang, csrf=fresh, error=m["missing_token"]),
                     422, fresh)
    try:
        _customer(request, token.strip(), signing_in=True)
    except TooManyFailures as error:
        return _too_many(lang, error)
    except CredentialInvalid as error:
        return _page(pages.render("sign_in.html", lang, csrf=fresh,
                                  error=m["bad_token"].format(reason=error)), 401, fresh)
    return _signed_in(token.strip(), lang, request.url.scheme == "https")


@router.post("/me/sign-out")
def sign_out(request: Request, lang: str | None = None, csrf: str = Form("")) -> Response:
    lang = pages.lang_of(lang)
    if not pages.csrf_ok(request.cookies.get(pages.CSRF_COOKIE), csrf):
        fresh = pages.new_csrf()
        return _page(pages.render("sign_in.html", lang, csrf=fresh,
                                  error=pages.messages(lang)["csrf_failed"]), 403, fresh)
    response = RedirectResponse(f"/me/sign-in?lang={lang}", status_code=303,
                                headers=pages.PAGE_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _view(request: Request, account_id: str, now: dt.datetime) -> dict[str, Any]:
    engine = _services(request).engine()
    state, scopes, at = engine.state_at(account_id, now)
    if not state.opened:
        raise AccountNotFound(account_id)
    policy = scopes.policy_for(at, engine.base_policy)
    return {"explanation": build_explanation(state, at, engine.base_policy, scopes),
            "dimensions": dict(state.score_dimensions), "repay_url": policy.support.repay_url,
            "timezone": policy.timezone, "policy": policy}


@router.get("/me")
async def customer_page(request: Request, lang: str | None = None,
                        sent: bool = False) -> Response:
    lang = pages.lang_of(lang)
    principal = _session_customer(request)
    if principal is None:
        return _to_sign_in(lang)
    return await _customer_response(request, principal, lang,
                                    notice=pages.messages(lang)["appeal_sent"] if sent else None)


async def _customer_response(request: Request, principal: Principal, lang: str, *,
                             status: int = 200, notice: str | None = None,
                             error: str | None = None,
                             form: dict[str, Any] | None = None,
                             error_field: str | None = None) -> Response:
    svc = _services(request)
    try:
        view = await anyio.to_thread.run_sync(_view, request, principal.account_id, svc.now())
    except AccountNotFound:
        return _to_sign_in(lang)
    m = pages.messages(lang)
    dimensions = [d for d in DIMENSIONS if d in view["dimensions"]]
    score_data = {"labels": [m[f"dimension_{d}"] for d in dimensions],
                  "values": [view["dimensions"][d] for d in dimensions],
                  "label": m["score_chart_label"]}
    csrf = _csrf(request)
    html = pages.render(
        "customer.html", lang, csrf=csrf, repay_url=view["repay_url"],
        account_id=principal.account_id,
        explanation_html=Markup(render_html(view["explanation"], lang, view["timezone"])),
        dimensions=dimensions, score_data=score_data,
        widgets=customer_view.hold_widgets(view["explanation"], lang, m),
        server_now=view["explanation"]["at"],
        page_title=m["page_title_closed"] if view["explanation"]["status"] == "closed" else None,
        appeal=customer_view.appeal_choices(view["explanation"], lang),
        rights=customer_view.rights(view["policy"], m), notice=notice,
        error=None if error_field else error, error_field=error_field, error_reason=error,
        form=form or {})
    return _page(html, status, csrf)


@router.post("/me/appeals")
async def submit_appeal(request: Request, lang: str | None = None,
                        hold_code: str = Form(""), statement: str = Form(""),
                        purchase_event_ids: list[str] = Form(default_factory=list),
                        csrf: str = Form("")) -> Response:
    """The customer's appeal from the page: the same `appeal_submitted` event as
    `POST /v1/accounts/{id}/appeals`, for the signed-in token's own account only, audited."""
    lang = pages.lang_of(lang)
    principal = _session_customer(request)
    if principal is None:
        return _to_sign_in(lang)
    context = request_context(request.scope)
    context.action, context.target = "appeals.submit", principal.account_id
    context.principal, context.audited = principal, True
    context.reason = statement.strip()[:500] or None
    m = pages.messages(lang)
    form = {"hold_code": hold_code, "statement": statement,
            "purchase_event_ids": purchase_event_ids}
    if not pages.csrf_ok(request.cookies.get(pages.CSRF_COOKIE), csrf):
        return await _customer_response(request, principal, lang, status=403,
                                        error=m["csrf_failed"], form=form)
    svc = _services(request)
    try:
        await anyio.to_thread.run_sync(ops.submit_appeal, svc.engine(), principal.account_id,
                                       hold_code, statement, purchase_event_ids)
    except ops.OperationError as refused:
        beside = refused.field in form  # next to its field; any other above the page
        return await _customer_response(
            request, principal, lang, status=refused.status, form=form,
            error=(m["appeal_failed"].format(reason=refused.reason) if beside else
                   m["appeal_failed"].format(reason=f"{refused.field}: {refused.reason}")),
            error_field=refused.field if beside else None)
    return RedirectResponse(f"/me?lang={lang}&sent=1", status_code=303,
                            headers=pages.PAGE_HEADERS)

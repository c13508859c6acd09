"""The operator console: portfolio overview, account pages, the appeal queue, the audit log.

Signed in with an API key (kept in an HttpOnly, SameSite=Strict cookie scoped to /console)
that is checked on every request exactly as the API checks it: what a page shows and allows
follows the key's role, and the server refuses what the role may not do (hiding a button is
not security). Every page view and decision is audited with the authenticated key, through
the same request context the API's Guard fills in. Pages carry the CSP, nosniff, no-store
headers; forms a CSRF token.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from jiefeng.api.auth import STAFF_READERS, TooManyFailures, authenticate_limited
from jiefeng.api.context import request_context
from jiefeng.api.services import Services
from jiefeng.explain.render import render_html
from jiefeng.service import operator as ops
from jiefeng.service.engine import AccountNotFound
from jiefeng.service.security import CredentialInvalid, Principal
from jiefeng.shown import cut
from jiefeng.web import console_data, pages

router = APIRouter(include_in_schema=False)
SESSION_COOKIE = "jiefeng_console"
CSRF_COOKIE = "jiefeng_console_csrf"
PATH = "/console"
AUDIT_SHOWN = 200


class _Refused(Exception):
    """The request ends with this response (sign-in redirect or a 403 page)."""

    def __init__(self, response: Response):
        self.response = response


def _services(request: Request) -> Services:
    return request.app.state.services


def _page(html: str, status: int = 200, csrf: str | None = None) -> HTMLResponse:
    response = HTMLResponse(html, status_code=status, headers=pages.PAGE_HEADERS)
    if csrf is not None:
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path=PATH)
    return response


def _csrf(request: Request) -> str:
    return request.cookies.get(CSRF_COOKIE) or pages.new_csrf()


def _render(request: Request, template: str, lang: str, principal: Principal | None,
            status: int = 200, **values: Any) -> HTMLResponse:
    csrf = _csrf(request)
    roles = set(principal.roles) if principal else set()
    html = pages.render_console(template, lang, csrf=csrf, principal=principal,
                                is_admin="admin" in roles,
                                can_review=bool(roles & {"reviewer", "admin"}),
                                can_operate=bool(roles & {"operator", "admin"}), **values)
    return _page(html, status, csrf)


def _staff(request: Request, lang: str, action: str, roles: tuple[str, ...],
           target: str | None = None) -> Principal:
    """The signed-in key if it may do `action` (roles besides admin); audited like the API."""
    context = request_context(request.scope)
    context.action, context.target = action, target
    key = request.cookies.get(SESSION_COOKIE)
    svc = _services(request)
    try:
        if not key:
            raise CredentialInvalid("not signed in")
        principal = svc.authenticator.authenticate(key, svc.now())
    except CredentialInvalid:
        raise _Refused(RedirectResponse(f"{PATH}/sign-in?lang={lang}", status_code=303,
                                        headers=pages.PAGE_HEADERS)) from None
    if principal.is_customer:  # a customer token is not a console credential
        raise _Refused(RedirectResponse(f"{PATH}/sign-in?lang={lang}", status_code=303,
                                        headers=pages.PAGE_HEADERS))
    context.principal = principal
    context.audited = True
    if not principal.has_role(*roles):
        m = pages.console_messages(lang)
        needed = " / ".join((*roles, "admin"))
        raise _Refused(_render(request, "console_refused.html", lang, principal, 403,
                               message=m["needs_role"].format(roles=needed)))
    return principal


def _not_found(request: Request, lang: str, principal: Principal, message: str,
               **ids: str) -> HTMLResponse:
    """The 404 page: the message names what was asked for, each id cut as every error cuts
    it (jiefeng.shown.cut)."""
    text = pages.console_messages(lang)[message].format(**{k: cut(v) for k, v in ids.items()})
    return _render(request, "console_refused.html", lang, principal, 404, message=text)


def _lang(lang: str | None) -> str:
    return pages.lang_of(lang)


async def _guarded(request: Request, lang: str, action: str, roles: tuple[str, ...],
                   target: str | None, build) -> Response:
    try:
        principal = _staff(request, lang, action, roles, target)
        return await build(principal)
    except _Refused as refused:
        return refused.response


# --- sign in and out ------------------------------------------------------------------------


@router.get(f"{PATH}/sign-in")
def sign_in_page(request: Request, lang: str | None = None) -> Response:
    return _render(request, "console_sign_in.html", _lang(lang), None, error=None)


@router.post(f"{PATH}/sign-in")
def sign_in(request: Request, lang: str | None = None, key: str = Form(""),
            csrf: str = Form("")) -> Response:
    lang = _lang(lang)
    m = pages.console_messages(lang)
    if not pages.csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
        return _render(request, "console_sign_in.html", lang, None, 403, error=m["csrf_failed"])
    if not key.strip():
        return _render(request, "console_sign_in.html", lang, None, 422, error=m["missing_key"])
    try:
        principal = authenticate_limited(request, key.strip())
    except TooManyFailures as error:
        response = _render(request, "console_sign_in.html", lang, None, 429,
                           error=m["too_many"].format(seconds=error.retry_after))
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    except CredentialInvalid as error:
        return _render(request, "console_sign_in.html", lang, None, 401,
                       error=m["bad_key"].format(reason=error))
    if principal.is_customer:
        return _render(request, "console_sign_in.html", lang, None, 401,
                       error=m["bad_key"].format(reason=m["customer_token"]))
    response = RedirectResponse(f"{PATH}?lang={lang}", status_code=303,
                                headers=pages.PAGE_HEADERS)
    response.set_cookie(SESSION_COOKIE, key.strip(), httponly=True, samesite="strict",
                        path=PATH, secure=request.url.scheme == "https")
    return response


@router.post(f"{PATH}/sign-out")
def sign_out(request: Request, lang: str | None = None, csrf: str = Form("")) -> Response:
    lang = _lang(lang)
    if not pages.csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
        return _render(request, "console_sign_in.html", lang, None, 403,
                       error=pages.console_messages(lang)["csrf_failed"])
    response = RedirectResponse(f"{PATH}/sign-in?lang={lang}", status_code=303,
                                headers=pages.PAGE_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path=PATH)
    return response


# --- pages ----------------------------------------------------------------------------------


@router.get(PATH)
async def overview_page(request: Request, lang: str | None = None) -> Response:
    lang = _lang(lang)
    svc = _services(request)

    async def build(principal: Principal) -> Response:
        data = await anyio.to_thread.run_sync(console_data.overview, svc.engine(), svc.now())
        return _render(request, "console_overview.html", lang, principal, data=data)

    return await _guarded(request, lang, "console.overview", STAFF_READERS, None, build)


@router.get(f"{PATH}/accounts")
def find_account(request: Request, account_id: str = "", lang: str | None = None) -> Response:
    lang = _lang(lang)
    target = PATH  # the account page itself checks the role
    if account_id.strip():
        target = f"{PATH}/accounts/{quote(account_id.strip(), safe='')}"
    return RedirectResponse(f"{target}?lang={lang}", status_code=303,
                            headers=pages.PAGE_HEADERS)


@router.get(PATH + "/accounts/{account_id}")
async def account_page(request: Request, account_id: str, lang: str | None = None) -> Response:
    lang = _lang(lang)
    svc = _services(request)

    async def build(principal: Principal) -> Response:
        try:
            view = await anyio.to_thread.run_sync(console_data.account_view, svc.engine(),
                                                  account_id, svc.now())
        except AccountNotFound:
            return _not_found(request, lang, principal, "no_account", account_id=account_id)
        customer_html = Markup(render_html(view["explanation"], lang,
                                           svc.engine().policy.timezone))
        return _render(request, "console_account.html", lang, principal, view=view,
                       customer_html=customer_html)

    return await _guarded(request, lang, "console.account", STAFF_READERS, account_id, build)


@router.get(f"{PATH}/appeals")
async def appeals_page(request: Request, lang: str | None = None,
                       status: str = "pending") -> Response:
    lang = _lang(lang)
    svc = _services(request)
    status = status if status in ("pending", "approved", "rejected", "void", "all") else "pending"

    async def build(principal: Principal) -> Response:
        appeals = await anyio.to_thread.run_sync(
            ops.appeal_queue, svc.engine(), None if status == "all" else status,
            console_data.QUEUE_SHOWN)
        return _render(request, "console_appeals.html", lang, principal, appeals=appeals,
                       status_filter=status)

    return await _guarded(request, lang, "console.appeals", ("reviewer", "operator"), None,
                          build)


@router.get(PATH + "/appeals/{appeal_id}")
async def appeal_page(request: Request, appeal_id: str, lang: str | None = None) -> Response:
    lang = _lang(lang)
    svc = _services(request)

    async def build(principal: Principal) -> Response:
        try:
            view = await anyio.to_thread.run_sync(console_data.appeal_view, svc.engine(),
                                                  appeal_id, svc.now())
        except ops.NotFound:
            return _not_found(request, lang, principal, "no_appeal", appeal_id=appeal_id)
        return _render(request, "console_appeal.html", lang, principal, view=view, error=None)

    return await _guarded(request, lang, "console.appeal", ("reviewer", "operator"), appeal_id,
                          build)


@router.post(PATH + "/appeals/{appeal_id}/decision")
async def decide_appeal(request: Request, appeal_id: str, lang: str | None = None,
                        decision: str = Form(""), reason: str = Form(""),
                        csrf: str = Form("")) -> Response:
    """The reviewer's decision, as `POST /v1/appeals/{id}/decision` makes it: an
    `appeal_decided` event whose actor is the signed-in key, audited with its reason."""
    lang = _lang(lang)
    svc = _services(request)
    m = pages.console_messages(lang)

    async def build(principal: Principal) -> Response:
        request_context(request.scope).reason = reason.strip() or None
        error = error_field = None
        if not pages.csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
            error, status = m["csrf_failed"], 403
        elif decision not in ("approve", "reject"):
            error, error_field, status = m["pick_decision"], "decision", 422
        else:
            try:
                await anyio.to_thread.run_sync(ops.decide_appeal, svc.engine(), principal.name,
                                               appeal_id, decision, reason)
            except ops.NotFound:
                return _not_found(request, lang, principal, "no_appeal", appeal_id=appeal_id)
            except ops.OperationError as refused:  # conflict, forbidden, a missing reason
                error, status = f"{refused.field}: {refused.reason}", refused.status
                if refused.field == "reason":
                    error, error_field = refused.reason, "reason"
            else:
                return RedirectResponse(f"{PATH}/appeals/{appeal_id}?lang={lang}",
                                        status_code=303, headers=pages.PAGE_HEADERS)
        view = await anyio.to_thread.run_sync(console_data.appeal_view, svc.engine(),
                                              appeal_id, svc.now())
        return _render(request, "console_appeal.html", lang, principal, status, view=view,
                       error=None if error_field else error, error_field=error_field,
                       error_reason=error)

    return await _guarded(request, lang, "console.appeals.decide", ("reviewer",), appeal_id,
                          build)


def _filter_time(value: str) -> dt.datetime | None:
    if not value.strip():
        return None
    parsed = dt.datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@router.get(f"{PATH}/audit")
async def audit_page(request: Request, lang: str | None = None, actor: str = "",
                     action: str = "", since: str = "", until: str = "") -> Response:
    lang = _lang(lang)
    svc = _services(request)
    m = pages.console_messages(lang)

    async def build(principal: Principal) -> Response:
        filters = {"actor": actor.strip(), "action": action.strip(), "since": since.strip(),
                   "until": until.strip()}
        try:
            start, end = _filter_time(since), _filter_time(until)
        except ValueError:
            return _render(request, "console_audit.html", lang, principal, 422, entries=[],
                           filters=filters, error=m["bad_time"])
        entries = await anyio.to_thread.run_sync(
            lambda: svc.audit.search(actor=filters["actor"] or None,
                                     action=filters["action"] or None, since=start, until=end,
                                     limit=AUDIT_SHOWN))
        return _render(request, "console_audit.html", lang, principal, entries=entries,
                       filters=filters, error=None)

    return await _guarded(request, lang, "console.audit", (), None, build)

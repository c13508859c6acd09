"""The console's operations pages (operator role): maintenance windows, migration campaigns,
policy sweeps with their dry run, and policy versions.

Each action is the one the API makes (the same service functions, the same events, the
signed-in key as the actor), after a CSRF check and, in the browser, a confirmation; each is
audited with its reason. A refusal shows its field and reason on the page, nothing applied.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import anyio
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from jiefeng.api.context import request_context
from jiefeng.api.routes.console import (
    CSRF_COOKIE,
    PATH,
    _guarded,
    _not_found,
    _render,
    _services,
)
from jiefeng.policy.schema import PolicyInvalid, default_policy
from jiefeng.service import operator as ops
from jiefeng.service import policies
from jiefeng.service.security import Principal
from jiefeng.web import pages

router = APIRouter(include_in_schema=False)
OPERATOR = ("operator",)


def _time(field: str, value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ops.OperationError(field, "give an RFC 3339 time, e.g. "
                                        "2026-12-24T01:00:00+08:00") from None
    if parsed.tzinfo is None:
        raise ops.OperationError(field, "needs a UTC offset, e.g. +08:00")
    return parsed


def _operations(request: Request) -> dict[str, Any]:
    svc = _services(request)
    engine = svc.engine()
    stored = policies.list_all(svc.store)
    builtin = default_policy().version
    return {"windows": ops.list_maintenance(engine), "campaigns": ops.list_migrations(engine),
            "policies": stored, "builtin_version": builtin,
            "active_version": next((p["version"] for p in stored if p["active"]), builtin)}


async def _page(request: Request, lang: str, principal: Principal, status: int = 200,
                **values: Any) -> Response:
    data = await anyio.to_thread.run_sync(_operations, request)
    values.setdefault("error", None)
    values.setdefault("error_field", None)
    values.setdefault("error_reason", None)
    values.setdefault("dry_run", None)
    values.setdefault("diff", None)
    values.setdefault("form", {})
    return _render(request, "console_operations.html", lang, principal, status, ops_data=data,
                   **values)


@router.get(f"{PATH}/operations")
async def operations_page(request: Request, lang: str | None = None) -> Response:
    lang = pages.lang_of(lang)

    async def build(principal: Principal) -> Response:
        return await _page(request, lang, principal)

    return await _guarded(request, lang, "console.operations", OPERATOR, None, build)


async def _act(request: Request, lang: str, action: str, csrf: str, reason: str | None,
               run: Callable[[Principal], Any],
               form: dict[str, Any], target: str | None = None) -> Response:
    """Check CSRF, run the command as the signed-in key, then back to the page (or the page
    with the refusal)."""
    m = pages.console_messages(lang)

    async def build(principal: Principal) -> Response:
        request_context(request.scope).reason = reason
        if not pages.csrf_ok(request.cookies.get(CSRF_COOKIE), csrf):
            return await _page(request, lang, principal, 403, error=m["csrf_failed"], form=form)
        try:
            result = await anyio.to_thread.run_sync(run, principal)
        except ops.OperationError as refused:
            # A field the form has gets its reason next to it; any other, above the forms.
            beside = refused.field in form
            return await _page(request, lang, principal, refused.status, form=form,
                               error=None if beside else f"{refused.field}: {refused.reason}",
                               error_field=refused.field if beside else None,
                               error_reason=refused.reason)
        except PolicyInvalid as invalid:
            errors = "; ".join(f"{f}: {r}" for f, r in invalid.problems[:10])
            return await _page(request, lang, principal, 422, form=form,
                               error=m["policy_invalid"].format(errors=errors))
        except policies.PolicyConflict as conflict:
            return await _page(request, lang, principal, 409, form=form,
                               error=f"{conflict.field}: {conflict.reason}")
        except policies.PolicyNotFound as missing:
            return await _page(request, lang, principal, 404, form=form,
                               error=f"version: {missing}")
        if isinstance(result, Response):
            return result
        if isinstance(result, dict) and "page" in result:
            return await _page(request, lang, principal, form=form, **result["page"])
        return RedirectResponse(f"{PATH}/operations?lang={lang}", status_code=303,
                                headers=pages.PAGE_HEADERS)

    return await _guarded(request, lang, action, OPERATOR, target, build)


@router.post(f"{PATH}/maintenance")
async def schedule_maintenance(request: Request, lang: str | None = None,
                               start: str = Form(""), end: str = Form(""),
                               segment: str = Form(""), reason: str = Form(""),
                               csrf: str = Form("")) -> Response:
    svc = _services(request)

    def run(principal: Principal) -> Any:
        begins, ends = _time("start", start), _time("end", end)
        return ops.schedule_maintenance(svc.engine(), principal.name, begins, ends,
                                        segment.strip() or None, None)

    return await _act(request, pages.lang_of(lang), "console.maintenance.schedule", csrf,
                      reason.strip() or None, run,
                      {"start": start, "end": end, "segment": segment, "_form": "maintenance"})


@router.post(PATH + "/maintenance/{window_id}/cancel")
async def cancel_maintenance(request: Request, window_id: str, lang: str | None = None,
                             csrf: str = Form("")) -> Response:
    svc = _services(request)
    return await _act(request, pages.lang_of(lang), "console.maintenance.cancel", csrf, None,
                      lambda p: ops.cancel_maintenance(svc.engine(), p.name, window_id), {},
                      window_id)


@router.post(f"{PATH}/migrations")
async def start_migration(request: Request, lang: str | None = None, segment: str = Form(""),
                          account_ids: str = Form(""), reason: str = Form(""),
                          csrf: str = Form("")) -> Response:
    svc = _services(request)
    ids = [a for a in account_ids.replace(",", " ").split() if a] or None

    def run(principal: Principal) -> Any:
        if ids is None and not segment.strip():
            raise ops.OperationError("segment", "name a segment or list the accounts")
        return ops.start_migration(svc.engine(), principal.name, None, ids,
                                   segment.strip() or None)

    return await _act(request, pages.lang_of(lang), "console.migrations.start", csrf,
                      reason.strip() or None, run,
                      {"segment": segment, "account_ids": account_ids, "_form": "migration"})


@router.post(PATH + "/migrations/{campaign_id}/complete")
async def complete_migration(request: Request, campaign_id: str, lang: str | None = None,
                             csrf: str = Form("")) -> Response:
    svc = _services(request)
    return await _act(request, pages.lang_of(lang), "console.migrations.complete", csrf, None,
                      lambda p: ops.complete_migration(svc.engine(), p.name, campaign_id, None),
                      {}, campaign_id)


@router.post(f"{PATH}/sweeps/dry-run")
async def sweep_dry_run(request: Request, lang: str | None = None, criteria: str = Form(""),
                        reopen_criteria: str = Form(""), csrf: str = Form("")) -> Response:
    svc = _services(request)
    form = {"criteria": criteria, "reopen_criteria": reopen_criteria}

    def run(principal: Principal) -> Any:
        now = svc.now()
        result = ops.sweep_dry_run(svc.engine(), criteria, reopen_criteria, now)
        token, expires = ops.sweep_token(svc.sweep_key, criteria, reopen_criteria, now, now)
        return {"page": {"dry_run": {
            "count": result.count, "already_closed": result.already_closed,
            "accounts_evaluated": result.accounts_evaluated,
            "not_evaluable": result.not_evaluable,
            "by_status": dict(sorted(result.by_status.items())), "sample": result.sample,
            "token": token, "expires_at": expires.isoformat()}}}

    return await _act(request, pages.lang_of(lang), "console.sweeps.dry_run", csrf,
                      criteria.strip() or None, run, form)


@router.post(f"{PATH}/sweeps")
async def apply_sweep(request: Request, lang: str | None = None, criteria: str = Form(""),
                      reopen_criteria: str = Form(""), dry_run_token: str = Form(""),
                      reason: str = Form(""), csrf: str = Form("")) -> Response:
    svc = _services(request)

    def run(principal: Principal) -> Any:
        sweep = ops.apply_sweep(svc.engine(), principal.name, svc.sweep_key, None, criteria,
                                reopen_criteria, dry_run_token, svc.revocations)
        request_context(request.scope).target = sweep["sweep_id"]
        return {"page": {"notice": pages.console_messages(pages.lang_of(lang))[
            "sweep_applied"].format(count=sweep["accounts_closed"], sweep_id=sweep["sweep_id"])}}

    return await _act(request, pages.lang_of(lang), "console.sweeps.apply", csrf,
                      reason.strip() or criteria.strip() or None, run,
                      {"criteria": criteria, "reopen_criteria": reopen_criteria})


@router.post(f"{PATH}/policies")
async def upload_policy(request: Request, lang: str | None = None, toml: str = Form(""),
                        csrf: str = Form("")) -> Response:
    """Validated, stored and compared with the active version; activating is a second step."""
    svc = _services(request)

    def run(principal: Principal) -> Any:
        if not toml.strip():
            raise ops.OperationError("toml", "paste the policy text (TOML)")
        uploaded = policies.upload(svc.store, toml, principal.name, svc.now())
        version = uploaded.record["version"]
        request_context(request.scope).target = version
        active = svc.engine().policy
        return {"page": {"diff": {"version": version, "against": active.version,
                                  "changes": policies.diff(active, policies.stored_policy(
                                      svc.store, version))}}}

    return await _act(request, pages.lang_of(lang), "console.policies.upload", csrf, None, run,
                      {"toml": toml})


@router.post(PATH + "/policies/{version}/diff")
async def diff_policy(request: Request, version: str, lang: str | None = None,
                      csrf: str = Form("")) -> Response:
    svc = _services(request)

    def run(principal: Principal) -> Any:
        active = svc.engine().policy
        return {"page": {"diff": {"version": version, "against": active.version,
                                  "changes": policies.diff(active, policies.stored_policy(
                                      svc.store, version))}}}

    return await _act(request, pages.lang_of(lang), "console.policies.diff", csrf, None, run, {},
                      version)


@router.post(PATH + "/policies/{version}/activate")
async def activate_policy(request: Request, version: str, lang: str | None = None,
                          reason: str = Form(""), csrf: str = Form("")) -> Response:
    svc = _services(request)

    def run(principal: Principal) -> Any:
        now = svc.now()
        policies.activate(svc.store, version, principal.name, now)
        report = svc.engine().ingest_events(
            [policies.activation_event(svc.store, version, principal.name, now)])
        if report.rejected:  # pragma: no cover - the event is built from a stored version
            rejected = next(r for r in report.results if r.status == "rejected")
            raise ops.OperationError(rejected.field or "version", rejected.reason or "")
        return None

    return await _act(request, pages.lang_of(lang), "console.policies.activate", csrf,
                      reason.strip() or None, run, {}, version)



# --- backtests ------------------------------------------------------------------------------


@router.get(f"{PATH}/backtests")
async def backtests_page(request: Request, lang: str | None = None) -> Response:
    """Backtests run through the API (`POST /v1/backtests`), newest first, with their reports."""
    from jiefeng.api.routes.backtests import jobs

    lang = pages.lang_of(lang)
    svc = _services(request)

    async def build(principal: Principal) -> Response:
        runner = jobs(request, svc)
        listed = await anyio.to_thread.run_sync(runner.list)
        return _render(request, "console_backtests.html", lang, principal, backtests=listed)

    return await _guarded(request, lang, "console.backtests", OPERATOR, None, build)


@router.get(PATH + "/backtests/{backtest_id}/report")
async def backtest_report(request: Request, backtest_id: str,
                          lang: str | None = None) -> Response:
    """The backtest's own HTML report (self-contained: inline style, charts as images)."""
    from fastapi.responses import HTMLResponse

    from jiefeng.api.routes.backtests import jobs

    lang = pages.lang_of(lang)
    svc = _services(request)

    async def build(principal: Principal) -> Response:
        html = await anyio.to_thread.run_sync(jobs(request, svc).report, backtest_id)
        if html is None:
            return _not_found(request, lang, principal, "no_report", backtest_id=backtest_id)
        return HTMLResponse(html, headers={
            "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "img-src data:; frame-ancestors 'none'"})

    return await _guarded(request, lang, "console.backtests.report", OPERATOR, backtest_id,
                          build)

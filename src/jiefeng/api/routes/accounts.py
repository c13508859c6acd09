"""Reading one account: state summary, explanation, event history. A customer token reads its
own account; operator, reviewer and admin keys read any."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from jiefeng.api.auth import STAFF_READERS, Guard
from jiefeng.api.models import AccountOut, EventPageOut
from jiefeng.api.params import AtQuery, parse_at
from jiefeng.api.problems import field_problem, problem_responses
from jiefeng.api.services import Services, services
from jiefeng.domain import core
from jiefeng.domain import holds as H
from jiefeng.domain.clock import local_date
from jiefeng.domain.money import format_fen
from jiefeng.explain.structured import plan_view, statement_view
from jiefeng.service.engine import AccountNotFound
from jiefeng.service.security import Principal

router = APIRouter(tags=["accounts"])

MAX_STATEMENTS_SHOWN = 12
MAX_EVENTS_PAGE = 500
# What a customer's copy of its history leaves out: who on the staff acted (`actor`), and
# the operator's own note on a manual hold, which is internal (the explanation says what the
# customer can do instead). An appeal decision's reason is for the customer and stays.
_STAFF_ONLY_FIELDS = ("actor",)
_INTERNAL_REASON_TYPES = frozenset({"manual_hold_placed", "manual_hold_released"})


def customer_copy(event: dict[str, Any]) -> dict[str, Any]:
    hidden = {*_STAFF_ONLY_FIELDS,
              *(("reason",) if event.get("type") in _INTERNAL_REASON_TYPES else ())}
    return {k: v for k, v in event.items() if k not in hidden}


def _statement(s: Any, ledger: Any, zone: Any) -> dict[str, Any]:
    return {**statement_view(s, ledger),
            "principal": format_fen(s.principal_fen),
            "paid_principal": format_fen(s.paid_principal_fen),
            "late_fee": format_fen(s.fees_fen),  # late fees billed on this statement
            "overdue_since": s.overdue_since.astimezone(zone).isoformat()
            if s.overdue_since else None}


@router.get("/v1/accounts/{account_id}", response_model=AccountOut,
            responses=problem_responses(401, 403, 404, 422), summary="Account state summary")
def account_summary(account_id: str, at: AtQuery = None,
                    principal: Principal = Depends(
                        Guard("accounts.read", STAFF_READERS, customer=True)),
                    svc: Services = Depends(services)) -> Any:
    """Status, active holds and the ledger as of `at` (default now). Money is decimal strings."""
    engine = svc.engine()
    state, scopes, when = engine.state_at(account_id, parse_at(at, svc.now()))
    if not state.opened:
        raise AccountNotFound(account_id)
    holds = core.active_holds(state, when, scopes)
    ledger = state.ledger
    zone = engine.policy.zone  # times leave in the policy's zone, as in explanations
    today = local_date(when, zone)
    return {
        "account_id": account_id,
        "at": when.astimezone(zone).isoformat(),
        "status": H.derive_status(holds),
        "can_purchase": not holds,
        "holds": [{"code": h.code, "since": h.since.astimezone(zone).isoformat(),
                   "releases_at": (h.releases_at.astimezone(zone).isoformat()
                                   if h.releases_at else None),
                   "closes_line": h.closes_line} for h in holds],
        "ledger": {
            "currency": engine.policy.currency,
            "credit_limit": format_fen(state.credit_limit_fen),
            "available_credit": format_fen(state.available_credit_fen),
            "unbilled": format_fen(ledger.unbilled_fen),
            "billed_owed": format_fen(ledger.billed_owed_fen),
            "credit_balance": format_fen(ledger.credit_balance_fen),
            "overdue": format_fen(ledger.past_due_minimum_fen()),  # the past-due minimum
            "days_past_due": ledger.days_past_due(today),
            "minimum_due": format_fen(ledger.minimum_due_fen()),
            "revolving": format_fen(ledger.revolving_fen),
            "installments": format_fen(ledger.installment_balance_fen),
            "total_owed": format_fen(ledger.total_owed_fen),
            "installment_plans": [plan_view(p) for p in ledger.plans.values()],
            "statements": [_statement(s, ledger, zone)
                           for s in ledger.recent_statements(MAX_STATEMENTS_SHOWN)],
        },
        "policy_version": engine.policy.version,
    }


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    first = accept.split(",")[0].split(";")[0].strip().lower()
    return first == "text/html"


@router.get(
    "/v1/accounts/{account_id}/explanation",
    responses={**problem_responses(401, 403, 404, 422),
               200: {"description": "The structured explanation (JSON); `format=text` gives "
                                    "text/plain, `format=html` or `Accept: text/html` gives "
                                    "HTML.",
                     "content": {"application/json": {"schema": {"type": "object"}},
                                 "text/plain": {"schema": {"type": "string"}},
                                 "text/html": {"schema": {"type": "string"}}}}},
    summary="Why the account is frozen and what the customer can do")
def explanation(account_id: str, request: Request, at: AtQuery = None,
                lang: Annotated[Literal["zh-CN", "en"], Query()] = "zh-CN",
                format: Annotated[Literal["json", "text", "html"] | None, Query()] = None,
                principal: Principal = Depends(
                    Guard("accounts.explanation", STAFF_READERS, customer=True)),
                svc: Services = Depends(services)) -> Any:
    """The same answer whenever it is asked for the same `at`. Names the policy version."""
    result = svc.engine().explain(account_id, parse_at(at, svc.now()))
    if format == "text":
        from jiefeng.explain.render import render_text

        return PlainTextResponse(render_text(result, lang))
    if format == "html" or (format is None and _wants_html(request)):
        from jiefeng.explain.render import render_html

        # The page is self-contained (inline CSS only): forbid everything else.
        return HTMLResponse(render_html(result, lang), headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "frame-ancestors 'none'"})
    return result


@router.get("/v1/accounts/{account_id}/events", response_model=EventPageOut,
            responses=problem_responses(401, 403, 404, 422), summary="Event history, paged")
def account_events(account_id: str,
                   after: Annotated[int, Query(ge=0, le=2**62,
                                               description="Cursor: the last seq seen")] = 0,
                   limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = 100,
                   principal: Principal = Depends(
                       Guard("accounts.events", STAFF_READERS, customer=True)),
                   svc: Services = Depends(services)) -> Any:
    """The account's events in arrival order. Customers do not see operator names (`actor`)
    nor the internal reason of a manual hold."""
    store = svc.store
    with store.read() as connection:
        if not store.account_exists(connection, account_id):
            raise field_problem(404, "account_id", f"no account {account_id!r}")
        page = store.account_events_page(connection, account_id, after, limit)
    items = []
    for seq, body in page:
        event = json.loads(body)
        if principal.is_customer:
            event = customer_copy(event)
        items.append({"seq": seq, "event": event})
    next_after = page[-1][0] if len(page) == limit else None
    return {"account_id": account_id, "events": items, "next_after": next_after}


@router.get("/v1/accounts/{account_id}/holds/{code}/trace",
            responses={**problem_responses(401, 403, 404, 422),
                       200: {"description": "The decision trace (schema `jiefeng.trace/1`)",
                             "content": {"application/json": {"schema": {"type": "object"}}}}},
            summary="The decision behind one active hold")
def hold_trace(account_id: str, code: str, at: AtQuery = None,
               principal: Principal = Depends(
                   Guard("accounts.trace", STAFF_READERS, customer=True)),
               svc: Services = Depends(services)) -> Any:
    """The rule that fired, the policy version, the parameters read with their values and the
    facts compared, for the hold `code` active at `at` (default now). A customer's copy of a
    confidential hold's trace (or one carrying an operator's note) names the cause only."""
    from jiefeng.service.engine import HoldNotActive

    try:
        found = svc.engine().traces(account_id, parse_at(at, svc.now()), code=code,
                                    for_customer=principal.is_customer)
    except HoldNotActive as error:
        raise field_problem(404, "code", f"no active {error.code!r} hold") from None
    return {**found["traces"][0], "at": found["at"]}

"""POST /v1/events: ingest a batch; POST /v1/accounts/{id}/authorize: a decision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from jiefeng.api.auth import Guard
from jiefeng.api.context import request_context
from jiefeng.api.models import AuthorizeIn, DecisionOut, EventsIn, EventsOut
from jiefeng.api.problems import (
    PROBLEM_JSON,
    Problem,
    field_problem,
    problem_body,
    problem_responses,
)
from jiefeng.api.services import Services, services
from jiefeng.domain.decisions import PurchaseRequest
from jiefeng.domain.money import parse_amount_fen
from jiefeng.service import operator as ops
from jiefeng.service.audit import command_fields, is_command
from jiefeng.service.ingest import ACCEPTED, DUPLICATE, REJECTED
from jiefeng.service.security import (
    Principal,
    actor_refusal,
    event_refusal,
    with_actor,
)

router = APIRouter(tags=["events"])

# Any key may call; each event then needs its own role (security.EVENT_ROLES).
EVENT_SENDERS = ("ingest", "operator", "reviewer")
MAX_REFUSALS_SHOWN = 50


def _refusals(principal: Principal, raws: list[Any], svc: Services) -> list[dict[str, str]]:
    """Every event of the batch the caller may not send, as {field, reason}."""
    errors = []
    for position, raw in enumerate(raws):
        reason = event_refusal(principal, raw)
        if reason is not None:
            errors.append({"field": f"events[{position}].type", "reason": reason})
            continue
        reason = actor_refusal(principal, raw)
        if reason is not None:
            errors.append({"field": f"events[{position}].actor", "reason": reason})
    # Only a batch with a decision pays for the look-up (ingest is the hot path).
    if not errors and any(isinstance(raw, dict) and raw.get("type") == "appeal_decided"
                          for raw in raws):
        for position, reason in ops.appeal_decision_refusals(svc.engine(), principal.name, raws):
            errors.append({"field": f"events[{position}].appeal_id", "reason": reason})
    return errors


@router.post(
    "/v1/events", response_model=EventsOut,
    responses={**problem_responses(401, 403, 413, 422),
               422: {"description": "Every event was rejected (or the body is malformed); "
                                    "`results` lists each event's field and reason.",
                     "content": {PROBLEM_JSON: {}}}},
    summary="Ingest events (1-1,000)")
def ingest_events(body: EventsIn, request: Request,
                  principal: Principal = Depends(Guard("events.ingest", EVENT_SENDERS)),
                  svc: Services = Depends(services)) -> Any:
    """Store and apply events. Each gets a result: `accepted`, `duplicate` (same event_id and
    content, applied once: retries are harmless) or `rejected` (field and reason). The accepted
    ones commit together. If every event is rejected the answer is a 422 problem that also
    carries `results`.

    Each event type needs its role (customer activity `ingest`, operator commands `operator`,
    `appeal_decided` `reviewer`); one event the key may not send refuses the whole batch (403,
    nothing applied). An operator command's `actor` is the key's name: leave it out, or a
    different one is refused. Commands are audited one entry each."""
    refusals = _refusals(principal, body.events, svc)
    if refusals:
        raise Problem(403, f"this key may not send {len(refusals)} of these events; nothing "
                           f"was applied; first: {refusals[0]['field']}: "
                           f"{refusals[0]['reason']}", refusals[:MAX_REFUSALS_SHOWN])
    raws = [with_actor(principal, raw) for raw in body.events]
    request_context(request.scope).commands = [
        command_fields(raw) for raw in raws if is_command(raw)]
    report = svc.engine().ingest(list(enumerate(raws)))
    counts = {status: report.count(status) for status in (ACCEPTED, DUPLICATE, REJECTED)}
    for status, count in counts.items():
        if count:
            svc.metrics.events.labels(status).inc(count)
    results = [r.to_dict() for r in report.results]
    if counts[REJECTED] == len(results):
        errors = [{"field": f"events[{r.position}].{r.field}", "reason": r.reason or ""}
                  for r in report.results][:50]
        detail = f"all {len(results)} events were rejected; " + "; ".join(
            f"{e['field']}: {e['reason']}" for e in errors[:3])
        context = request.scope["jiefeng.context"]
        return JSONResponse(
            problem_body(422, "Unprocessable Content", detail, errors, context.request_id,
                         {"results": results}),
            status_code=422, media_type=PROBLEM_JSON)
    return {"accepted": counts[ACCEPTED], "duplicate": counts[DUPLICATE],
            "rejected": counts[REJECTED], "results": results}


@router.post(
    "/v1/accounts/{account_id}/authorize", response_model=DecisionOut,
    responses=problem_responses(401, 403, 404, 422), summary="Would this purchase be approved?")
async def authorize(account_id: str, body: AuthorizeIn,
              principal: Principal = Depends(
                  Guard("accounts.authorize", ("ingest", "operator"))),
              svc: Services = Depends(services)) -> Any:
    """A decision with every code that applies; changes nothing (to record a purchase, ingest
    a `purchase` event). Names the policy version it was made under."""
    # Runs on the event loop, not the thread pool: the decision is a fraction of a millisecond
    # (one indexed read and a fold from cached state), less than a thread hop under load.
    try:
        request = PurchaseRequest(parse_amount_fen(body.amount), body.merchant_id,
                                  body.kind.value, body.password_ok)
    except ValueError as error:
        message = str(error)
        field, _, reason = message.partition(": ") if ": " in message else ("amount", "", message)
        raise field_problem(422, field, reason) from None
    decision = svc.engine().authorize(account_id, request, body.at)
    svc.metrics.decisions.labels("approved" if decision.approved else "declined").inc()
    return decision.to_dict()

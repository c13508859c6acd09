"""Appeals: the customer submits, reviewers work the queue oldest first and decide."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from jiefeng.api.auth import Guard
from jiefeng.api.context import request_context
from jiefeng.api.models import AppealDecisionIn, AppealIn, AppealListOut, AppealOut
from jiefeng.api.problems import problem_responses
from jiefeng.api.services import Services, services
from jiefeng.service import operator as ops
from jiefeng.service.security import Principal

router = APIRouter(tags=["appeals"])

AppealStatus = Literal["pending", "approved", "rejected", "void", "all"]


@router.post("/v1/accounts/{account_id}/appeals", status_code=201, response_model=AppealOut,
             responses=problem_responses(401, 403, 404, 422),
             summary="Appeal a hold (customer token)")
def submit_appeal(account_id: str, body: AppealIn, request: Request,
                  principal: Principal = Depends(
                      Guard("appeals.submit", customer=True, staff=False)),
                  svc: Services = Depends(services)) -> Any:
    """Creates an `appeal_submitted` event now. The hold must be active and appealable, with no
    appeal for it pending; otherwise a 422 problem names the field."""
    request_context(request.scope).reason = body.statement or None
    return ops.submit_appeal(svc.engine(), account_id, body.hold_code, body.statement,
                             body.purchase_event_ids)


@router.get("/v1/appeals", response_model=AppealListOut,
            responses=problem_responses(401, 403, 422), summary="Review queue, oldest first")
def appeal_queue(status: Annotated[AppealStatus, Query()] = "pending",
                 limit: Annotated[int, Query(ge=1, le=ops.MAX_QUEUE_PAGE)] = 100,
                 principal: Principal = Depends(
                     Guard("appeals.queue", ("reviewer", "operator"))),
                 svc: Services = Depends(services)) -> Any:
    """Each appeal with `sla_due_at` (15 days; 72 hours for cash_out_suspected and
    account_security) and whether the SLA is breached. `status=all` lists every appeal."""
    return {"appeals": ops.appeal_queue(svc.engine(), None if status == "all" else status,
                                        limit)}


@router.get("/v1/appeals/stats", responses=problem_responses(401, 403),
            summary="Overturn rate per hold code")
def appeal_stats(principal: Principal = Depends(Guard("appeals.stats", ("reviewer", "operator"))),
                 svc: Services = Depends(services)) -> dict[str, Any]:
    """Per hold code: decided, approved, rejected, pending, overturn_rate = approved / decided
    (null before any decision)."""
    return ops.appeal_stats(svc.engine())


@router.post("/v1/appeals/{appeal_id}/decision", response_model=AppealOut,
             responses=problem_responses(401, 403, 404, 409, 422),
             summary="Approve or reject an appeal (reviewer)")
def decide_appeal(appeal_id: str, body: AppealDecisionIn, request: Request,
                  principal: Principal = Depends(Guard("appeals.decide", ("reviewer",))),
                  svc: Services = Depends(services)) -> Any:
    """An `appeal_decided` event with actor = this key's name. Approve releases the hold at once;
    reject keeps it and the customer's explanation shows the reason. A reviewer who placed a
    manual hold on the account may not decide its appeals (403)."""
    request_context(request.scope).reason = body.reason or None
    return ops.decide_appeal(svc.engine(), principal.name, appeal_id, body.decision.value,
                             body.reason)

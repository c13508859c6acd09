"""Admin: the audit log and API keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from jiefeng.api.auth import Guard
from jiefeng.api.context import request_context
from jiefeng.api.models import AuditPageOut, KeyIn, KeyListOut, KeyOut, NewKeyOut, Reason
from jiefeng.api.problems import field_problem, problem_responses
from jiefeng.api.services import Services, services
from jiefeng.service.audit import MAX_PAGE
from jiefeng.service.security import Principal

router = APIRouter(tags=["admin"])


@router.get("/v1/audit", response_model=AuditPageOut, responses=problem_responses(401, 403, 422),
            summary="The audit log, oldest first")
def audit_log(after: Annotated[int, Query(ge=0, le=2**62, description="Cursor: last seq")] = 0,
              limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
              principal: Principal = Depends(Guard("audit.read")),
              svc: Services = Depends(services)) -> Any:
    """Who (key name, key id and roles, or customer account), what (action, method, path,
    target), when, why (the reason given), request id, and the status the caller got."""
    entries = svc.audit.page(after, limit)
    return {"entries": entries,
            "next_after": entries[-1]["seq"] if len(entries) == limit else None}


@router.post("/v1/keys", status_code=201, response_model=NewKeyOut,
             responses=problem_responses(401, 403, 422), summary="Create an API key")
def create_key(body: KeyIn, request: Request, principal: Principal = Depends(Guard("keys.create")),
               svc: Services = Depends(services)) -> Any:
    """The key is in this answer only; store it now."""
    try:
        new = svc.keys.create(body.roles, body.name, principal.name, svc.now())
    except ValueError as error:
        field, _, reason = str(error).partition(": ")
        raise field_problem(422, field, reason) from None
    request_context(request.scope).target = new.key_id
    record = svc.keys.get(new.key_id)
    assert record is not None
    return {**record, "key": new.key}


@router.get("/v1/keys", response_model=KeyListOut, responses=problem_responses(401, 403),
            summary="API keys (never their secrets)")
def list_keys(principal: Principal = Depends(Guard("keys.list")),
              svc: Services = Depends(services)) -> Any:
    return {"keys": svc.keys.list()}


@router.post("/v1/keys/{key_id}/revoke", response_model=KeyOut,
             responses=problem_responses(401, 403, 404), summary="Revoke an API key")
def revoke_key(key_id: str, request: Request, body: Reason | None = None,
               principal: Principal = Depends(Guard("keys.revoke")),
               svc: Services = Depends(services)) -> Any:
    """Takes effect on the next request. Revoking twice keeps the first revocation."""
    request_context(request.scope).reason = body.reason if body else None
    record = svc.keys.revoke(key_id, principal.name, svc.now())
    if record is None:
        raise field_problem(404, "key_id", f"no API key {key_id!r}")
    return record

"""Admin: the audit log, API keys, and revoking customer tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from jiefeng.api.auth import Guard
from jiefeng.api.context import request_context
from jiefeng.api.models import AuditPageOut, KeyIn, KeyListOut, KeyOut, NewKeyOut, Reason
from jiefeng.api.problems import field_problem, problem_responses
from jiefeng.api.services import Services, services
from jiefeng.service.audit import MAX_PAGE
from jiefeng.service.security import CredentialInvalid, LastAdmin, Principal

router = APIRouter(tags=["admin"])


class TokenRevokeIn(Reason):
    jti: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{16,64}$", description=(
        "The id of the token to revoke (its `jti` claim)."))
    token: str | None = Field(None, max_length=4096, description=(
        "Or the token itself. Give neither to revoke every token of the account issued so "
        "far."))


class TokenRevokedOut(BaseModel):
    account_id: str
    jti: str | None
    scope: str  # "token" | "all_tokens_issued_so_far"
    revoked_at: str
    revoked_by: str | None


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
             responses=problem_responses(401, 403, 404, 409), summary="Revoke an API key")
def revoke_key(key_id: str, request: Request, body: Reason | None = None,
               principal: Principal = Depends(Guard("keys.revoke")),
               svc: Services = Depends(services)) -> Any:
    """Takes effect on the next request. Revoking twice keeps the first revocation. The last
    active admin key is not revoked (409): create another admin key first."""
    request_context(request.scope).reason = body.reason if body else None
    try:
        record = svc.keys.revoke(key_id, principal.name, svc.now())
    except LastAdmin as error:
        field, _, reason = str(error).partition(": ")
        raise field_problem(409, field, reason) from None
    if record is None:
        raise field_problem(404, "key_id", f"no API key {key_id!r}")
    return record


@router.post("/v1/accounts/{account_id}/customer-tokens/revoke", response_model=TokenRevokedOut,
             responses=problem_responses(401, 403, 422),
             summary="Revoke a customer token, or all of an account's tokens (operator)")
def revoke_customer_tokens(account_id: str, request: Request, body: TokenRevokeIn | None = None,
                           principal: Principal = Depends(
                               Guard("tokens.revoke", ("operator",))),
                           svc: Services = Depends(services)) -> Any:
    """Refused from the next request on in this worker, within 1 second in the others. With
    `jti` or `token`: that token. With neither: every token of the account issued up to now
    (a lost phone); tokens issued later work. Revoking again is harmless."""
    body = body or TokenRevokeIn()
    request_context(request.scope).reason = body.reason
    if body.jti is not None and body.token is not None:
        raise field_problem(422, "jti", "give jti or token, not both")
    jti = body.jti
    if body.token is not None:
        try:
            claims = svc.tokens.claims(body.token)
        except CredentialInvalid as error:
            raise field_problem(422, "token", f"not a customer token of this service ({error})"
                                ) from None
        if claims.account_id != account_id:
            raise field_problem(422, "token", f"is for another account, not {account_id!r}")
        jti = claims.jti
    return svc.revocations.revoke_customer(account_id, jti, principal.name, body.reason,
                                           svc.now())

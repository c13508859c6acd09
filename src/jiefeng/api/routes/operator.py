"""Operator commands: maintenance windows, migration campaigns, manual holds, policy sweeps and
policy versions. Each command is an event with the operator's key name as `actor`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse

from jiefeng.api.auth import Guard
from jiefeng.api.context import request_context
from jiefeng.api.models import (
    CampaignListOut,
    CampaignOut,
    DryRunIn,
    DryRunOut,
    MaintenanceIn,
    ManualHoldIn,
    ManualHoldOut,
    ManualReleaseIn,
    MigrationCompleteIn,
    MigrationIn,
    PolicyListOut,
    PolicyOut,
    PolicyTextIn,
    PolicyValidationOut,
    Reason,
    SweepIn,
    SweepOut,
    WindowListOut,
    WindowOut,
)
from jiefeng.api.problems import Problem, field_problem, problem_responses
from jiefeng.api.services import Services, services
from jiefeng.policy.schema import PolicyInvalid, default_policy
from jiefeng.service import operator as ops
from jiefeng.service import policies
from jiefeng.service.security import Principal

router = APIRouter(tags=["operator"])

OPERATOR = ("operator",)


def _why(request: Request, reason: str | None) -> None:
    request_context(request.scope).reason = reason or None


# --- maintenance windows ------------------------------------------------------------------------


@router.post("/v1/maintenance-windows", status_code=201, response_model=WindowOut,
             responses=problem_responses(401, 403, 409, 422),
             summary="Schedule a maintenance window")
def create_window(body: MaintenanceIn, request: Request,
                  principal: Principal = Depends(Guard("maintenance.create", OPERATOR)),
                  svc: Services = Depends(services)) -> Any:
    """Accounts (all, or one segment) are frozen from `start` to `end` (at most 7 days);
    repayment keeps working. Statement due dates falling inside move past the window."""
    _why(request, body.reason)
    window = ops.schedule_maintenance(svc.engine(), principal.name, body.start, body.end,
                                      body.segment, body.window_id)
    request_context(request.scope).target = window["window_id"]
    return window


@router.get("/v1/maintenance-windows", response_model=WindowListOut,
            responses=problem_responses(401, 403), summary="Maintenance windows")
def list_windows(principal: Principal = Depends(Guard("maintenance.list", OPERATOR)),
                 svc: Services = Depends(services)) -> Any:
    return {"windows": ops.list_maintenance(svc.engine())}


@router.post("/v1/maintenance-windows/{window_id}/cancel", response_model=WindowOut,
             responses=problem_responses(401, 403, 404, 409, 422),
             summary="Cancel a maintenance window")
def cancel_window(window_id: str, request: Request, body: Reason | None = None,
                  principal: Principal = Depends(Guard("maintenance.cancel", OPERATOR)),
                  svc: Services = Depends(services)) -> Any:
    _why(request, body.reason if body else None)
    return ops.cancel_maintenance(svc.engine(), principal.name, window_id)


# --- migration campaigns ------------------------------------------------------------------------


@router.post("/v1/migrations", status_code=201, response_model=CampaignOut,
             responses=problem_responses(401, 403, 409, 422),
             summary="Start a product migration campaign")
def start_migration(body: MigrationIn, request: Request,
                    principal: Principal = Depends(Guard("migrations.start", OPERATOR)),
                    svc: Services = Depends(services)) -> Any:
    """Give `account_ids` or `segment` (exactly one). The accounts are frozen until completed."""
    _why(request, body.reason)
    campaign = ops.start_migration(svc.engine(), principal.name, body.campaign_id,
                                   body.account_ids, body.segment)
    request_context(request.scope).target = campaign["campaign_id"]
    return campaign


@router.post("/v1/migrations/{campaign_id}/complete", response_model=CampaignOut,
             responses=problem_responses(401, 403, 404, 409, 422),
             summary="Complete a campaign (all, or some accounts)")
def complete_migration(campaign_id: str, request: Request,
                       body: MigrationCompleteIn | None = None,
                       principal: Principal = Depends(Guard("migrations.complete", OPERATOR)),
                       svc: Services = Depends(services)) -> Any:
    _why(request, body.reason if body else None)
    return ops.complete_migration(svc.engine(), principal.name, campaign_id,
                                  body.account_ids if body else None)


@router.get("/v1/migrations", response_model=CampaignListOut,
            responses=problem_responses(401, 403), summary="Migration campaigns")
def list_migrations(principal: Principal = Depends(Guard("migrations.list", OPERATOR)),
                    svc: Services = Depends(services)) -> Any:
    return {"campaigns": ops.list_migrations(svc.engine())}


# --- manual holds -------------------------------------------------------------------------------


@router.post("/v1/accounts/{account_id}/manual-holds", status_code=201,
             response_model=ManualHoldOut, responses=problem_responses(401, 403, 404, 422),
             summary="Place a manual hold")
def place_manual_hold(account_id: str, body: ManualHoldIn, request: Request,
                      principal: Principal = Depends(Guard("manual_holds.place", OPERATOR)),
                      svc: Services = Depends(services)) -> Any:
    """A `manual_review` hold. The reason is internal: staff and the audit log see it, a
    customer token never does. The operator who places it may not decide the account's
    appeals."""
    _why(request, body.reason)
    return ops.place_manual_hold(svc.engine(), principal.name, account_id, body.reason)


@router.post("/v1/accounts/{account_id}/manual-holds/release", response_model=ManualHoldOut,
             responses=problem_responses(401, 403, 404, 422), summary="Release a manual hold")
def release_manual_hold(account_id: str, request: Request, body: ManualReleaseIn | None = None,
                        principal: Principal = Depends(
                            Guard("manual_holds.release", OPERATOR)),
                        svc: Services = Depends(services)) -> Any:
    reason = body.reason if body else ""
    _why(request, reason)
    return ops.release_manual_hold(svc.engine(), principal.name, account_id, reason)


# --- policy sweeps ------------------------------------------------------------------------------


@router.post("/v1/sweeps/dry-run", response_model=DryRunOut,
             responses=problem_responses(401, 403, 422), summary="Who would a sweep close?")
def sweep_dry_run(body: DryRunIn, request: Request,
                  principal: Principal = Depends(Guard("sweeps.dry_run", OPERATOR)),
                  svc: Services = Depends(services)) -> Any:
    """Evaluates `criteria` over every account's features at `at` (default now). Returns the
    count, up to 20 sample accounts with the feature values the criteria read, counts by
    status, and a token (valid 1 hour) that POST /v1/sweeps requires for these criteria."""
    now = svc.now()
    at = body.at or now
    engine = svc.engine()
    result = ops.sweep_dry_run(engine, body.criteria, body.reopen_criteria, at)
    token, expires = ops.sweep_token(svc.sweep_key, body.criteria, body.reopen_criteria, at, now)
    _why(request, body.criteria)
    zone = engine.policy.zone
    return {"at": at.astimezone(zone).isoformat(), "count": result.count,
            "already_closed": result.already_closed,
            "accounts_evaluated": result.accounts_evaluated,
            "not_evaluable": result.not_evaluable,
            "by_status": dict(sorted(result.by_status.items())), "sample": result.sample,
            "token": token, "token_expires_at": expires.astimezone(zone).isoformat(),
            "policy_version": engine.policy.version}


@router.post("/v1/sweeps", status_code=201, response_model=SweepOut,
             responses=problem_responses(401, 403, 409, 422),
             summary="Apply a policy sweep (needs a dry-run token)")
def apply_sweep(body: SweepIn, request: Request,
                principal: Principal = Depends(Guard("sweeps.apply", OPERATOR)),
                svc: Services = Depends(services)) -> Any:
    """A `policy_sweep` event now: matching accounts are closed (`policy_tightening`) and reopen
    when `reopen_criteria` hold. Refused (422, field dry_run_token) without a token from a dry
    run of exactly these criteria in the last hour, or with one already used (single-use)."""
    _why(request, body.reason or body.criteria)
    sweep = ops.apply_sweep(svc.engine(), principal.name, svc.sweep_key, body.sweep_id,
                            body.criteria, body.reopen_criteria, body.dry_run_token,
                            svc.revocations)
    request_context(request.scope).target = sweep["sweep_id"]
    return sweep


# --- policy versions ----------------------------------------------------------------------------

_POLICY_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/toml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
            "application/json": {"schema": PolicyTextIn.model_json_schema()},
        },
    }
}


async def _policy_text(request: Request) -> str:
    """The TOML text: the raw body (application/toml, text/plain) or {"toml": "..."}."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if not raw.strip():
        raise Problem(422, "send the policy text (TOML) as the body",
                      [{"field": "(file)", "reason": "is empty"}])
    if content_type == "application/json":
        try:
            return PolicyTextIn.model_validate_json(raw).toml
        except ValueError:
            raise Problem(422, 'send {"toml": "<policy text>"}',
                          [{"field": "toml", "reason": "is required (a string)"}]) from None
    if content_type not in ("application/toml", "text/plain", ""):
        raise Problem(415, "send the policy as application/toml, text/plain or JSON "
                           '{"toml": "..."}')
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(422, "the policy text is not UTF-8",
                      [{"field": "(file)", "reason": "not UTF-8"}]) from None


def _invalid(error: PolicyInvalid) -> Problem:
    errors = [{"field": f, "reason": r} for f, r in error.problems][:50]
    return Problem(422, f"invalid policy: {error}"[:500], errors)


@router.post("/v1/policies", status_code=201, response_model=PolicyOut,
             openapi_extra=_POLICY_BODY, responses=problem_responses(401, 403, 409, 415, 422),
             summary="Upload a policy version (validated)")
async def upload_policy(request: Request,
                        principal: Principal = Depends(Guard("policies.upload", OPERATOR)),
                        svc: Services = Depends(services)) -> Any:
    """Stores a validated policy under its `version`. The same text again answers 200; other
    text under a known version is refused (409). Uploading does not activate."""
    import anyio

    text = await _policy_text(request)
    try:
        uploaded = await anyio.to_thread.run_sync(policies.upload, svc.store, text,
                                                  principal.name, svc.now())
    except PolicyInvalid as error:
        raise _invalid(error) from None
    request_context(request.scope).target = uploaded.record["version"]
    return JSONResponse(uploaded.record, status_code=201 if uploaded.created else 200)


@router.post("/v1/policies/validate", response_model=PolicyValidationOut,
             openapi_extra=_POLICY_BODY, responses=problem_responses(401, 403, 415, 422),
             summary="Check a policy without storing it")
async def validate_policy(request: Request,
                          principal: Principal = Depends(Guard("policies.validate", OPERATOR)),
                          svc: Services = Depends(services)) -> Any:
    """`valid` with the version, or each field and reason."""
    text = await _policy_text(request)
    try:
        policy = policies.validate(text)
    except PolicyInvalid as error:
        return {"valid": False, "version": None,
                "errors": [{"field": f, "reason": r} for f, r in error.problems][:50]}
    return {"valid": True, "version": policy.version, "errors": []}


@router.post("/v1/policies/{version}/activate", response_model=PolicyOut,
             responses=problem_responses(401, 403, 404), summary="Make a version the active one")
def activate_policy(version: str, request: Request, body: Reason | None = Body(None),
                    principal: Principal = Depends(Guard("policies.activate", OPERATOR)),
                    svc: Services = Depends(services)) -> Any:
    """From now on every decision, explanation and fold uses this version and names it.

    The activation is a `policy_activated` event in the log, so a replay switches policy at
    the same moment."""
    _why(request, body.reason if body else None)
    now = svc.now()
    record = policies.activate(svc.store, version, principal.name, now)
    report = svc.engine().ingest_events(
        [policies.activation_event(svc.store, version, principal.name, now)])
    if report.rejected:  # pragma: no cover - the event is built from a stored version
        rejected = next(r for r in report.results if r.status == "rejected")
        raise field_problem(422, rejected.field or "version", rejected.reason or "rejected")
    return record


@router.get("/v1/policies", response_model=PolicyListOut, responses=problem_responses(401, 403),
            summary="Policy versions")
def list_policies(principal: Principal = Depends(Guard("policies.list", OPERATOR)),
                  svc: Services = Depends(services)) -> Any:
    stored = policies.list_all(svc.store)
    builtin = default_policy().version
    active = next((p["version"] for p in stored if p["active"]), builtin)
    return {"active_version": active, "builtin_version": builtin, "policies": stored}


"""Operator and reviewer use cases: maintenance windows, migration campaigns, manual holds,
policy sweeps (dry run, then apply), and appeals (customer submission, review queue,
decisions, statistics).

Every command becomes an event in the log through `Engine.ingest`, carrying its actor, so a
replay reproduces it. Ids and times are set here, on the server: `at` is the service clock's
now, event ids are random. Errors name the field and say what to do; their `status` is the
HTTP status the API answers with.

Why one long module: each operator command is a short function turning a request into an
event with its actor; splitting them would scatter one contract (docs/api.md, operator commands).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, func, select

from jiefeng.domain import holds as H
from jiefeng.domain.effects import HOLD_PLACED
from jiefeng.policy.criteria import CriteriaError, compile_criteria
from jiefeng.service.dry_run import evaluate_sweep
from jiefeng.service.engine import Engine
from jiefeng.service.ingest import REJECTED, IngestReport
from jiefeng.service.security import SWEEP_DRY_RUN_TOKEN, Revocations
from jiefeng.store import schema as t

SWEEP_TOKEN_TTL = dt.timedelta(hours=1)
SWEEP_SAMPLE_SIZE = 20
MAX_QUEUE_PAGE = 500


class OperationError(ValueError):
    """A refused command; `field` and `reason` tell the caller what to change."""

    status = 422

    def __init__(self, field_name: str, reason: str):
        self.field = field_name
        self.reason = reason
        super().__init__(f"{field_name}: {reason}")


class Conflict(OperationError):
    status = 409


class NotFound(OperationError):
    status = 404


class Forbidden(OperationError):
    status = 403


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def _iso(value: dt.datetime | None, zone: dt.tzinfo) -> str | None:
    """Times leave in the policy's zone (as explanations do); the instant is the same."""
    return value.astimezone(zone).isoformat() if value is not None else None


def _text_time(value: str | None, zone: dt.tzinfo) -> str | None:
    return t.parse_utc_text(value).astimezone(zone).isoformat() if value else None


def ingest_one(engine: Engine, raw: dict[str, Any]) -> IngestReport:
    """Ingest one server-built event; a rejection becomes an OperationError naming the field."""
    report = engine.ingest([(0, raw)])
    result = report.results[0]
    if result.status == REJECTED:
        raise OperationError(result.field or "(event)", result.reason or "rejected")
    return report


def require_account(engine: Engine, account_id: str) -> None:
    with engine.store.read() as connection:
        if not engine.store.account_exists(connection, account_id):
            raise NotFound("account_id", f"no account {account_id!r}")


# --- maintenance windows ------------------------------------------------------------------------


def window_dict(window: Any, now: dt.datetime, zone: dt.tzinfo) -> dict[str, Any]:
    if window.cancelled_at is not None:
        status = "cancelled"
    elif now < window.start:
        status = "scheduled"
    elif now < window.end:
        status = "active"
    else:
        status = "ended"
    return {
        "window_id": window.window_id, "start": _iso(window.start, zone),
        "end": _iso(window.end, zone), "segment": window.segment, "status": status,
        "scheduled_at": _iso(window.known_at, zone),
        "cancelled_at": _iso(window.cancelled_at, zone), "actor": window.actor,
        "event_id": window.event_id,
    }


def schedule_maintenance(engine: Engine, actor: str, start: dt.datetime, end: dt.datetime,
                         segment: str | None, window_id: str | None) -> dict[str, Any]:
    window_id = window_id or new_id("mw")
    if window_id in engine.scopes().windows:
        raise Conflict("window_id", f"window {window_id!r} already exists")
    now = engine.now()
    raw = {"event_id": new_id("op"), "type": "maintenance_scheduled", "at": now.isoformat(),
           "actor": actor, "window_id": window_id, "start": start.isoformat(),
           "end": end.isoformat()}
    if segment is not None:
        raw["segment"] = segment
    ingest_one(engine, raw)
    return window_dict(engine.scopes().windows[window_id], now, engine.policy.zone)


def cancel_maintenance(engine: Engine, actor: str, window_id: str) -> dict[str, Any]:
    window = engine.scopes().windows.get(window_id)
    if window is None:
        raise NotFound("window_id", f"no maintenance window {window_id!r}")
    if window.cancelled_at is not None:
        raise Conflict("window_id", f"window {window_id!r} is already cancelled")
    now = engine.now()
    ingest_one(engine, {"event_id": new_id("op"), "type": "maintenance_cancelled",
                        "at": now.isoformat(), "actor": actor, "window_id": window_id})
    return window_dict(engine.scopes().windows[window_id], now, engine.policy.zone)


def list_maintenance(engine: Engine) -> list[dict[str, Any]]:
    now = engine.now()
    windows = sorted(engine.scopes().windows.values(), key=lambda w: (w.start, w.window_id))
    return [window_dict(w, now, engine.policy.zone) for w in windows]


# --- migration campaigns ------------------------------------------------------------------------


def campaign_dict(campaign: Any, zone: dt.tzinfo) -> dict[str, Any]:
    return {
        "campaign_id": campaign.campaign_id,
        "started_at": _iso(campaign.started_at, zone),
        "segment": campaign.segment,
        "account_count": len(campaign.account_ids) if campaign.account_ids is not None else None,
        "status": "completed" if campaign.completed_all_at is not None else "running",
        "completed_at": _iso(campaign.completed_all_at, zone),
        "completed_account_count": len(campaign.completed_accounts),
        "actor": campaign.actor,
        "event_id": campaign.event_id,
    }


def start_migration(engine: Engine, actor: str, campaign_id: str | None,
                    account_ids: list[str] | None, segment: str | None) -> dict[str, Any]:
    campaign_id = campaign_id or new_id("mig")
    if campaign_id in engine.scopes().campaigns:
        raise Conflict("campaign_id", f"campaign {campaign_id!r} already exists")
    raw: dict[str, Any] = {"event_id": new_id("op"), "type": "migration_started",
                           "at": engine.now().isoformat(), "actor": actor,
                           "campaign_id": campaign_id}
    if account_ids is not None:
        raw["account_ids"] = account_ids
    if segment is not None:
        raw["segment"] = segment
    ingest_one(engine, raw)
    return campaign_dict(engine.scopes().campaigns[campaign_id], engine.policy.zone)


def complete_migration(engine: Engine, actor: str, campaign_id: str,
                       account_ids: list[str] | None) -> dict[str, Any]:
    campaign = engine.scopes().campaigns.get(campaign_id)
    if campaign is None:
        raise NotFound("campaign_id", f"no migration campaign {campaign_id!r}")
    if campaign.completed_all_at is not None:
        raise Conflict("campaign_id", f"campaign {campaign_id!r} already ended")
    raw: dict[str, Any] = {"event_id": new_id("op"), "type": "migration_completed",
                           "at": engine.now().isoformat(), "actor": actor,
                           "campaign_id": campaign_id}
    if account_ids is not None:
        raw["account_ids"] = account_ids
    ingest_one(engine, raw)
    return campaign_dict(engine.scopes().campaigns[campaign_id], engine.policy.zone)


def list_migrations(engine: Engine) -> list[dict[str, Any]]:
    campaigns = sorted(engine.scopes().campaigns.values(),
                       key=lambda c: (c.started_at, c.campaign_id))
    return [campaign_dict(c, engine.policy.zone) for c in campaigns]


# --- manual holds -------------------------------------------------------------------------------


def place_manual_hold(engine: Engine, actor: str, account_id: str, reason: str) -> dict[str, Any]:
    require_account(engine, account_id)
    event_id = new_id("op")
    now = engine.now()
    ingest_one(engine, {"event_id": event_id, "type": "manual_hold_placed", "at": now.isoformat(),
                        "actor": actor, "account_id": account_id, "reason": reason})
    return {"account_id": account_id, "code": H.MANUAL_REVIEW, "event_id": event_id,
            "at": _iso(now, engine.policy.zone), "actor": actor, "reason": reason}


def release_manual_hold(engine: Engine, actor: str, account_id: str,
                        reason: str) -> dict[str, Any]:
    require_account(engine, account_id)
    event_id = new_id("op")
    now = engine.now()
    ingest_one(engine, {"event_id": event_id, "type": "manual_hold_released",
                        "at": now.isoformat(), "actor": actor, "account_id": account_id,
                        "reason": reason})
    return {"account_id": account_id, "code": H.MANUAL_REVIEW, "event_id": event_id,
            "at": _iso(now, engine.policy.zone), "actor": actor, "reason": reason,
            "released": True}


# --- policy sweeps ------------------------------------------------------------------------------


def _compile(field_name: str, text: str) -> Any:
    try:
        return compile_criteria(text)
    except CriteriaError as error:
        raise OperationError(field_name, str(error)) from None


def _criteria_digest(criteria: str, reopen_criteria: str) -> str:
    return hashlib.sha256(json.dumps([criteria, reopen_criteria]).encode("utf-8")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sweep_token(key: bytes, criteria: str, reopen_criteria: str, at: dt.datetime,
                now: dt.datetime) -> tuple[str, dt.datetime]:
    """An HMAC over the sweep's criteria and the dry run's `at`, valid for one hour and once:
    its id (`jti`) is spent when a sweep applies it."""
    expires = now + SWEEP_TOKEN_TTL
    payload = json.dumps({"d": _criteria_digest(criteria, reopen_criteria), "at": at.isoformat(),
                          "exp": int(expires.timestamp()), "jti": secrets.token_urlsafe(16)},
                         separators=(",", ":"), sort_keys=True)
    body = _b64(payload.encode("utf-8"))
    mac = hmac.new(key, body.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{body}.{mac}", expires


def check_sweep_token(key: bytes, token: str, criteria: str, reopen_criteria: str,
                      now: dt.datetime) -> str:
    """The token's id if it is valid for these criteria now (it may still have been spent)."""
    body, _, mac = token.partition(".")
    expected = hmac.new(key, body.encode("ascii", "replace"), hashlib.sha256).hexdigest()
    if not mac or not hmac.compare_digest(mac, expected):
        raise OperationError("dry_run_token", "not a token from POST /v1/sweeps/dry-run")
    try:
        payload = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        raise OperationError("dry_run_token", "not a token from a dry run") from None
    if payload.get("d") != _criteria_digest(criteria, reopen_criteria):
        raise OperationError("dry_run_token", "was issued for different criteria; "
                                              "dry-run these criteria first")
    if not isinstance(payload.get("exp"), int) or payload["exp"] <= now.timestamp():
        raise OperationError("dry_run_token", "expired (valid 1 hour); run the dry run again")
    if not isinstance(payload.get("jti"), str) or not payload["jti"]:
        raise OperationError("dry_run_token", "not a token from a dry run")
    return str(payload["jti"])


@dataclass
class DryRun:
    count: int = 0
    already_closed: int = 0
    accounts_evaluated: int = 0
    not_evaluable: int = 0  # the criteria overflow on their features: the sweep skips them
    by_status: Counter = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)


def sweep_dry_run(engine: Engine, criteria: str, reopen_criteria: str,
                  at: dt.datetime, use_table: bool = True) -> DryRun:
    """Which accounts a sweep at `at` would close: `criteria` over each account's features at
    `at`, as the fold does when the sweep is applied (SQL over the feature table where its rows
    are exact, the fold elsewhere: see jiefeng.service.dry_run)."""
    compiled = _compile("criteria", criteria)
    _compile("reopen_criteria", reopen_criteria)
    result = DryRun()
    evaluate_sweep(engine, compiled, at, result, SWEEP_SAMPLE_SIZE, use_table)
    return result


def apply_sweep(engine: Engine, actor: str, key: bytes, sweep_id: str | None, criteria: str,
                reopen_criteria: str, dry_run_token: str,
                revocations: Revocations) -> dict[str, Any]:
    now = engine.now()
    _compile("criteria", criteria)
    _compile("reopen_criteria", reopen_criteria)
    jti = check_sweep_token(key, dry_run_token, criteria, reopen_criteria, now)
    sweep_id = sweep_id or new_id("sweep")
    if any(s.sweep_id == sweep_id for s in engine.scopes().sweeps):
        raise Conflict("sweep_id", f"sweep {sweep_id!r} already exists")
    # Spent before the sweep is applied, so two concurrent uses cannot both apply; given
    # back if the sweep is refused, so a refusal does not cost a new dry run.
    if not revocations.spend(jti, SWEEP_DRY_RUN_TOKEN, actor, now):
        raise OperationError("dry_run_token", "was already used (single-use); run the dry run "
                                              "again")
    event_id = new_id("op")
    try:
        report = ingest_one(engine, {"event_id": event_id, "type": "policy_sweep",
                                     "at": now.isoformat(), "actor": actor,
                                     "sweep_id": sweep_id, "criteria": criteria,
                                     "reopen_criteria": reopen_criteria})
    except BaseException:
        revocations.unspend(jti, SWEEP_DRY_RUN_TOKEN)
        raise
    closed = sum(1 for e in report.effects
                 if e.kind == HOLD_PLACED and e.code == H.POLICY_TIGHTENING)
    return {"sweep_id": sweep_id, "event_id": event_id, "at": _iso(now, engine.policy.zone),
            "actor": actor,
            "criteria": criteria, "reopen_criteria": reopen_criteria, "accounts_closed": closed}


# --- appeals ------------------------------------------------------------------------------------


def appeal_dict(row: dict[str, Any], now: dt.datetime, zone: dt.tzinfo) -> dict[str, Any]:
    due = t.parse_utc_text(row["sla_due_at_utc"])
    return {
        "appeal_id": row["appeal_id"],
        "account_id": row["account_id"],
        "hold_code": row["hold_code"],
        "status": row["status"],
        "statement": row["statement"],
        "submitted_at": _text_time(row["submitted_at_utc"], zone),
        "sla_due_at": due.astimezone(zone).isoformat(),
        "sla_breached": row["status"] == "pending" and now > due,
        "decided_at": _text_time(row["decided_at_utc"], zone),
        "decided_by": row["decided_by"],
        "reason": row["reason"],
    }


def get_appeal(engine: Engine, appeal_id: str) -> dict[str, Any]:
    with engine.store.read() as connection:
        row = engine.store.get_appeal(connection, appeal_id)
    if row is None:
        raise NotFound("appeal_id", f"no appeal {appeal_id!r}")
    return row


def submit_appeal(engine: Engine, account_id: str, hold_code: str, statement: str,
                  purchase_event_ids: list[str]) -> dict[str, Any]:
    require_account(engine, account_id)
    appeal_id = new_id("ap")
    ingest_one(engine, {"event_id": new_id("cust"), "type": "appeal_submitted",
                        "at": engine.now().isoformat(), "account_id": account_id,
                        "appeal_id": appeal_id, "hold_code": hold_code, "statement": statement,
                        "purchase_event_ids": purchase_event_ids})
    return appeal_dict(get_appeal(engine, appeal_id), engine.now(), engine.policy.zone)


def placed_manual_hold(engine: Engine, account_id: str, actor: str) -> bool:
    """Has `actor` ever placed a manual hold on this account?"""
    query = select(func.count()).select_from(t.events).where(
        t.events.c.account_id == account_id, t.events.c.type == "manual_hold_placed",
        t.events.c.actor == actor)
    with engine.store.read() as connection:
        return connection.execute(query).scalar_one() > 0


def appeal_decision_refusals(engine: Engine, actor: str,
                             raws: list[Any]) -> list[tuple[int, str]]:
    """(position, reason) of each `appeal_decided` event in a batch that `actor` may not
    send: whoever placed a manual hold on the account (before, or earlier in this batch) does
    not decide its appeals, whichever endpoint the decision comes through."""
    placed_here = {raw.get("account_id") for raw in raws
                   if isinstance(raw, dict) and raw.get("type") == "manual_hold_placed"}
    refusals = []
    for position, raw in enumerate(raws):
        if not isinstance(raw, dict) or raw.get("type") != "appeal_decided":
            continue
        account_id = raw.get("account_id")
        appeal_id = raw.get("appeal_id")
        if isinstance(appeal_id, str):
            with engine.store.read() as connection:
                row = engine.store.get_appeal(connection, appeal_id)
            if row is not None:
                account_id = row["account_id"]
        if not isinstance(account_id, str):
            continue  # validation rejects it (unknown appeal, no account)
        if account_id in placed_here or placed_manual_hold(engine, account_id, actor):
            refusals.append((position, "you placed a manual hold on this account; another "
                                       "reviewer must decide its appeals"))
    return refusals


def decide_appeal(engine: Engine, actor: str, appeal_id: str, decision: str,
                  reason: str) -> dict[str, Any]:
    row = get_appeal(engine, appeal_id)
    if row["status"] != "pending":
        raise Conflict("appeal_id", f"the appeal is already {row['status']}")
    if decision == "reject" and not reason.strip():
        raise OperationError("reason", "say why: the customer sees this reason")
    if placed_manual_hold(engine, row["account_id"], actor):
        raise Forbidden("appeal_id", "you placed a manual hold on this account; "
                                     "another reviewer must decide its appeals")
    ingest_one(engine, {"event_id": new_id("op"), "type": "appeal_decided",
                        "at": engine.now().isoformat(), "actor": actor, "appeal_id": appeal_id,
                        "decision": decision, "reason": reason,
                        "account_id": row["account_id"]})
    return appeal_dict(get_appeal(engine, appeal_id), engine.now(), engine.policy.zone)


def appeal_queue(engine: Engine, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Oldest first, with each appeal's SLA due time."""
    assert 1 <= limit <= MAX_QUEUE_PAGE
    with engine.store.read() as connection:
        rows = engine.store.list_appeals(connection, status, limit)
    now = engine.now()
    return [appeal_dict(row, now, engine.policy.zone) for row in rows]


def appeal_stats(engine: Engine) -> dict[str, Any]:
    """Per hold code: decided, approved, rejected, pending and overturn rate (approved/decided)."""
    a = t.appeals
    query = select(
        a.c.hold_code,
        func.sum(case((a.c.status == "approved", 1), else_=0)),
        func.sum(case((a.c.status == "rejected", 1), else_=0)),
        func.sum(case((a.c.status == "pending", 1), else_=0)),
    ).group_by(a.c.hold_code).order_by(a.c.hold_code)
    with engine.store.read() as connection:
        rows = connection.execute(query).all()
    by_code = {}
    total_approved = total_decided = 0
    for code, approved, rejected, pending in rows:
        approved, rejected, pending = int(approved or 0), int(rejected or 0), int(pending or 0)
        decided = approved + rejected
        total_approved += approved
        total_decided += decided
        by_code[code] = {"decided": decided, "approved": approved, "rejected": rejected,
                         "pending": pending,
                         "overturn_rate": round(approved / decided, 4) if decided else None}
    return {"by_hold_code": by_code,
            "overall": {"decided": total_decided, "approved": total_approved,
                        "overturn_rate": (round(total_approved / total_decided, 4)
                                          if total_decided else None)}}

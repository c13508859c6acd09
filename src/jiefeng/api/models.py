"""Request and response bodies. Requests forbid unknown fields (a typo is an error, not a
silently ignored option); times are RFC 3339 with an offset; money is a decimal string.

Why one long module: every request and response body of the HTTP contract in one place,
so the OpenAPI document and docs/api.md are checked against one file.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from jiefeng.domain import events as ev
from jiefeng.service.security import ROLES
from jiefeng.store.sql import MAX_BATCH_EVENTS

MIN_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MAX_TIME = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
MAX_CRITERIA_CHARS = 2_000
MAX_TOKEN_CHARS = 1_000


def check_time_range(value: dt.datetime) -> dt.datetime:
    """Keep times where every computation stays in range (no year-10000 overflow)."""
    try:
        in_range = MIN_TIME <= value <= MAX_TIME
    except OverflowError:
        in_range = False
    if not in_range:
        raise ValueError("must be between 2000-01-01 and 2200-01-01")
    return value


def _require_text(value: Any) -> Any:
    if not isinstance(value, (str, dt.datetime)):
        raise ValueError("must be an RFC 3339 timestamp string with an offset")
    return value


# RFC 3339 with an offset (kept as sent), within the range above.
Time = Annotated[AwareDatetime, BeforeValidator(_require_text), AfterValidator(check_time_range)]
Identifier = ev.Identifier
Text = ev.Text
Criteria = Annotated[str, Field(min_length=1, max_length=MAX_CRITERIA_CHARS)]
Role = Literal["ingest", "reviewer", "operator", "admin"]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- events and decisions -----------------------------------------------------------------------


class EventsIn(Body):
    events: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_BATCH_EVENTS,
        description="1 to 1,000 events in the wire format of docs/events.md.")


class EventResult(BaseModel):
    position: int
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None
    field: str | None = None
    reason: str | None = None


class EventsOut(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    results: list[EventResult]


class AuthorizeIn(Body):
    amount: str = Field(pattern=r"^[0-9]{1,11}(\.[0-9]{1,2})?$", examples=["120.50"],
                        description="Decimal CNY, at most two places.")
    merchant_id: Identifier = "unknown"
    kind: ev.PurchaseKind = ev.PurchaseKind.PURCHASE
    password_ok: bool | None = Field(None, strict=True)
    at: Time | None = None


class DecisionOut(BaseModel):
    account_id: str
    at: str
    approved: bool
    decision: Literal["approved", "declined"]
    primary_code: str | None = Field(
        description="The code to tell the customer first (the highest in precedence)")
    codes: list[str]
    hold_codes: list[str]
    available_credit: str
    policy_version: str


# --- accounts -----------------------------------------------------------------------------------


class HoldOut(BaseModel):
    code: str
    since: str
    releases_at: str | None
    closes_line: bool


class StatementOut(BaseModel):
    statement_date: str
    due_date: str
    principal: str
    paid_principal: str
    late_fee: str
    owed: str
    overdue_since: str | None
    new_balance: str
    minimum_due: str
    paid: str  # repayments received since the statement
    minimum_unpaid: str
    revolving_interest: str
    fees: str
    installments: str
    status: Literal["open", "paid_in_full", "minimum_met", "below_minimum", "paid_late"]


class InstallmentPlanOut(BaseModel):
    plan_id: str
    purchase_event_id: str
    months: int
    months_left: int
    remaining_principal: str
    remaining_fee: str
    next_installment: str


class LedgerOut(BaseModel):
    currency: str
    credit_limit: str
    available_credit: str
    unbilled: str
    billed_owed: str
    credit_balance: str
    overdue: str
    days_past_due: int
    minimum_due: str
    revolving: str
    installments: str
    total_owed: str
    installment_plans: list[InstallmentPlanOut]
    statements: list[StatementOut]


class AccountOut(BaseModel):
    account_id: str
    at: str
    status: Literal["active", "frozen", "closed"]
    can_purchase: bool
    holds: list[HoldOut]
    ledger: LedgerOut
    policy_version: str


class EventPageItem(BaseModel):
    seq: int
    event: dict[str, Any]


class EventPageOut(BaseModel):
    account_id: str
    events: list[EventPageItem]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at "
                                               "the end.")


# --- appeals ------------------------------------------------------------------------------------


class AppealIn(Body):
    hold_code: Identifier
    statement: Text = ""
    purchase_event_ids: list[Identifier] = Field(default_factory=list, max_length=100)


class AppealDecisionIn(Body):
    decision: ev.AppealDecision
    reason: Text = Field("", description="Required to reject: the customer sees it.")


class AppealOut(BaseModel):
    appeal_id: str
    account_id: str
    hold_code: str
    status: Literal["pending", "approved", "rejected", "void"]
    statement: str
    submitted_at: str | None
    sla_due_at: str
    sla_breached: bool
    decided_at: str | None
    decided_by: str | None
    reason: str | None


class AppealListOut(BaseModel):
    appeals: list[AppealOut]


# --- operator commands --------------------------------------------------------------------------


class Reason(Body):
    reason: Text | None = Field(None, description="Why: kept in the audit log.")


class MaintenanceIn(Reason):
    window_id: Identifier | None = None
    start: Time
    end: Time
    segment: Identifier | None = None


class WindowOut(BaseModel):
    window_id: str
    start: str
    end: str
    segment: str | None
    status: Literal["scheduled", "active", "ended", "cancelled"]
    scheduled_at: str
    cancelled_at: str | None
    actor: str
    event_id: str


class WindowListOut(BaseModel):
    windows: list[WindowOut]


class MigrationIn(Reason):
    campaign_id: Identifier | None = None
    account_ids: list[Identifier] | None = Field(None, min_length=1,
                                                 max_length=ev.MAX_LIST_ITEMS)
    segment: Identifier | None = None


class MigrationCompleteIn(Reason):
    account_ids: list[Identifier] | None = Field(None, min_length=1,
                                                 max_length=ev.MAX_LIST_ITEMS)


class CampaignOut(BaseModel):
    campaign_id: str
    started_at: str
    segment: str | None
    account_count: int | None
    status: Literal["running", "completed"]
    completed_at: str | None
    completed_account_count: int
    actor: str
    event_id: str


class CampaignListOut(BaseModel):
    campaigns: list[CampaignOut]


class ManualHoldIn(Body):
    reason: Annotated[str, Field(min_length=1, max_length=ev.MAX_TEXT_CHARS)]


class ManualReleaseIn(Body):
    reason: Text = ""


class ManualHoldOut(BaseModel):
    account_id: str
    code: str
    event_id: str
    at: str
    actor: str
    reason: str
    released: bool = False


class DryRunIn(Body):
    criteria: Criteria = Field(examples=["score < 550 AND utilization > 0.9"])
    reopen_criteria: Criteria = Field(examples=["score >= 600"])
    at: Time | None = None


class SweepSample(BaseModel):
    account_id: str
    features: dict[str, Any]


class DryRunOut(BaseModel):
    at: str
    count: int = Field(description="Accounts the sweep would close.")
    already_closed: int = Field(description="Matching is not checked: already under "
                                            "policy_tightening.")
    accounts_evaluated: int
    not_evaluable: int = Field(0, description="Accounts the criteria cannot be evaluated for "
                                              "(their arithmetic overflows); never closed.")
    by_status: dict[str, int]
    sample: list[SweepSample]
    token: str
    token_expires_at: str
    policy_version: str


class SweepIn(Reason):
    sweep_id: Identifier | None = None
    criteria: Criteria
    reopen_criteria: Criteria
    dry_run_token: str = Field(min_length=1, max_length=MAX_TOKEN_CHARS)


class SweepOut(BaseModel):
    sweep_id: str
    event_id: str
    at: str
    actor: str
    criteria: str
    reopen_criteria: str
    accounts_closed: int


class PolicyTextIn(Body):
    toml: str = Field(min_length=1, description="The policy file's text (TOML).")


class PolicyOut(BaseModel):
    version: str
    sha256: str
    uploaded_at: str
    uploaded_by: str
    active: bool
    activated_at: str | None
    activated_by: str | None


class PolicyListOut(BaseModel):
    active_version: str
    builtin_version: str
    policies: list[PolicyOut]


class FieldReason(BaseModel):
    field: str
    reason: str


class PolicyValidationOut(BaseModel):
    valid: bool
    version: str | None
    errors: list[FieldReason]


# --- admin --------------------------------------------------------------------------------------


class KeyIn(Body):
    roles: list[Role] = Field(min_length=1, max_length=4)
    name: Identifier | None = Field(None, description="The actor name on events and audit "
                                                      "entries; default <role>-<key_id>.")


class KeyOut(BaseModel):
    key_id: str
    name: str
    roles: list[str]
    created_at: str
    created_by: str | None
    revoked_at: str | None
    revoked_by: str | None


class NewKeyOut(KeyOut):
    key: str = Field(description="The API key. Shown once: only its hash is stored.")


class KeyListOut(BaseModel):
    keys: list[KeyOut]


class AuditWho(BaseModel):
    kind: str
    actor: str
    key_id: str | None
    roles: list[str]


class AuditEntryOut(BaseModel):
    seq: int
    at: str
    request_id: str
    who: AuditWho
    action: str
    method: str
    path: str
    target: str | None
    reason: str | None
    status: int


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    next_after: int | None


class HealthOut(BaseModel):
    status: Literal["ok"]
    schema_revision: str | None

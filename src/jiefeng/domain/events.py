"""The input contract: every event type, its fields, and their validation.

An event is a JSON object with `event_id`, `type` and `at` (RFC 3339 with an offset). Account
events carry `account_id`; operator commands carry `actor`. Money is a decimal string with at
most two places and is held as integer fen (`amount_fen`, JSON key `amount`). Unknown types and
unknown fields are rejected, so a typo never becomes a silently ignored fact.

Validation is pydantic; `parse_event` turns its errors into `EventRejected`, which names each
offending field and the reason. Nothing here does I/O.

Why one long module: the event contract (docs/events.md) is one table, every type's schema
next to the others, so a change to one is seen against all.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from jiefeng.domain import event_kinds
from jiefeng.domain.money import format_fen, parse_amount_fen
from jiefeng.domain.upcasting import SCHEMA_VERSION, upcast, version_problem

MAX_ID_CHARS = 128
MAX_LIST_ITEMS = 10_000  # bounds account_ids in one operator command
MAX_TEXT_CHARS = 2_000  # appeal statements, reasons


RFC3339_START = r"^[0-9]{4}-"  # a full date first: "2025-03-01T09:30:00+08:00"


def _require_rfc3339_text(value: Any, *, stored: bool = False) -> Any:
    # pydantic would accept a Unix number as UTC, and one in a string ("1736042400"); the
    # contract says RFC 3339 with an offset. A stored body is not held to the second rule:
    # it was accepted when it came, before the rule, and a replay must still read it.
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not (stored or _RFC3339_START.match(value)):
        raise ValueError("must be an RFC 3339 timestamp string with an offset")
    return value


_RFC3339_START = re.compile(RFC3339_START)


def _require_date_text(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("must be a date in the form YYYY-MM-DD")
    return value


# Instants are held in UTC inside: comparing datetimes that share one tzinfo object is several
# times faster than across zones, and the fold compares times constantly. The stored event keeps
# the offset it was sent with; local days are computed in the policy's zone.
MIN_YEAR, MAX_YEAR = 1970, 2200  # a bound on every time and date: arithmetic stays in range


def _in_range_utc(value: dt.datetime) -> dt.datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return value.astimezone(dt.UTC)


def _timestamp(value: Any, handler: ValidatorFunctionWrapHandler,
               info: ValidationInfo) -> dt.datetime:
    # One Python call around pydantic's own parsing, where a before and an after validator
    # were two: this runs for every event ingested.
    stored = info.context is not None and info.context.get("stored", False)
    return _in_range_utc(handler(_require_rfc3339_text(value, stored=stored)))


def _date_in_range(value: dt.date) -> dt.date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must be between the years {MIN_YEAR} and {MAX_YEAR}")
    return value


Timestamp = Annotated[AwareDatetime, WrapValidator(_timestamp)]
Day = Annotated[dt.date, BeforeValidator(_require_date_text), AfterValidator(_date_in_range)]
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^\S+$")]


class _Prose:
    """Marks a string field as prose (statements, reasons, criteria): jiefeng.domain.admission
    holds every other string field to the stricter rules for identifiers."""


PROSE = _Prose()
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS), PROSE]

# Positive money: "0.01" and up.
def _amount_fen(value: Any) -> int:
    return parse_amount_fen(value)


def _balance_fen(value: Any) -> int:
    return parse_amount_fen(value, allow_zero=True)


AmountFen = Annotated[
    int,
    BeforeValidator(_amount_fen),
    PlainSerializer(format_fen, return_type=str),
]
# Balances and record amounts may be zero.
BalanceFen = Annotated[
    int,
    BeforeValidator(_balance_fen),
    PlainSerializer(format_fen, return_type=str),
]


def _strict_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


StrictFlag = Annotated[bool, BeforeValidator(_strict_bool)]


class PurchaseKind(StrEnum):
    PURCHASE = "purchase"
    TRANSFER = "transfer"
    CASH_WITHDRAWAL = "cash_withdrawal"


class Authorization(StrEnum):
    """The issuer's own authorizer already decided a purchase (stand-in or offline)."""

    APPROVED = "approved"
    DECLINED = "declined"


class BureauProduct(StrEnum):
    JIEBEI = "jiebei"
    MYBANK = "mybank"
    BEIYONGJIN = "beiyongjin"
    OTHER = "other"


class BureauStatus(StrEnum):
    OVERDUE = "overdue"
    SETTLED = "settled"


class ActivityCategory(StrEnum):
    FINANCIAL_SERVICE = "financial_service"
    LIFE_SERVICE = "life_service"
    PAYMENT = "payment"


class ProfileField(StrEnum):
    PHONE = "phone"
    BANK_CARD = "bank_card"
    ADDRESS = "address"


class AppealDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


class _Event(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, str_strip_whitespace=False
    )

    event_id: Identifier
    at: Timestamp

    @property
    def is_operator(self) -> bool:
        return False


class _AccountEvent(_Event):
    account_id: Identifier


class _OperatorEvent(_Event):
    actor: Identifier

    @property
    def is_operator(self) -> bool:
        return True


def _score_dimension() -> Any:
    return Field(default=None, ge=0, le=100)


class ScoreDimensions(BaseModel):
    """The five sub-scores of a credit score, each 0-100."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    compliance: int | None = _score_dimension()
    behaviour: int | None = _score_dimension()
    identity: int | None = _score_dimension()
    assets: int | None = _score_dimension()
    connections: int | None = _score_dimension()


# --- account events -------------------------------------------------------------------------


class AccountOpened(_AccountEvent):
    type: Literal["account_opened"] = "account_opened"
    credit_limit_fen: AmountFen = Field(alias="credit_limit")
    statement_day: int = Field(default=1, ge=1, le=28)
    due_day: int = Field(default=9, ge=1, le=28)
    id_expires_on: Day
    segment: Identifier | None = None

    @model_validator(mode="after")
    def _days_differ(self) -> AccountOpened:
        if self.statement_day == self.due_day:
            raise ValueError("due_day: must differ from statement_day")
        return self


class Purchase(_AccountEvent):
    type: Literal["purchase"] = "purchase"
    amount_fen: AmountFen = Field(alias="amount")
    merchant_id: Identifier
    kind: PurchaseKind = PurchaseKind.PURCHASE
    password_ok: StrictFlag | None = None
    # Absent: jiefeng decides. Present: the issuer did; jiefeng records what it would have said.
    authorization: Authorization | None = None


class Refund(_AccountEvent):
    type: Literal["refund"] = "refund"
    amount_fen: AmountFen = Field(alias="amount")
    purchase_event_id: Identifier


class Repayment(_AccountEvent):
    type: Literal["repayment"] = "repayment"
    amount_fen: AmountFen = Field(alias="amount")


class InstallmentPlanCreated(_AccountEvent):
    """A purchase converted into monthly installments (分期); see docs/events.md."""

    type: Literal["installment_plan_created"] = "installment_plan_created"
    plan_id: Identifier
    purchase_event_id: Identifier
    months: int = Field(ge=2, le=36, strict=True)


class ScoreUpdate(_AccountEvent):
    type: Literal["score_update"] = "score_update"
    score: int = Field(ge=350, le=950, strict=True)
    dimensions: ScoreDimensions | None = None


class BureauRecord(_AccountEvent):
    type: Literal["bureau_record"] = "bureau_record"
    product: BureauProduct
    status: BureauStatus
    days_past_due: int = Field(ge=0, le=10_000, strict=True)
    amount_fen: BalanceFen = Field(alias="amount")


class Activity(_AccountEvent):
    type: Literal["activity"] = "activity"
    category: ActivityCategory


class AssetUpdate(_AccountEvent):
    type: Literal["asset_update"] = "asset_update"
    deposits_fen: BalanceFen = Field(alias="deposits")
    wealth_balance_fen: BalanceFen = Field(alias="wealth_balance")


class PasswordAttempt(_AccountEvent):
    type: Literal["password_attempt"] = "password_attempt"
    ok: StrictFlag


class PasswordReset(_AccountEvent):
    type: Literal["password_reset"] = "password_reset"
    identity_verified: StrictFlag


class Login(_AccountEvent):
    type: Literal["login"] = "login"
    device_id: Identifier


class ProfileChange(_AccountEvent):
    type: Literal["profile_change"] = "profile_change"
    field: ProfileField


class IdentityVerified(_AccountEvent):
    type: Literal["identity_verified"] = "identity_verified"
    method: Identifier


class IdDocumentUpdated(_AccountEvent):
    type: Literal["id_document_updated"] = "id_document_updated"
    expires_on: Day


class AppealSubmitted(_AccountEvent):
    type: Literal["appeal_submitted"] = "appeal_submitted"
    appeal_id: Identifier
    hold_code: Identifier
    statement: Text = ""
    purchase_event_ids: list[Identifier] = Field(default_factory=list, max_length=100)


# --- operator commands ------------------------------------------------------------------------


class MaintenanceScheduled(_OperatorEvent):
    type: Literal["maintenance_scheduled"] = "maintenance_scheduled"
    window_id: Identifier
    start: Timestamp
    end: Timestamp
    segment: Identifier | None = None

    @model_validator(mode="after")
    def _window_is_forward(self) -> MaintenanceScheduled:
        if self.end <= self.start:
            raise ValueError("end: must be after start")
        if self.end - self.start > dt.timedelta(days=7):
            raise ValueError("end: a maintenance window may last at most 7 days")
        return self


class MaintenanceCancelled(_OperatorEvent):
    type: Literal["maintenance_cancelled"] = "maintenance_cancelled"
    window_id: Identifier


class MigrationStarted(_OperatorEvent):
    type: Literal["migration_started"] = "migration_started"
    campaign_id: Identifier
    account_ids: list[Identifier] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    segment: Identifier | None = None

    @model_validator(mode="after")
    def _one_scope(self) -> MigrationStarted:
        if (self.account_ids is None) == (self.segment is None):
            raise ValueError("account_ids: give either account_ids or segment, not both or none")
        if self.account_ids is not None and not self.account_ids:
            raise ValueError("account_ids: must not be empty")
        return self


class MigrationCompleted(_OperatorEvent):
    type: Literal["migration_completed"] = "migration_completed"
    campaign_id: Identifier
    account_ids: list[Identifier] | None = Field(default=None, max_length=MAX_LIST_ITEMS)


def _valid_criteria(text: str, info: ValidationInfo) -> str:
    # A stored sweep was checked when it arrived; the checks may have been tightened since, and
    # a replay must still read it (the fold evaluates it with compile_stored_criteria).
    if info.context is not None and info.context.get("stored"):
        return text
    from jiefeng.policy.criteria import compile_criteria  # local: keeps import graph acyclic

    compile_criteria(text)  # raises ValueError saying what is not allowed
    return text


Criteria = Annotated[
    str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_valid_criteria), PROSE
]


class PolicySweep(_OperatorEvent):
    type: Literal["policy_sweep"] = "policy_sweep"
    sweep_id: Identifier
    criteria: Criteria
    reopen_criteria: Criteria


class AppealDecided(_OperatorEvent):
    type: Literal["appeal_decided"] = "appeal_decided"
    appeal_id: Identifier
    decision: AppealDecision
    reason: Text = ""
    # Filled in by the service from the appeal's own record; callers need not send it.
    account_id: Identifier | None = None


class PolicyActivated(_OperatorEvent):
    """An operator activates a stored policy version (an extension; see docs/events.md).

    From `at` on, every decision is made under it; as an event in the log, a replay switches
    policy at the same moment."""

    type: Literal["policy_activated"] = "policy_activated"
    version: Annotated[str, Field(min_length=1, max_length=64)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ManualHoldPlaced(_OperatorEvent):
    """An operator places a hold by hand (an extension; see docs/events.md)."""

    type: Literal["manual_hold_placed"] = "manual_hold_placed"
    account_id: Identifier
    reason: Text = Field(min_length=1)


class ManualHoldReleased(_OperatorEvent):
    type: Literal["manual_hold_released"] = "manual_hold_released"
    account_id: Identifier
    reason: Text = ""


# typing.Union, not `|`: the members are listed by `__args__` below.
AccountEvent = Union[  # noqa: UP007
    AccountOpened,
    Purchase,
    Refund,
    Repayment,
    InstallmentPlanCreated,
    ScoreUpdate,
    BureauRecord,
    Activity,
    AssetUpdate,
    PasswordAttempt,
    PasswordReset,
    Login,
    ProfileChange,
    IdentityVerified,
    IdDocumentUpdated,
    AppealSubmitted,
]
OperatorEvent = Union[  # noqa: UP007
    MaintenanceScheduled,
    MaintenanceCancelled,
    MigrationStarted,
    MigrationCompleted,
    PolicySweep,
    AppealDecided,
    ManualHoldPlaced,
    ManualHoldReleased,
    PolicyActivated,
]
Event = Annotated[AccountEvent | OperatorEvent, Field(discriminator="type")]

EVENT_TYPES: dict[str, type[_Event]] = {
    model.model_fields["type"].default: model
    for model in (*AccountEvent.__args__, *OperatorEvent.__args__)  # type: ignore[attr-defined]
}
OPERATOR_TYPES = frozenset(
    model.model_fields["type"].default for model in OperatorEvent.__args__  # type: ignore[attr-defined]
)
# Known ahead of the models where they are not imported (jiefeng.domain.event_kinds).
assert OPERATOR_TYPES == event_kinds.OPERATOR_TYPES, "event_kinds.OPERATOR_TYPES is out of date"
assert event_kinds.SCOPE_TYPES <= OPERATOR_TYPES

_EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)


class EventRejected(ValueError):
    """An event failed validation. `problems` is a list of (field, reason)."""

    def __init__(self, problems: list[tuple[str, str]], event_id: str | None = None):
        self.problems = problems
        self.event_id = event_id
        super().__init__("; ".join(f"{field}: {reason}" for field, reason in problems))

    @property
    def field(self) -> str:
        return self.problems[0][0]

    @property
    def reason(self) -> str:
        return self.problems[0][1]


def _problems(error: ValidationError, raw: Any) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for item in error.errors(include_url=False):
        loc = [str(part) for part in item["loc"]]
        # The discriminated union puts the type tag first; it is noise for the reader.
        if loc and isinstance(raw, dict) and loc[0] == raw.get("type"):
            loc = loc[1:]
        message = item["msg"]
        if item["type"] == "union_tag_invalid":
            loc = ["type"]
            if isinstance(raw, dict):
                message = f"unknown event type {raw.get('type')!r}"
        elif item["type"] == "union_tag_not_found":
            loc = ["type"]
            message = "is required"
        elif item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "is required"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        # Model-level validators name their field in the message: "end: must be after start".
        if not loc and ": " in message:
            field, message = message.split(": ", 1)
            loc = [field]
        problems.append((".".join(loc) or "(event)", message))
    return problems


_STORED = {"stored": True}


def parse_event(raw: Any, *, stored: bool = False) -> Any:
    """Validate one decoded JSON object into an event, or raise EventRejected.

    `stored=True` reads an event from the log: checks tightened after it was accepted (sweep
    criteria limits) are not applied again, so a replay never fails on it."""
    if not isinstance(raw, dict):
        raise EventRejected([("(event)", "must be a JSON object")])
    declared = "schema_version" in raw
    if declared:
        problem = version_problem(raw)
        if problem is not None:
            event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
            raise EventRejected([("schema_version", problem)], event_id)
    if stored or declared:
        # An event stored under an older contract still replays; a new one may declare the
        # older shape it was written in.
        raw = upcast(raw)
    try:
        return _EVENT_ADAPTER.validate_python(raw, context=_STORED if stored else None)
    except ValidationError as error:
        event_id = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
        raise EventRejected(_problems(error, raw), event_id) from None


def parse_event_json(text: str | bytes) -> Any:
    """Validate one JSON text into an event in a single pass (the ingest fast path).

    Read first by the lighter validator of `jiefeng.domain.stored_schema` (its instants and
    amounts finished in one Python pass, not by a validator call per field: about a fifth
    cheaper), which takes exactly what the full validator takes; a line it refuses is
    validated in full. On failure the text is decoded again to report the same field-named
    problems as `parse_event`; the slow path runs only for rejected events.
    """
    try:
        return _stored_schema.read_current(text, stored=False)
    except (ValidationError, ValueError, TypeError):
        pass
    try:
        return _EVENT_ADAPTER.validate_json(text)
    except ValidationError:
        pass
    import orjson

    if isinstance(text, bytes):
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise EventRejected([("(line)", (
                f"not valid UTF-8 (byte 0x{text[error.start]:02x} at byte {error.start + 1}); "
                "send UTF-8 text"))]) from None
    try:
        # orjson, not json: it refuses nesting past 1,024 levels where json hits the
        # interpreter's recursion limit and raises RecursionError.
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        if "depth limit" in str(error):
            reason = "nested too deeply (over 1,024 levels); an event is one flat JSON object"
        else:
            reason = f"not valid JSON: {error}"
        raise EventRejected([("(line)", reason)]) from None
    return parse_event(raw)


# How a body validated in the current shape is stored (`upcasting.stamped`, or sorted keys):
# the key can only occur as this object's own, as every nested object refuses unknown keys and
# a quote inside a string value is escaped.
_CURRENT_STAMP = f'"schema_version":{SCHEMA_VERSION},'


def parse_stored_json(body: str) -> Any:
    """A stored body as the event it holds (`stored=True`: see `parse_event`).

    A body in the current shape, the usual case, is read straight from its text without its
    stamp by the stored-body validator (`jiefeng.domain.stored_schema`: the union's schema
    without the Python validators of instants and amounts, about a fifth cheaper than the
    full one), else validated as a new line is (`parse_event_json`). Any other body (an older
    shape, or one these readings refuse) goes through `parse_event`, which upcasts it or
    names what is wrong."""
    if _CURRENT_STAMP in body:
        text = body.replace(_CURRENT_STAMP, "", 1)
        try:
            return _stored_schema.read_current(text)
        except (ValidationError, ValueError, TypeError):
            pass
        try:
            return _EVENT_ADAPTER.validate_json(text, context=_STORED)
        except ValidationError:
            pass
    import orjson

    return parse_event(orjson.loads(body), stored=True)


def parse_stored_rows(rows: Iterable[tuple[str, str, Any, str]],
                      instant: Callable[[Any], dt.datetime],
                      fallback: Callable[[str, str], Any]) -> list[Any]:
    """Stored account events from their rows, (account_id, type, at_utc, body) each: the same
    events as `parse_stored_json` of each body. A body in the current shape is read by its
    type's own validator, with the store's instant (`jiefeng.domain.stored_schema.read_row`:
    about a quarter cheaper); anything else, or a body that reading refuses, is read by
    `fallback(body, account_id)` (`parse_stored_json`, and what the caller adds to it).
    `instant` turns the at_utc column into an aware instant in `datetime.UTC`.

    One call for many rows: a backtest reads every event this way, and a call per row (and
    per layer) was a sixth of the reading."""
    events: list[Any] = []
    append = events.append
    row_types, read = _stored_schema.ROW_TYPES, _stored_schema.read_row
    for account_id, event_type, at_utc, body in rows:
        if event_type in row_types:
            try:
                append(read(event_type, body, instant(at_utc)))
                continue
            except (ValidationError, ValueError, TypeError):
                pass
        append(fallback(body, account_id))
    return events


def event_to_json_dict(event: Any) -> dict[str, Any]:
    """The event in its wire form (JSON keys, decimal-string money)."""
    return event.model_dump(mode="json", by_alias=True, exclude_none=True)


def routing_account_id(event: Any) -> str | None:
    """The account an event belongs to, or None for portfolio-wide operator commands."""
    # A model's fields live in its __dict__; getattr on a field the type lacks would take
    # pydantic's slow path (an exception inside), and this runs for every event.
    fields = getattr(event, "__dict__", None)
    return fields.get("account_id") if fields is not None else None


# Built from the union above, so imported once everything it reads is defined (and as a
# module: importing it first imports this one, which then finds it partly initialised).
from jiefeng.domain import stored_schema as _stored_schema  # noqa: E402

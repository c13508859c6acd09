"""Errors as `application/problem+json` (RFC 9457): type, title, status, detail, and
`errors: [{field, reason}]` naming each offending field. No stack trace ever reaches a caller:
unexpected exceptions become a generic 500 problem and are logged with the request id.

Every problem document is built by `problem_body`, which cuts what a caller sent and the answer
echoes (an id of 10,000 characters in a path, an unknown event type, a field name): each long
word keeps its first 64 characters and an ellipsis (`jiefeng.shown`), in `detail`, in each of
`errors`, and in any extra member.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from jiefeng.service.engine import AccountNotFound
from jiefeng.service.operator import OperationError
from jiefeng.service.policies import PolicyConflict, PolicyNotFound
from jiefeng.shown import cut, cut_all

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "tag:jiefeng,2026:problem:"  # RFC 9457 3.1.1: a non-dereferenceable tag URI

log = logging.getLogger("jiefeng.api")

_TYPES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "too-many-requests",
    500: "internal",
    503: "unavailable",
}
# RFC 9110's names where Python's table still has the old ones (3.11: "Unprocessable Entity"),
# so that every 413 and 422 carries one title whoever raises it.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}
MAX_ERRORS = 50  # a 1,000-item body must not produce a megabyte of errors


class Problem(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, detail: str, errors: list[dict[str, str]] | None = None,
                 *, title: str | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None):
        self.status = status
        self.detail = detail
        self.errors = errors
        self.title = title or _TITLES.get(status) or HTTPStatus(status).phrase
        self.headers = headers
        self.extra = extra or {}
        super().__init__(detail)


def field_problem(status: int, field: str, reason: str, detail: str | None = None) -> Problem:
    return Problem(status, detail or f"{field}: {reason}", [{"field": field, "reason": reason}])


def unauthenticated(detail: str) -> Problem:
    return Problem(401, detail, headers={"WWW-Authenticate": 'Bearer realm="jiefeng"'})


def problem_body(status: int, title: str, detail: str, errors: list[dict[str, str]] | None,
                 request_id: str | None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one place a problem document is made: whatever it echoes is cut (see above)."""
    body: dict[str, Any] = {"type": TYPE_BASE + _TYPES.get(status, str(status)), "title": title,
                            "status": status, "detail": cut(detail)}
    if errors:
        body["errors"] = [{key: cut(str(value)) for key, value in error.items()}
                          for error in errors[:MAX_ERRORS]]
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(cut_all(extra))
    return body


def problem_response(request: Request | None, problem: Problem) -> JSONResponse:
    request_id = _request_id(request)
    return JSONResponse(
        problem_body(problem.status, problem.title, problem.detail, problem.errors, request_id,
                     problem.extra),
        status_code=problem.status, media_type=PROBLEM_JSON, headers=problem.headers)


def _request_id(request: Request | None) -> str | None:
    if request is None:
        return None
    context = request.scope.get("jiefeng.context")
    return getattr(context, "request_id", None)


def _field_from_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    name = ""
    for part in parts:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += ("." if name else "") + str(part)
    return name or "(body)"


def _reason(item: dict[str, Any]) -> str:
    if item.get("type") == "missing":
        return "is required"
    if item.get("type") == "extra_forbidden":
        return "unknown field"
    if item.get("type") == "json_invalid":
        return f"not valid JSON: {item.get('ctx', {}).get('error', 'decode error')}"
    return str(item.get("msg", "invalid")).removeprefix("Value error, ")


# --- handlers -----------------------------------------------------------------------------------


async def handle_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(request, exc)


def _json_content_type(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


async def handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = exc.errors()
    in_body = [item for item in items if tuple(item.get("loc", ()))[:1] == ("body",)]
    if in_body and request.method in ("POST", "PUT", "PATCH") \
            and not _json_content_type(request):
        kind = request.headers.get("content-type") or "none"
        return problem_response(request, Problem(
            415, f"send the body as JSON with Content-Type: application/json (got {kind})"))
    invalid_json = next((item for item in in_body if item.get("type") == "json_invalid"), None)
    if invalid_json is not None:
        reason = invalid_json.get("ctx", {}).get("error", "decode error")
        return problem_response(request, field_problem(400, "(body)",
                                                       f"not valid JSON: {reason}"))
    # Only `field` and `reason` (pydantic's `input`, the value itself, is never echoed); both
    # are cut by problem_body.
    errors = [{"field": _field_from_loc(item.get("loc", ())), "reason": _reason(item)}
              for item in items[:MAX_ERRORS]]
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors[:3])
    return problem_response(request, Problem(422, detail or "invalid request", errors))


async def handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    if status == 404 and detail == "Not Found":
        detail = f"no such resource: {request.url.path}"
    headers = dict(exc.headers) if exc.headers else {}
    if status == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
        detail = f"{request.method} is not allowed here; use {headers['Allow']}"
    elif status == 400 and detail == "There was an error parsing the body":
        detail = _unreadable_body(exc.__cause__)
    return problem_response(request, Problem(status, detail, headers=headers or None))


def _unreadable_body(cause: BaseException | None) -> str:
    """Why the body could not be parsed, named (not a generic "send UTF-8 JSON")."""
    if isinstance(cause, RecursionError):
        return "the body is nested too deeply to read; send at most a few levels of nesting"
    text = str(cause or "")
    if isinstance(cause, ValueError) and "digits" in text:
        return ("a number in the body is too long to read (more digits than allowed); money "
                "goes as a decimal string such as \"12.50\"")
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not UTF-8; send UTF-8 JSON"
    return "the request body could not be read: send UTF-8 JSON"


def _allowed_methods(request: Request) -> list[str]:
    """Every method any route serves on this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    pending = list(request.app.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)  # include_router (no prefix here)
        if included is not None:
            pending.extend(included.routes)
            continue
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def handle_operation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OperationError)
    return problem_response(request, field_problem(exc.status, exc.field, exc.reason))


async def handle_account_not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccountNotFound)
    return problem_response(request, field_problem(404, "account_id",
                                                   f"no account {exc.account_id!r}"))


async def handle_policy_conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PolicyConflict)
    return problem_response(request, field_problem(409, exc.field, exc.reason))


async def handle_policy_not_found(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(request, field_problem(404, "version", f"no policy version {exc}"))


async def handle_integrity(request: Request, exc: Exception) -> JSONResponse:
    # Two requests wrote the same ids at the same moment (PostgreSQL): a retry sorts it out,
    # and retries are harmless (duplicate events are applied once).
    log.warning("integrity error on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(request, Problem(
        409, "a concurrent request wrote the same data; retry the request",
        headers={"Retry-After": "1"}))


async def handle_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(request, Problem(
        503, "the database is busy or unavailable; retry shortly",
        headers={"Retry-After": "2"}))


def internal_error_body(request_id: str | None) -> dict[str, Any]:
    return problem_body(500, "Internal Server Error",
                        "the server failed to answer; quote the request id when reporting it",
                        None, request_id)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    Problem: handle_problem,
    RequestValidationError: handle_validation,
    StarletteHTTPException: handle_http,
    OperationError: handle_operation,
    AccountNotFound: handle_account_not_found,
    PolicyConflict: handle_policy_conflict,
    PolicyNotFound: handle_policy_not_found,
    IntegrityError: handle_integrity,
    OperationalError: handle_database_unavailable,
}

# Declared in the OpenAPI document for every operation.
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["field", "reason"],
            "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}}},
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": HTTPStatus(status).phrase,
                     "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
            for status in statuses}

"""Per-request plumbing, as one ASGI middleware: the request id, the body size limit, the audit
entry, latency metrics, and the last-resort 500.

It sits inside Starlette's ServerErrorMiddleware but catches every exception itself, so that the
generic 500 problem also carries the request id; the exception is logged, never sent.

The audit entry is written when the response starts and before it is released: a caller never
sees an answer to an audited action that the audit log does not hold.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jiefeng.api.problems import PROBLEM_JSON, internal_error_body, log, problem_body
from jiefeng.service.audit import AuditEntry
from jiefeng.service.security import Principal

if TYPE_CHECKING:
    from jiefeng.api.services import Services

CONTEXT_KEY = "jiefeng.context"
REQUEST_ID_HEADER = "x-request-id"
MAX_BODY_BYTES = 2 * 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass
class RequestContext:
    request_id: str
    method: str
    path: str
    principal: Principal | None = None
    action: str | None = None  # set by the route's guard
    audited: bool = False  # whether this action by this principal goes to the audit log
    target: str | None = None
    reason: str | None = None
    # Commands that came in as events (POST /v1/events): one audit entry each, whoever sent
    # them, as (action, target, reason).
    commands: list[tuple[str, str | None, str | None]] = field(default_factory=list)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class _TooLarge(Exception):
    pass


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, services: Services, max_body_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.services = services
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        context = RequestContext(request_id, scope["method"], scope["path"])
        scope[CONTEXT_KEY] = context
        status_holder = {"status": 500, "started": False, "audit_tried": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                if not status_holder["audit_tried"]:
                    status_holder["audit_tried"] = True  # a failed write answers 500, once
                    await self._audit(context, message["status"])
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                if context.path.startswith("/v1/") and not any(
                        key.lower() == b"cache-control" for key, _ in headers):
                    # /v1 answers carry account data (or credentials): no shared or browser
                    # cache may keep them.
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
                status_holder["started"] = True
            await send(message)

        try:
            try:
                replay = await self._buffer_body(scope, receive)
            except _TooLarge:
                await self._send_problem(
                    send_wrapper, 413, "Content Too Large",
                    f"the request body is over the limit of {self.max_body_bytes} bytes; "
                    "send fewer events per request (at most 1,000)", request_id)
                return
            if replay is None:
                return  # the client went away
            await self.app(scope, replay, send_wrapper)
        except Exception:  # noqa: BLE001 - the last resort: log it, answer a generic 500
            log.exception("unhandled error in %s %s (request id %s)", scope["method"],
                          scope["path"], request_id)
            if not status_holder["started"]:
                await send_wrapper({"type": "http.response.start", "status": 500,
                                    "headers": [(b"content-type", PROBLEM_JSON.encode())]})
                await send_wrapper({"type": "http.response.body",
                                    "body": json.dumps(internal_error_body(request_id)).encode()})
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            self.services.metrics.observe_request(
                scope["method"], template, status_holder["status"],
                time.perf_counter() - started)

    async def _buffer_body(self, scope: Scope, receive: Receive) -> Receive | None:
        """Read the whole body (bounded) before routing; replay it to the app."""
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(body)
            if not message.get("more_body", False):
                break
        pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks),
                                   "more_body": False}]

        async def replay() -> Message:
            if pending:
                return pending.pop()
            return await receive()

        return replay

    async def _send_problem(self, send: Send, status: int, title: str, detail: str,
                            request_id: str) -> None:
        body = json.dumps(problem_body(status, title, detail, None, request_id)).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def _audit(self, context: RequestContext, status: int) -> None:
        principal = context.principal
        if principal is None or context.action is None:
            return
        if not (context.audited or status == 403 or context.commands):
            return  # refusals (403) are always worth a line, and so are commands
        at = self.services.now()

        def entry(action: str, target: str | None, reason: str | None) -> AuditEntry:
            return AuditEntry(
                at=at, request_id=context.request_id, actor_kind=principal.kind,
                actor=principal.name, key_id=principal.key_id,
                roles=tuple(sorted(principal.roles)), action=action, method=context.method,
                path=context.path, target=target, reason=reason, status=status)

        entries = [entry(*command) for command in context.commands]
        if context.audited or status == 403 or not entries:
            entries.insert(0, entry(context.action, context.target, context.reason))
        await anyio.to_thread.run_sync(self.services.audit.append_many, entries)


def request_context(scope: dict[str, Any]) -> RequestContext:
    context = scope.get(CONTEXT_KEY)
    assert isinstance(context, RequestContext), "ServiceMiddleware sets the context"
    return context

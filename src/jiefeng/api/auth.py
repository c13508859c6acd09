"""Who may call what. Every protected route declares one `Guard`: the action name (for the
audit log), the API key roles allowed, and whether a customer token for the account in the path
may call it.

`Authorization: Bearer <credential>`: an API key (`jf_...`) or a customer token (a JWT). Missing
or invalid -> 401; valid but not allowed (wrong role, another customer's account) -> 403.
`admin` may do everything any role may. A client with too many refused credentials gets 429
with `Retry-After` until its window ends (`service.credential_limits`).
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jiefeng.api.context import request_context
from jiefeng.api.problems import Problem, unauthenticated
from jiefeng.api.services import Services
from jiefeng.service.security import CredentialInvalid, Principal

bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer",
    description="An API key (`jf_<id>_<secret>`, roles ingest/reviewer/operator/admin) or a "
                "customer token (a JWT for one account).")

# Machine traffic with no human decision in it: not written to the audit log (refusals are).
NOT_AUDITED = frozenset({"events.ingest", "accounts.authorize"})
# What a customer does that is audited.
CUSTOMER_AUDITED = frozenset({"appeals.submit"})

STAFF_READERS = ("operator", "reviewer")  # + admin

_TARGET_PARAMS = ("account_id", "appeal_id", "window_id", "campaign_id", "version", "key_id")


class TooManyFailures(Exception):
    """This client sent too many refused credentials; it may try again after `retry_after`."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after


def authenticate_limited(request: Request, credential: str) -> Principal:
    """The principal a credential names, under the per-client failure limit: TooManyFailures
    while the client is blocked; CredentialInvalid (counted as a failure) if refused. Every
    path that takes a credential (the API's Guard, the customer sign-in page) goes through it."""
    app: Services = request.app.state.services
    now = app.now()
    # The peer address; behind a proxy every client shares the proxy's address, so put the
    # limit at the proxy or raise JIEFENG_AUTH_MAX_FAILURES (see docs/api.md).
    client = request.client.host if request.client else "(unknown)"
    retry_after = app.limiter.retry_after_seconds(client, now)
    if retry_after is not None:
        raise TooManyFailures(retry_after)
    try:
        return app.authenticator.authenticate(credential, now)
    except CredentialInvalid:
        app.limiter.record_failure(client, now)
        raise


class Guard:
    def __init__(self, action: str, roles: tuple[str, ...] = (), *, customer: bool = False,
                 staff: bool = True):
        """`roles`: API key roles allowed besides admin. `customer`: a customer token for the
        `{account_id}` in the path may call. `staff=False`: no API key may call (customer-only
        actions such as submitting an appeal)."""
        self.action = action
        self.roles = roles
        self.customer = customer
        self.staff = staff

    async def __call__(self, request: Request,
                       credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
                       ) -> Principal:
        # async: verifying a credential is a cache hit or one indexed read at most once a
        # second per key; a thread-pool hop per request cost more than that.
        context = request_context(request.scope)
        context.action = self.action
        context.target = next((str(request.path_params[p]) for p in _TARGET_PARAMS
                               if p in request.path_params), None)
        if credentials is None:
            raise unauthenticated("send Authorization: Bearer <API key or customer token>")
        try:
            principal = authenticate_limited(request, credentials.credentials)
        except TooManyFailures as error:
            raise Problem(429, f"too many refused credentials from this client; try again in "
                               f"{error.retry_after} s",
                          headers={"Retry-After": str(error.retry_after)}) from None
        except CredentialInvalid as error:
            raise unauthenticated(f"credential refused: {error}") from None
        context.principal = principal
        if principal.is_customer:
            context.audited = self.action in CUSTOMER_AUDITED
            if not self.customer:
                raise Problem(403, "a customer token cannot do this; it reads its own account "
                                   "and submits appeals for it")
            if request.path_params.get("account_id") != principal.account_id:
                raise Problem(403, "a customer token is for one account only")
            return principal
        context.audited = self.action not in NOT_AUDITED
        if not self.staff:
            raise Problem(403, "only the customer, with a customer token, can do this")
        if not principal.has_role(*self.roles):
            allowed = " or ".join((*self.roles, "admin"))
            held = ", ".join(sorted(principal.roles)) or "none"
            raise Problem(403, f"needs role {allowed}; this key has {held}")
        return principal

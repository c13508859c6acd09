"""The HTTP API application: `create_app(db, now)`.

    uvicorn --factory jiefeng.api.app:app_from_env      # reads JIEFENG_DB
    jiefeng serve --db jiefeng.db --port 8000           # the same, from the CLI

`now` is the service clock (default: the wall clock); tests pass a fixed one. Every answer carries
`X-Request-ID` (the caller's, if it sent a sane one, else a new one); every error is
`application/problem+json`.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import sys
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from jiefeng.api.context import MAX_BODY_BYTES, ServiceMiddleware
from jiefeng.api.openapi import build_openapi
from jiefeng.api.problems import EXCEPTION_HANDLERS
from jiefeng.api.routes import (
    accounts,
    admin,
    appeals,
    backtests,
    events,
    operator,
    system,
    web,
)
from jiefeng.api.services import Services
from jiefeng.store.sql import SQLITE_DEFAULT_PATH

DB_ENV = "JIEFENG_DB"
TAGS = [
    {"name": "events", "description": "Ingest events; authorization decisions."},
    {"name": "accounts", "description": "One account: state, explanation, history."},
    {"name": "appeals", "description": "Customer appeals and their review."},
    {"name": "operator", "description": "Maintenance, migrations, manual holds, sweeps, "
                                        "policy versions."},
    {"name": "admin", "description": "Audit log and API keys."},
    {"name": "system", "description": "Health and metrics (no credentials)."},
]


def create_app(db: str = SQLITE_DEFAULT_PATH, now: Callable[[], dt.datetime] | None = None,
               *, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    svc = Services.build(db, now)
    app = FastAPI(
        title="jiefeng",
        version="1",
        summary="Freeze and unfreeze consumer credit lines, and say why.",
        description="See docs/api.md. Authenticate with `Authorization: Bearer <API key or "
                    "customer token>`. Errors are application/problem+json (RFC 9457) with "
                    "`errors: [{field, reason}]`.",
        openapi_tags=TAGS,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.services = svc
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(ServiceMiddleware, services=svc, max_body_bytes=max_body_bytes)
    for module in (events, accounts, appeals, operator, backtests, admin, system, web):
        app.include_router(module.router)
    # The web pages' own assets, shipped in the package (never a CDN).
    app.mount("/static", StaticFiles(packages=[("jiefeng.web", "static")]), name="static")
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn (`--factory`), which imports by name: the database comes from
    JIEFENG_DB, as for every CLI command."""
    # Requests run on a thread pool and every SQLite call releases the GIL; with the default
    # 5 ms switch interval a thread waits up to 5 ms to get it back (a convoy), which alone
    # broke the authorize latency target. Short requests want a short interval.
    sys.setswitchinterval(0.0002)
    # The state caches hold many small objects; with the default thresholds a full collection
    # runs often and walks all of them, a pause of tens of milliseconds in the p99. Collect
    # young objects as usual, old ones far less often.
    gc.set_threshold(50_000, 20, 100)
    return create_app(os.environ.get(DB_ENV) or SQLITE_DEFAULT_PATH)

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
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from jiefeng.api.context import MAX_BODY_BYTES, ServiceMiddleware
from jiefeng.api.openapi import build_openapi
from jiefeng.api.problems import EXCEPTION_HANDLERS
from jiefeng.api.routes import (
    accounts,
    admin,
    appeals,
    backtests,
    console,
    console_operations,
    events,
    operator,
    system,
    web,
)
from jiefeng.api.services import Services
from jiefeng.store.sql import SQLITE_DEFAULT_PATH

DB_ENV = "JIEFENG_DB"
SWAGGER_UI = "/static/vendor/swagger-ui-5.35.0"  # swagger-ui-dist, vendored (see its README)
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
        # FastAPI's own /docs and /redoc load their scripts from a CDN: blank offline. /docs is
        # served below from assets shipped in the package.
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = svc
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    app.add_middleware(ServiceMiddleware, services=svc, max_body_bytes=max_body_bytes)
    for module in (events, accounts, appeals, operator, backtests, admin, system, web,
                   console, console_operations):
        app.include_router(module.router)
    # The web pages' own assets, shipped in the package (never a CDN).
    app.mount("/static", StaticFiles(packages=[("jiefeng.web", "static")]), name="static")
    app.add_api_route("/docs", _swagger_ui, include_in_schema=False)
    return app


async def _swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="jiefeng API",
                               swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
                               swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
                               swagger_favicon_url="/static/favicon.svg")


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

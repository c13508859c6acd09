"""Health and metrics: no credentials needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from jiefeng.api.models import HealthOut
from jiefeng.api.problems import Problem, log, problem_responses
from jiefeng.api.services import Services, services

router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=HealthOut, responses=problem_responses(503),
            summary="Liveness and database check")
def healthz(svc: Services = Depends(services)) -> Any:
    try:
        with svc.store.read() as connection:
            connection.execute(text("SELECT 1"))
            revision = connection.execute(text("SELECT version_num FROM alembic_version")
                                          ).scalar()
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        log.exception("health check failed")
        raise Problem(503, "the database does not answer") from None
    return {"status": "ok", "schema_revision": revision}


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
def metrics(svc: Services = Depends(services)) -> Response:
    """Unauthenticated, aggregate numbers only (no account ids): events ingested by status,
    decisions by outcome, active holds by code, accounts by status, request counts and latency
    by route. Keep it off the public ingress."""
    return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)

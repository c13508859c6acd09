"""The OpenAPI document, corrected to say what the service really answers: every error is
`application/problem+json`; a body that cannot be parsed is 400, one that is not JSON 415,
an oversized one 413; protected
operations may answer 401, 403 and 429 (too many refused credentials); anything may answer
500."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from jiefeng.api.problems import PROBLEM_JSON, PROBLEM_SCHEMA

_METHODS = ("get", "post", "put", "patch", "delete")


def _problem(status: int) -> dict[str, Any]:
    return {"description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, summary=app.summary,
                       description=app.description, routes=app.routes, tags=app.openapi_tags)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for path_item in spec.get("paths", {}).values():
        for method in _METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            statuses = {500}
            if operation.get("security"):
                statuses |= {401, 403, 429}
            if "requestBody" in operation:
                statuses |= {400, 413, 415, 422}  # 415: a body that is not JSON
            if operation.get("parameters"):
                statuses.add(422)
            for status in list(responses):
                if status.isdigit() and int(status) >= 400:
                    statuses.add(int(status))
            for status in sorted(statuses):
                responses[str(status)] = _problem(status)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = spec
    return spec

"""Property-based run of every operation in the OpenAPI document (schemathesis), with an admin
key: no 5xx, and every answer matches the documented status codes, content types, headers and
response schemas. Bounded: 10 examples per operation, well under a minute in all.

Not checked: that every schema-valid request is accepted, or every schema-violating one refused
(`positive_data_acceptance`, `negative_data_rejection`): the service validates more than a
schema can say (amount > 0, end after start, criteria grammar, TOML), and ignores unknown query
parameters, as HTTP APIs do.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from jiefeng.api.app import create_app
from test_api_support import MINUTE, T0, Clock, bearer, event, opened

MAX_EXAMPLES = 10

_directory = Path(tempfile.mkdtemp(prefix="jiefeng-schemathesis-"))
_clock = Clock()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    app = create_app(str(_directory / "fuzz.db"), now=_clock)
_services = app.state.services
ADMIN = bearer(_services.keys.create(["admin"], "fuzzer", "test", _clock()).key)
_services.engine().ingest_events([
    opened("A1"),
    *[event("password_attempt", "A1", f"A1-pw{i}", T0 + i * MINUTE, ok=False) for i in range(5)],
])

schemathesis.serializer.alias("application/toml", "text/plain")
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    _services.store.close()
    shutil.rmtree(_directory, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: schemathesis.Case) -> None:
    response = case.call_and_validate(
        headers=ADMIN, excluded_checks=[positive_data_acceptance, negative_data_rejection])
    assert response.status_code < 500, response.text  # also the default not_a_server_error

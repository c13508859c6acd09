"""Ingest, decisions and the HTTP contract: per-event results, idempotent retries, problems that
name the field, body limits, request ids, health, metrics, OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest

from test_api_support import (  # noqa: F401 - `api` is a fixture
    MINUTE,
    T0,
    Api,
    api,
    assert_problem,
    event,
    make_api,
    opened,
    wrong_passwords,
)


def test_ingest_reports_each_event_and_retries_are_harmless(api: Api) -> None:
    batch = [opened("E1"), event("purchase", "E1", "E1-p1", T0 + MINUTE, amount="120.50",
                                 merchant_id="M1"),
             event("purchase", "E1", "E1-bad", T0 + 2 * MINUTE, amount="-1", merchant_id="M1")]
    first = api.client.post("/v1/events", json={"events": batch}, headers=api.as_role("ingest"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 0, 1)
    rejected = body["results"][2]
    assert rejected["status"] == "rejected"
    assert rejected["field"] == "amount"
    assert rejected["event_id"] == "E1-bad"

    retry = api.client.post("/v1/events", json={"events": batch[:2]},
                            headers=api.as_role("ingest")).json()
    assert [r["status"] for r in retry["results"]] == ["duplicate", "duplicate"]
    summary = api.client.get("/v1/accounts/E1", headers=api.as_role("operator")).json()
    assert summary["ledger"]["unbilled"] == "120.50"  # applied once

    reused = dict(batch[1], amount="99.00")
    conflict = api.client.post("/v1/events", json={"events": [reused]},
                               headers=api.as_role("ingest"))
    body = assert_problem(conflict, 422, "events[0].event_id")
    assert body["results"][0]["status"] == "rejected"


def test_a_bad_event_alone_is_a_422_naming_the_field(api: Api) -> None:
    bad = {"event_id": "x1", "type": "account_opened", "at": "2026-01-05T10:00:00",
           "account_id": "Z1", "credit_limit": "100.00", "id_expires_on": "2030-01-01"}
    body = assert_problem(api.client.post("/v1/events", json={"events": [bad]},
                                          headers=api.as_role("ingest")), 422, "events[0].at")
    assert "at" in body["detail"]
    unknown = {"event_id": "x2", "type": "teleport", "at": T0.isoformat()}
    assert_problem(api.client.post("/v1/events", json={"events": [unknown]},
                                   headers=api.as_role("ingest")), 422, "events[0].type")


@pytest.mark.parametrize("payload, field", [
    ({"events": []}, "events"),
    ({}, "events"),
    ({"events": [{}] * 1001}, "events"),
    ({"events": "nope"}, "events"),
    ({"events": [opened("Q")], "extra": 1}, "extra"),
])
def test_malformed_bodies_are_422(api: Api, payload: dict, field: str) -> None:
    response = api.client.post("/v1/events", json=payload, headers=api.as_role("ingest"))
    assert_problem(response, 422, field)


def test_invalid_json_is_400(api: Api) -> None:
    response = api.client.post("/v1/events", content=b'{"events": [', headers={
        **api.as_role("ingest"), "Content-Type": "application/json"})
    assert_problem(response, 400, "(body)")  # as docs/api.md says (hardening item 23)


def test_body_over_the_limit_is_413(api: Api) -> None:
    big = {"events": [opened(f"B{i}", statement_day=1) | {"pad": "x" * 3000}
                      for i in range(800)]}
    response = api.client.post("/v1/events", json=big, headers=api.as_role("ingest"))
    assert_problem(response, 413)


def test_streamed_body_over_the_limit_is_413(tmp_path: Path) -> None:
    """No Content-Length (chunked): the limit is enforced while reading."""
    def chunks():
        yield b'{"events": ['
        for _ in range(100):
            yield b'{"event_id": "0123456789"},'
        yield b"{}]}"

    for small in make_api(tmp_path, max_body_bytes=1024):
        response = small.client.post("/v1/events", content=chunks(), headers={
            **small.as_role("ingest"), "Content-Type": "application/json"})
        assert_problem(response, 413)
        assert "content-length" not in {k.lower() for k in response.request.headers}


def test_authorize_decides_and_names_the_policy(api: Api) -> None:
    api.ingest(opened("D1"), *wrong_passwords("D1", T0 + MINUTE))
    ingest = api.as_role("ingest")
    declined = api.client.post("/v1/accounts/D1/authorize", headers=ingest,
                               json={"amount": "10.00", "merchant_id": "M1"})
    assert declined.status_code == 200, declined.text
    decision = declined.json()
    assert decision["decision"] == "declined"
    assert decision["codes"] == ["password_locked"]
    assert decision["primary_code"] == "password_locked"  # what to tell the customer first
    assert decision["policy_version"]
    later = api.client.post("/v1/accounts/D1/authorize", headers=ingest, json={
        "amount": "10.00", "at": (T0 + 2 * 24 * 60 * MINUTE).isoformat()}).json()
    assert later["approved"] is True and later["primary_code"] is None
    assert_problem(api.client.post("/v1/accounts/D1/authorize", headers=ingest,
                                   json={"amount": "1.234"}), 422, "amount")
    assert_problem(api.client.post("/v1/accounts/D1/authorize", headers=ingest,
                                   json={"amount": "0"}), 422, "amount")
    assert_problem(api.client.post("/v1/accounts/D1/authorize", headers=ingest,
                                   json={"amount": "1.00", "kind": "loan"}), 422, "kind")
    assert_problem(api.client.post("/v1/accounts/NOPE/authorize", headers=ingest,
                                   json={"amount": "1.00"}), 404, "account_id")


def test_unknown_account_is_404(api: Api) -> None:
    operator = api.as_role("operator")
    for path in ("/v1/accounts/NOPE", "/v1/accounts/NOPE/explanation",
                 "/v1/accounts/NOPE/events"):
        assert_problem(api.client.get(path, headers=operator), 404, "account_id")


def test_bad_at_is_422_naming_at(api: Api) -> None:
    api.ingest(opened("T1"))
    operator = api.as_role("operator")
    for value in ("yesterday", "2026-01-05T10:00:00", "9999-12-31T23:59:59-12:00"):
        response = api.client.get("/v1/accounts/T1", params={"at": value}, headers=operator)
        assert_problem(response, 422, "at")
    # An unencoded "+" arrives as a space; it is read as the offset it was meant to be.
    ok = api.client.get("/v1/accounts/T1?at=2026-01-05T12:00:00+08:00", headers=operator)
    assert ok.status_code == 200, ok.text
    assert ok.json()["at"] == "2026-01-05T12:00:00+08:00"


def test_event_history_pages(api: Api) -> None:
    api.ingest(opened("H1"), *wrong_passwords("H1", T0 + MINUTE, count=3))
    operator = api.as_role("operator")
    first = api.client.get("/v1/accounts/H1/events", params={"limit": 2},
                           headers=operator).json()
    assert [e["event"]["type"] for e in first["events"]] == ["account_opened",
                                                             "password_attempt"]
    rest = api.client.get("/v1/accounts/H1/events", params={"after": first["next_after"]},
                          headers=operator).json()
    assert len(rest["events"]) == 2
    assert rest["next_after"] is None


def test_request_id_is_echoed_or_made(api: Api) -> None:
    response = api.client.get("/healthz", headers={"X-Request-ID": "req-123"})
    assert response.headers["x-request-id"] == "req-123"
    made = api.client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 32
    problem = api.client.get("/v1/accounts/X", headers={"X-Request-ID": "req-456"})
    assert problem.json()["request_id"] == "req-456"


def test_healthz_and_unknown_routes(api: Api) -> None:
    health = api.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert_problem(api.client.get("/v1/nothing-here"), 404)
    assert_problem(api.client.delete("/v1/events", headers=api.as_role("admin")), 405)


def test_unexpected_errors_are_a_generic_500(api: Api, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from jiefeng.service.engine import Engine

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(Engine, "authorize", explode)
    api.ingest(opened("X1"))
    response = api.client.post("/v1/accounts/X1/authorize", headers=api.as_role("ingest"),
                               json={"amount": "1.00"}, )
    body = assert_problem(response, 500)
    assert "hunter2" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]
    assert "hunter2" in caplog.text  # logged for us, not sent to them


def test_metrics(api: Api) -> None:
    api.ingest(opened("M1"), *wrong_passwords("M1", T0 + MINUTE))
    api.client.post("/v1/accounts/M1/authorize", headers=api.as_role("ingest"),
                    json={"amount": "1.00"})
    api.client.post("/v1/events", json={"events": [{"event_id": "bad"}]},
                    headers=api.as_role("ingest"))
    text = api.client.get("/metrics").text
    assert 'jiefeng_events_ingested_total{status="accepted"} 6.0' in text
    assert 'jiefeng_events_ingested_total{status="rejected"} 1.0' in text
    assert 'jiefeng_decisions_total{outcome="declined"} 1.0' in text
    assert 'jiefeng_holds_active{code="password_locked"} 1.0' in text
    assert 'jiefeng_http_request_duration_seconds_bucket{le="0.005",method="POST",' \
           'route="/v1/accounts/{account_id}/authorize"}' in text


def test_openapi_and_docs(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/events", "/v1/accounts/{account_id}/authorize", "/v1/accounts/{account_id}",
                 "/v1/accounts/{account_id}/explanation", "/v1/accounts/{account_id}/events",
                 "/v1/accounts/{account_id}/appeals", "/v1/appeals", "/v1/appeals/stats",
                 "/v1/appeals/{appeal_id}/decision", "/v1/maintenance-windows",
                 "/v1/maintenance-windows/{window_id}/cancel", "/v1/migrations",
                 "/v1/migrations/{campaign_id}/complete", "/v1/accounts/{account_id}/manual-holds",
                 "/v1/accounts/{account_id}/manual-holds/release", "/v1/sweeps/dry-run",
                 "/v1/sweeps", "/v1/policies", "/v1/policies/validate",
                 "/v1/policies/{version}/activate", "/v1/audit", "/v1/keys",
                 "/v1/keys/{key_id}/revoke", "/healthz", "/metrics"):
        assert path in paths, path
    assert "bearer" in spec["components"]["securitySchemes"]
    assert api.client.get("/docs").status_code == 200


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00",
                                   "1999-12-31T23:59:59+00:00"])
def test_times_out_of_range_are_422_not_500(api: Api, value: str) -> None:
    api.ingest(opened("TR"))
    operator = api.as_role("operator")
    window = api.client.post("/v1/maintenance-windows", headers=operator,
                             json={"start": value, "end": "2026-01-06T00:00:00+08:00"})
    assert_problem(window, 422, "start")
    decision = api.client.post("/v1/accounts/TR/authorize", headers=api.as_role("ingest"),
                               json={"amount": "1.00", "at": value})
    assert_problem(decision, 422, "at")
    assert_problem(api.client.get("/v1/accounts/TR", params={"at": value}, headers=operator),
                   422, "at")


EXTREME_EVENTS = {
    "amount 1e999999999": opened("XA", credit_limit="1e999999999"),
    "at year 9999": opened("XB", at=T0.replace(year=9999, month=12, day=31)),
    "at overflowing UTC": opened("XC") | {"at": "9999-12-31T23:59:59-12:00"},
}


@pytest.mark.parametrize("name", sorted(EXTREME_EVENTS))
def test_extreme_event_values_are_rejected_not_500(api: Api, name: str) -> None:
    response = api.client.post("/v1/events", json={"events": [EXTREME_EVENTS[name]]},
                               headers=api.as_role("ingest"))
    assert response.status_code == 422, response.text


def test_database_trouble_is_a_retryable_problem(api: Api,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError

    from jiefeng.service.engine import Engine

    def busy(*args, **kwargs):
        raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))

    monkeypatch.setattr(Engine, "ingest", busy)
    response = api.client.post("/v1/events", json={"events": [opened("DB")]},
                               headers=api.as_role("ingest"))
    assert_problem(response, 503)
    assert response.headers["retry-after"] == "2"
    assert "locked" not in response.text

    def clash(*args, **kwargs):
        raise IntegrityError("INSERT", {}, Exception("duplicate key value"))

    monkeypatch.setattr(Engine, "ingest", clash)
    response = api.client.post("/v1/events", json={"events": [opened("DB")]},
                               headers=api.as_role("ingest"))
    assert_problem(response, 409)
    assert "duplicate key" not in response.text

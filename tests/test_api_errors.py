"""HTTP errors as docs/api.md says (hardening items 13 and 23): bad JSON 400, a body that is
not JSON 415, 405 with a correct Allow header, unreadable bodies named, long ids cut."""

from __future__ import annotations

from test_api_support import Api, api, assert_problem  # noqa: F401  (fixture)

JSON = {"Content-Type": "application/json"}


def _post(api: Api, content: bytes, headers: dict | None = None):  # noqa: F811
    return api.client.post("/v1/events", content=content,
                           headers={**api.as_role("ingest"), **(headers or JSON)})


def test_bad_json_is_400_naming_the_problem(api: Api) -> None:  # noqa: F811
    body = assert_problem(_post(api, b'{"events": [ {not json'), 400, "(body)")
    assert "not valid JSON" in body["detail"]


def test_a_body_that_is_not_json_is_415(api: Api) -> None:  # noqa: F811
    for kind in ("application/x-www-form-urlencoded", "text/plain"):
        body = assert_problem(_post(api, b"events=1", {"Content-Type": kind}), 415)
        assert "application/json" in body["detail"]


def test_405_names_the_allowed_methods(api: Api) -> None:  # noqa: F811
    response = api.client.get("/v1/events", headers=api.as_role("ingest"))
    assert_problem(response, 405)
    assert response.headers["Allow"] == "POST"
    both = api.client.delete("/v1/maintenance-windows", headers=api.as_role("operator"))
    assert_problem(both, 405)
    assert both.headers["Allow"] == "GET, POST"


def test_oversized_numbers_and_deep_nesting_are_named(api: Api) -> None:  # noqa: F811
    huge = b'{"events": [{"event_id": "e1", "n": 1' + b"0" * 5000 + b"}]}"
    assert "number in the body is too long" in assert_problem(_post(api, huge), 400)["detail"]
    deep = b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert "nested too deeply" in assert_problem(_post(api, deep), 400)["detail"]


def test_long_ids_are_cut_in_answers(api: Api) -> None:  # noqa: F811
    event = {"event_id": "x" * 10_000, "type": "login", "at": "2026-01-05T10:00:00+08:00",
             "account_id": "A1", "device_id": "d1"}
    response = api.client.post("/v1/events", json={"events": [event]},
                               headers=api.as_role("ingest"))
    assert len(response.text) < 2_000
    result = response.json()["results"][0]
    assert result["status"] == "rejected" and result["event_id"] == "x" * 64 + "…"

"""What a problem document echoes is cut (hardening item 13): an id of 10,000 characters in a
404, an unknown route, an unknown event type, a long field name; the id's prefix stays visible,
followed by an ellipsis. One place does it (problem_body), so every problem is bounded."""

from __future__ import annotations

import datetime as dt

from jiefeng.api.problems import MAX_ERRORS, Problem, problem_body
from jiefeng.shown import MAX_TEXT_CHARS, cut
from test_api_support import Api, api, assert_problem, opened  # noqa: F401  (fixture)

LONG = "Z" * 10_000
SHOWN = "Z" * 64 + "…"
AT = dt.datetime(2026, 1, 5, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).isoformat()


def _bounded(response, limit: int = 2_000) -> dict:
    assert len(response.text) < limit, len(response.text)
    assert "Z" * 65 not in response.text
    return response.json()


def test_a_long_account_id_in_a_404_is_cut(api: Api) -> None:  # noqa: F811
    response = api.client.get(f"/v1/accounts/{LONG}/explanation",
                              headers=api.as_role("reviewer"))
    body = _bounded(assert_problem(response, 404, "account_id") and response)
    assert f"no account '{SHOWN}'" in body["detail"]
    assert len(body["detail"]) < 120
    assert body["errors"][0]["reason"] == f"no account '{SHOWN}'"


def test_an_unknown_route_with_a_long_segment_is_cut(api: Api) -> None:  # noqa: F811
    response = api.client.get(f"/v1/{LONG}/more", headers=api.as_role("reviewer"))
    assert_problem(response, 404)
    body = _bounded(response)
    assert body["detail"] == f"no such resource: /v1/{SHOWN}/more"


def test_an_unknown_event_type_is_cut_everywhere_it_is_echoed(api: Api) -> None:  # noqa: F811
    event = {"event_id": "e1", "type": LONG, "at": AT, "account_id": "A1"}
    response = api.client.post("/v1/events", json={"events": [event]},
                               headers=api.as_role("ingest"))
    assert_problem(response, 422, "events[0].type")
    body = _bounded(response)
    assert f"unknown event type '{SHOWN}'" in body["detail"]
    assert body["errors"][0]["reason"] == f"unknown event type '{SHOWN}'"
    assert body["results"][0]["reason"] == f"unknown event type '{SHOWN}'"
    assert body["title"] == "Unprocessable Content"


def test_validation_errors_cut_long_field_names_and_never_echo_the_input(
        api: Api) -> None:  # noqa: F811
    api.ingest(opened("A1"))
    response = api.client.post("/v1/accounts/A1/authorize",
                               json={"amount": "1.00", LONG: LONG},
                               headers=api.as_role("ingest"))
    assert_problem(response, 422)
    body = _bounded(response)
    assert body["errors"] == [{"field": SHOWN, "reason": "unknown field"}]
    assert body["detail"] == f"{SHOWN}: unknown field"
    assert body["title"] == "Unprocessable Content"  # the same title as POST /v1/events'
    assert all(set(error) == {"field", "reason"} for error in body["errors"])  # no `input`


def test_every_problem_is_bounded_in_one_place() -> None:
    many = [{"field": f"f{n}." + "Y" * 5_000, "reason": "R" * 5_000} for n in range(500)]
    body = problem_body(400, "Bad Request", "see " + "Y" * 10_000 + " and " + "w " * 5_000,
                        many, "rid", {"results": [{"reason": "Q" * 5_000}]})
    assert body["detail"].startswith("see " + "Y" * 64 + "… and w w")
    assert len(body["detail"]) <= MAX_TEXT_CHARS + 1
    assert len(body["errors"]) == MAX_ERRORS
    assert body["errors"][0] == {"field": "f0." + "Y" * 61 + "…", "reason": "R" * 64 + "…"}
    assert body["results"] == [{"reason": "Q" * 64 + "…"}]
    assert Problem(422, "x").title == "Unprocessable Content"
    assert Problem(413, "x").title == "Content Too Large"


def test_cutting_keeps_short_text_and_is_idempotent() -> None:
    text = "events[0].type: unknown event type 'login2'"
    assert cut(text) == text
    once = cut(f"no account '{LONG}' at /v1/accounts/{LONG}/explanation")
    assert once == f"no account '{SHOWN}' at /v1/accounts/{SHOWN}/explanation"
    assert cut(once) == once

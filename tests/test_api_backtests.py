"""POST /v1/backtests: operators start a backtest, poll it, read backtest.json and the report;
other roles cannot; bad requests name the field; every request is audited."""

from __future__ import annotations

import datetime as dt
import time

from backtest_portfolio import candidate_text, portfolio
from test_api_support import Api, api, assert_problem  # noqa: F401  (fixture)

TOML = {"Content-Type": "application/toml"}
AFTER_HISTORY = dt.datetime(2026, 9, 2, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _ingest_history(api: Api) -> None:  # noqa: F811
    api.clock.at = AFTER_HISTORY  # the ingest clock is past every event of the history
    results = api.ingest(*portfolio())["results"]
    assert all(r["status"] == "accepted" for r in results), results


def _upload_candidate(api: Api) -> str:  # noqa: F811
    response = api.client.post("/v1/policies", headers={**api.as_role("operator"), **TOML},
                               content=candidate_text().encode())
    assert response.status_code == 201, response.text
    return response.json()["version"]


def _wait(api: Api, backtest_id: str) -> dict:  # noqa: F811
    for _ in range(600):
        response = api.client.get(f"/v1/backtests/{backtest_id}",
                                  headers=api.as_role("operator"))
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.05)
    raise AssertionError("the backtest did not finish")


def test_an_operator_runs_a_backtest_in_the_background(api: Api) -> None:  # noqa: F811
    _ingest_history(api)
    version = _upload_candidate(api)
    started = api.client.post("/v1/backtests", headers=api.as_role("operator"),
                              json={"candidate_version": version})
    assert started.status_code == 202, started.text
    backtest_id = started.json()["backtest_id"]
    assert started.headers["Location"] == f"/v1/backtests/{backtest_id}"
    assert started.json()["status"] in ("queued", "running", "done")
    done = _wait(api, backtest_id)
    assert done["status"] == "done", done["error"]
    result = done["result"]
    assert result["policies"]["candidate"]["version"] == version
    cure = result["by_code"]["cure_probation"]
    assert cure["candidate"]["median_hours_to_release"] == 120 * 24
    assert done["requested_by"] == "operator-1"
    report = api.client.get(f"/v1/backtests/{backtest_id}/report",
                            headers=api.as_role("operator"))
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    assert report.headers["cache-control"] == "no-store"
    assert "data:image/png;base64," in report.text
    listed = api.client.get("/v1/backtests", headers=api.as_role("operator")).json()
    assert [b["backtest_id"] for b in listed["backtests"]] == [backtest_id]
    audited = [e for e in api.audit() if e["action"] == "backtests.create"]
    assert audited and audited[0]["who"]["actor"] == "operator-1"
    assert audited[0]["target"] == backtest_id


def test_other_roles_cannot_start_or_read_backtests(api: Api) -> None:  # noqa: F811
    for role in ("ingest", "reviewer"):
        assert_problem(api.client.post("/v1/backtests", headers=api.as_role(role),
                                       json={"candidate_version": "x"}), 403)
        assert_problem(api.client.get("/v1/backtests", headers=api.as_role(role)), 403)
    assert_problem(api.client.post("/v1/backtests", json={"candidate_version": "x"}), 401)
    _ingest_history(api)
    assert_problem(api.client.get("/v1/backtests/A000001",
                                  headers=api.customer("QUIET1")), 403)


def test_bad_requests_name_the_field_and_start_nothing(api: Api) -> None:  # noqa: F811
    _ingest_history(api)
    version = _upload_candidate(api)
    operator = api.as_role("operator")
    cases = [
        ({"candidate_version": "no-such-version"}, "candidate_version"),
        ({"candidate_version": version, "baseline_version": "nope"}, "baseline_version"),
        ({"candidate_version": version, "accounts": "score >"}, "accounts"),
        ({"candidate_version": version, "from": "2026-05-01T00:00:00+08:00",
          "to": "2026-02-01T00:00:00+08:00"}, "to"),
        ({"candidate_version": version, "sample": 0}, "sample"),
        ({"candidate_version": version, "from": "2026-05-01"}, "from"),
        ({}, "candidate_version"),
    ]
    for body, field in cases:
        assert_problem(api.client.post("/v1/backtests", headers=operator, json=body), 422,
                       field)
    assert api.client.get("/v1/backtests", headers=operator).json()["backtests"] == []
    assert_problem(api.client.get("/v1/backtests/bt-missing", headers=operator), 404)


def test_the_console_lists_backtests_and_opens_their_reports(api: Api) -> None:  # noqa: F811
    from test_web_console_http import _sign_in

    _ingest_history(api)
    version = _upload_candidate(api)
    started = api.client.post("/v1/backtests", headers=api.as_role("operator"),
                              json={"candidate_version": version})
    backtest_id = started.json()["backtest_id"]
    assert _wait(api, backtest_id)["status"] == "done"
    _sign_in(api, "operator")
    page = api.client.get("/console/backtests?lang=en")
    assert page.status_code == 200 and f'data-backtest="{backtest_id}"' in page.text
    report = api.client.get(f"/console/backtests/{backtest_id}/report?lang=en")
    assert report.status_code == 200 and "data:image/png;base64," in report.text
    assert "img-src data:" in report.headers["content-security-policy"]
    missing = api.client.get("/console/backtests/nope/report?lang=en")
    assert missing.status_code == 404
    _sign_in(api, "reviewer")
    assert api.client.get("/console/backtests?lang=en").status_code == 403
    assert api.client.get(f"/console/backtests/{backtest_id}/report").status_code == 403

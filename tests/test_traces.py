"""Decision traces (issue 12 §2): every hold records the rule that fired, the policy version,
the parameters read with their values and the facts compared; explanations show the
thresholds a hold was decided under; the trace is exported, redacted for the customer where
the cause is confidential."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builders import DAY, HOUR, MINUTE, T0, World, policy_with
from jiefeng.batch.synthetic import PortfolioSpec, generate_portfolio
from jiefeng.cli import app
from jiefeng.domain import causes
from jiefeng.domain import holds as H
from jiefeng.domain.trace import TRACE_SCHEMA, hold_traces
from jiefeng.explain.structured import build_explanation
from test_api_support import T0 as API_T0
from test_api_support import (  # noqa: F401 - `api` is a fixture
    Api,
    api,
    assert_problem,
    event,
    opened,
    wrong_passwords,
)


def test_a_password_lock_records_its_rule_parameters_and_facts(account):
    account.wrong_password(T0 + HOUR, times=5)
    trace = account.hold(H.PASSWORD_LOCKED).trace
    policy = account.policy
    assert trace.rule == "password.consecutive_failures"
    assert trace.policy_version == policy.version
    assert trace.at == T0 + HOUR + 4 * MINUTE
    assert trace.params == {
        "password.max_consecutive_failures": policy.password.max_consecutive_failures,
        "password.lock_hours": policy.password.lock_hours}
    assert trace.facts["failures"] == policy.password.max_consecutive_failures
    assert trace.facts["attempt"] == account.last_event_id()


def test_a_cash_out_trace_names_the_detector_that_fired(account):
    for i in range(3):  # three round amounts at one merchant within the window
        account.purchase(T0 + DAY + i * MINUTE, "1000.00", merchant="M-RAPID")
    trace = account.hold(H.CASH_OUT_SUSPECTED).trace
    assert trace.rule == "cash_out.rapid_merchant"
    assert trace.params["cash_out.rapid_purchase_count"] == \
        account.policy.cash_out.rapid_purchase_count
    assert trace.facts["same_merchant_purchases"] == 3
    assert trace.facts["merchant_id"] == "M-RAPID"


def test_every_hold_placed_in_a_portfolio_carries_a_trace_of_its_own_cause():
    """Each placement site in every cause passes a trace whose rule is `<cause>.<rule>`: read
    from the HOLD_PLACED effects, which name the trace's rule and policy (a placement without
    a trace names neither). Effects, not a replaced `place`: compiled causes (`make native`)
    call it directly."""
    from jiefeng.domain import core
    from jiefeng.domain import events as ev
    from jiefeng.domain.effects import HOLD_PLACED
    from jiefeng.domain.scopes import SCOPE_TYPES, Scopes, apply_scope_command
    from jiefeng.policy.schema import default_policy

    cause_of = {kind.code: cause.name for cause in causes.CAUSES for kind in cause.holds}
    rows = generate_portfolio(PortfolioSpec(accounts=120, months=17, seed=3))
    policy = default_policy()
    scopes = Scopes()
    by_account: dict[str, list] = {}
    for row in rows:
        parsed = ev.parse_event(row)
        if row["type"] in SCOPE_TYPES:
            scopes = apply_scope_command(scopes, parsed)
        elif row.get("account_id"):
            by_account.setdefault(row["account_id"], []).append(parsed)
    placed = []
    for account_id, events in by_account.items():
        _, effects = core.fold(account_id, events, policy, scopes)
        placed += [(e.code, e.data) for e in effects if e.kind == HOLD_PLACED]
    own_codes = {code for code, _ in placed}
    assert own_codes >= set(H.HOLD_CODES) - set(H.SCOPED_CODES) - {H.MANUAL_REVIEW}
    doc = (Path(__file__).parents[1] / "docs" / "reason-codes.md").read_text(encoding="utf-8")
    for code, data in placed:
        assert "rule" in data, code  # placed without a trace
        assert f"`{data['rule']}`" in doc, f"{data['rule']} is not in docs/reason-codes.md"
        assert data["rule"].split(".", 1)[0] == cause_of[code], (code, data["rule"])
        assert data["policy_version"] == policy.version


def test_the_explanation_shows_the_threshold_the_hold_was_decided_under(account):
    account.wrong_password(T0 + HOUR, times=5)
    at = T0 + 2 * HOUR
    stricter = policy_with(account.policy, password={"max_consecutive_failures": 3}
                           ).model_copy(update={"version": "stricter-1"})
    state = account.peek(at)
    explanation = build_explanation(state, at, stricter, account.scopes)
    hold = explanation["holds"][0]
    failures = next(e for e in hold["evidence"] if e["fact"] == "password_failures")
    assert failures["threshold"] == 5  # the lock's own policy, not the one asked under
    assert hold["decided_under"] == account.policy.version
    assert hold["release_judged_under"] == "stricter-1"
    assert explanation["policy_version"] == "stricter-1"


def test_a_score_hold_is_released_under_its_own_terms_and_says_so():
    world = World()
    account = world.account()
    account.score(T0 + DAY, 500)
    later = policy_with(world.policy, score={"threshold": 620, "release_at": 680}
                        ).model_copy(update={"version": "later-2"})
    at = T0 + 2 * DAY
    hold = build_explanation(account.peek(at), at, later, world.scopes)["holds"][0]
    assert hold["code"] == H.SCORE_BELOW_THRESHOLD
    assert hold["decided_under"] == world.policy.version
    assert hold["release_judged_under"] == world.policy.version  # keeps its terms


def test_the_export_is_versioned_and_redacts_confidential_causes_for_the_customer(account):
    account.send("purchase", T0 + DAY, amount="500.00", merchant_id="M1", kind="transfer")
    account.wrong_password(T0 + DAY + HOUR, times=5)
    at = T0 + DAY + 2 * HOUR
    state = account.peek(at)
    staff = {t["code"]: t for t in hold_traces(state, at, account.scopes)}
    customer = {t["code"]: t for t in hold_traces(state, at, account.scopes, for_customer=True)}
    assert staff[H.CASH_OUT_SUSPECTED]["schema"] == TRACE_SCHEMA
    assert staff[H.CASH_OUT_SUSPECTED]["rule"] == "cash_out.kind_not_allowed"
    assert staff[H.CASH_OUT_SUSPECTED]["params"]["cash_out.quiet_days"] == \
        account.policy.cash_out.quiet_days
    redacted = customer[H.CASH_OUT_SUSPECTED]
    assert redacted["redacted"] is True and redacted["rule"] == "cash_out"
    assert redacted["params"] is None and redacted["facts"] is None
    # Not confidential: the customer sees the same trace as the staff.
    assert customer[H.PASSWORD_LOCKED] == staff[H.PASSWORD_LOCKED]
    json.dumps(staff)  # JSON-ready: instants, dates and decimals as strings


def test_scoped_holds_trace_the_command_that_placed_them():
    world = World()
    account = world.account()
    world.command("maintenance_scheduled", T0 + HOUR, window_id="W1",
                  start=(T0 + DAY).isoformat(), end=(T0 + DAY + 2 * HOUR).isoformat())
    at = T0 + DAY + HOUR
    (trace,) = hold_traces(account.peek(at), at, world.scopes)
    assert trace["code"] == H.MAINTENANCE and trace["rule"] == "maintenance.window"
    assert trace["facts"]["window_id"] == "W1"
    assert trace["policy_version"] is None


# --- through HTTP and the CLI --------------------------------------------------------------------


def _trace(api: Api, account_id: str, code: str, headers: dict[str, str]):
    return api.client.get(f"/v1/accounts/{account_id}/holds/{code}/trace", headers=headers)


def test_the_trace_endpoint_for_staff_and_customer(api: Api) -> None:
    api.ingest(opened("A1"), *wrong_passwords("A1", API_T0 + 10 * MINUTE),
               event("purchase", "A1", "A1-t1", API_T0 + 20 * MINUTE, amount="500.00",
                     merchant_id="M1", kind="transfer"))
    operator = _trace(api, "A1", "password_locked", api.as_role("operator"))
    assert operator.status_code == 200, operator.text
    body = operator.json()
    assert body["schema"] == TRACE_SCHEMA and body["rule"] == "password.consecutive_failures"
    assert body["params"]["password.max_consecutive_failures"] == 5
    assert body["account_id"] == "A1" and body["at"]

    staff_cash = _trace(api, "A1", "cash_out_suspected", api.as_role("reviewer")).json()
    assert staff_cash["facts"]["kind"] == "transfer"
    customer = api.customer("A1")
    own = _trace(api, "A1", "cash_out_suspected", customer).json()
    assert own["redacted"] is True and own["params"] is None and own["facts"] is None

    api.ingest(opened("A2"))
    assert _trace(api, "A2", "password_locked", customer).status_code == 403
    assert _trace(api, "A1", "password_locked", {}).status_code == 401
    missing = _trace(api, "A1", "dormant", api.as_role("operator"))
    assert_problem(missing, 404)
    assert missing.json()["errors"][0]["field"] == "code"
    unknown = _trace(api, "NOPE", "dormant", api.as_role("operator"))
    assert_problem(unknown, 404)
    long_code = _trace(api, "A1", "x" * 5000, api.as_role("operator"))
    assert_problem(long_code, 404)
    assert len(long_code.text) < 2000


def test_explain_trace_prints_the_versioned_export(tmp_path: Path) -> None:
    lines = [json.dumps(opened("A1"))] + [json.dumps(e) for e in
                                         wrong_passwords("A1", API_T0 + 10 * MINUTE)]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = str(tmp_path / "t.db")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(events), "--db", db, "--quiet"]).exit_code == 0
    at = (API_T0 + 2 * HOUR).isoformat()
    result = runner.invoke(app, ["explain", "A1", "--db", db, "--at", at, "--trace"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["schema"] == TRACE_SCHEMA and body["account_id"] == "A1"
    assert [t["rule"] for t in body["traces"]] == ["password.consecutive_failures"]
    missing = runner.invoke(app, ["explain", "NOPE", "--db", db, "--trace"])
    assert missing.exit_code == 2


@pytest.mark.parametrize("cause", causes.CAUSES, ids=lambda c: c.name)
def test_trace_parameters_name_only_declared_sections(cause):
    """`read(policy, "section.key", ...)` in a cause module names its declared sections only."""
    import re

    module = next(p for p in Path(causes.__file__).parent.glob("*.py")
                  if f'name="{cause.name}"' in p.read_text(encoding="utf-8"))
    text = module.read_text(encoding="utf-8")
    named = set(re.findall(r'"(\w+)\.\w+"', text))
    sections = {name for name in named
                if name in {"billing", "overdue", "cure_probation", "external_overdue",
                            "cash_out", "score", "dormancy", "account_security", "id_expiry",
                            "password", "policy_tightening", "support", "appeals"}}
    assert sections <= set(cause.policy_sections), sorted(sections - set(cause.policy_sections))


def test_a_closed_line_reopens_on_the_terms_it_was_closed_under():
    """Activated after the line closed, a stricter reopening rule does not apply to it: it
    reopens on the activities its own hold asks for, and the explanation says so."""
    from jiefeng.domain.scopes import PolicyActivation

    world = World()
    account = world.account()
    closes_at = T0 + 365 * DAY
    account.advance(closes_at + HOUR)
    base = world.policy
    required = base.dormancy.reopen_activity_count
    stricter = policy_with(base, dormancy={"reopen_activity_count": required + 4}
                           ).model_copy(update={"version": "stricter-dormancy"})
    switch = closes_at + DAY
    world.scopes.policy_activations = [
        PolicyActivation(switch, stricter.version, "0" * 64, "pa-1", "ops-1", stricter)]
    at = switch + DAY
    hold = build_explanation(account.peek(at), at, base, world.scopes)["holds"][0]
    assert hold["code"] == H.DORMANT
    assert hold["release"][0]["progress"]["required"] == required  # the hold's own
    assert hold["release_judged_under"] == base.version
    assert hold["steps"][0]["required"] == required
    for i in range(required):
        account.send("activity", at + i * HOUR, category="life_service")
    assert account.holds() == set()  # reopened after `required`, not `required + 4`

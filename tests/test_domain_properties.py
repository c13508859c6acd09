"""Property tests: random lives of one account, checked for the engine's invariants.

A timeline is an opening followed by a mix of purchases, refunds, repayments, password
attempts, score updates, logins, profile changes, activities, bureau records, appeals and (in
some timelines) portfolio commands — maintenance windows, migrations and policy sweeps — at
strictly increasing times over about two years. "Ticks" let time pass without an event, as the
service's timer would.

The incremental run grows the scopes as commands arrive and applies each account event with
`decide`; the replay folds every account event at once against the final scopes. Scopes answer
"as of t", so both must agree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from builders import DAY, HOUR, MINUTE, T0, wire
from jiefeng.domain import effects as E
from jiefeng.domain import holds as H
from jiefeng.domain.core import active_holds, advance, decide, fold, new_account, status_at
from jiefeng.domain.effects import Effect
from jiefeng.domain.events import parse_event
from jiefeng.domain.money import format_fen
from jiefeng.domain.scopes import Scopes, apply_scope_command
from jiefeng.domain.state import AccountState
from jiefeng.policy.schema import default_policy

POLICY = default_policy()
HORIZON = T0 + 730 * DAY
END = T0 + 800 * DAY  # the replay and the incremental run are compared here
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)

MERCHANTS = ["M-1", "M-2", "M-HIGHRISK-001"]
DEVICES = [f"dev-{i}" for i in range(6)]
APPEALABLE = sorted(POLICY.appeals.appealable_codes)
SWEEP_CRITERIA = ["score < 650", "utilization > 0.5", "days_past_due > 0",
                  "purchases_90d = 0 AND account_age_days > 200", "deposits < 100"]
REOPEN_CRITERIA = ["score >= 700", "utilization < 0.2", "days_past_due = 0", "deposits >= 0"]


# --- generating timelines ------------------------------------------------------------------------


@dataclass
class Item:
    kind: str  # "account" | "scope" | "tick"
    at: dt.datetime
    event: Any = None


@dataclass
class Timeline:
    items: list[Item] = field(default_factory=list)
    _next_id: int = 0

    def add(self, role: str, at: dt.datetime, type_: str | None = None, **fields: Any) -> Any:
        event = None
        if type_ is not None:
            self._next_id += 1
            event = parse_event(wire(type_, at, f"e{self._next_id}", **fields))
        self.items.append(Item(role, at, event))
        return event

    def account_event(self, at: dt.datetime, type_: str, **fields: Any) -> Any:
        return self.add("account", at, type_, account_id="A1", **fields)

    def command(self, at: dt.datetime, type_: str, **fields: Any) -> Any:
        return self.add("scope", at, type_, actor="ops-1", **fields)

    @property
    def account_events(self) -> list[Any]:
        return [item.event for item in self.items if item.kind == "account"]

    def __repr__(self) -> str:  # what hypothesis prints for a falsifying example
        lines = []
        for item in self.items:
            if item.event is None:
                lines.append(f"  {item.at.isoformat()} tick")
            else:
                data = item.event.model_dump(mode="json", by_alias=True, exclude_none=True)
                data.pop("at", None)
                lines.append(f"  {item.at.isoformat()} {data}")
        return "Timeline(\n" + "\n".join(lines) + "\n)"


fen_amounts = st.one_of(
    st.sampled_from([100_000, 200_000, 8_800, 12_345, 950_050, 1]),
    st.integers(1, 300_000),
)
gaps = st.one_of(
    st.integers(1, 180).map(lambda m: m * MINUTE),
    st.integers(1, 72).map(lambda h: h * HOUR),
    st.integers(1, 60).map(lambda d: d * DAY),
)
ACCOUNT_STEPS = ["purchase", "purchase", "purchase", "refund", "repayment", "repayment",
                 "brush", "password_attempt", "password_burst", "password_reset",
                 "score_update", "login", "device_burst", "profile_change", "identity_verified",
                 "activity",
                 "activity_burst", "bureau_record", "asset_update", "id_document_updated",
                 "appeal", "installment", "installment", "tick", "tick"]
SCOPE_STEPS = ["maintenance", "cancel", "migration", "migration_done", "migration_done",
               "sweep", "sweep"]


@st.composite
def timelines(draw: Any, with_scopes: bool | None = None) -> Timeline:
    if with_scopes is None:
        with_scopes = draw(st.booleans())
    line = Timeline()
    statement_day = draw(st.integers(1, 28))
    due_day = draw(st.integers(1, 28).filter(lambda d: d != statement_day))
    segment = draw(st.sampled_from([None, "mass", "affluent"]))
    opened = {"credit_limit": draw(st.sampled_from(["3000.00", "10000.00", "50000.00"])),
              "statement_day": statement_day, "due_day": due_day,
              "id_expires_on": (T0.date() + draw(st.integers(-5, 1100)) * DAY).isoformat()}
    if segment:
        opened["segment"] = segment
    line.account_event(T0, "account_opened", **opened)

    purchases: list[tuple[str, int]] = []
    windows: list[str] = []
    campaigns: list[str] = []
    steps = ACCOUNT_STEPS + (SCOPE_STEPS if with_scopes else [])
    at = T0
    for _ in range(draw(st.integers(1, 60))):
        at = at + draw(gaps)
        if at > HORIZON:
            break
        step = draw(st.sampled_from(steps))
        if step == "purchase":
            amount = draw(fen_amounts)
            event = line.account_event(
                at, "purchase", amount=format_fen(amount),
                merchant_id=draw(st.sampled_from(MERCHANTS)),
                kind=draw(st.sampled_from(["purchase"] * 8 + ["transfer", "cash_withdrawal"])),
                **({} if (ok := draw(st.sampled_from([None, None, True, False]))) is None
                   else {"password_ok": ok}))
            purchases.append((event.event_id, amount))
        elif step == "refund":
            if purchases and draw(st.booleans()):
                pid, amount = purchases[draw(st.integers(0, len(purchases) - 1))]
                refund = draw(st.integers(1, amount + 100))
            else:
                pid, refund = "no-such-purchase", 100
            line.account_event(at, "refund", amount=format_fen(refund), purchase_event_id=pid)
        elif step == "repayment":
            line.account_event(at, "repayment", amount=format_fen(draw(fen_amounts)))
        elif step == "brush":
            amount = format_fen(draw(st.integers(100, 20_000)))
            line.account_event(at, "purchase", amount=amount, merchant_id="M-1")
            line.account_event(at + 30 * MINUTE, "repayment", amount=amount)
            at += 30 * MINUTE
        elif step == "password_attempt":
            line.account_event(at, "password_attempt", ok=draw(st.booleans()))
        elif step == "password_burst":
            for i in range(5):
                line.account_event(at + i * MINUTE, "password_attempt", ok=False)
            at += 4 * MINUTE
        elif step == "password_reset":
            line.account_event(at, "password_reset", identity_verified=draw(st.booleans()))
        elif step == "score_update":
            score = draw(st.one_of(st.integers(560, 720), st.integers(350, 950)))
            line.account_event(at, "score_update", score=score)
        elif step == "login":
            line.account_event(at, "login", device_id=draw(st.sampled_from(DEVICES)))
        elif step == "device_burst":
            for i in range(3):
                line.account_event(at + i * HOUR, "login",
                                   device_id=draw(st.sampled_from(DEVICES)))
            at += 2 * HOUR
        elif step == "profile_change":
            line.account_event(at, "profile_change",
                               field=draw(st.sampled_from(["phone", "bank_card", "address"])))
        elif step == "identity_verified":
            line.account_event(at, "identity_verified", method="face")
        elif step == "activity":
            line.account_event(at, "activity", category="payment")
        elif step == "activity_burst":
            for i in range(5):
                line.account_event(at + i * HOUR, "activity", category="life_service")
            at += 4 * HOUR
        elif step == "bureau_record":
            status = draw(st.sampled_from(["overdue", "settled"]))
            line.account_event(at, "bureau_record",
                               product=draw(st.sampled_from(["jiebei", "mybank"])),
                               status=status,
                               days_past_due=draw(st.integers(0, 60)) if status == "overdue"
                               else 0,
                               amount=format_fen(draw(st.integers(0, 100_000))))
        elif step == "asset_update":
            line.account_event(at, "asset_update", deposits=format_fen(draw(fen_amounts)),
                               wealth_balance="0.00")
        elif step == "id_document_updated":
            expires = at.date() + draw(st.integers(-10, 3000)) * DAY
            line.account_event(at, "id_document_updated", expires_on=expires.isoformat())
        elif step == "appeal":
            appeal_id = f"ap-{len(line.items)}"
            line.account_event(at, "appeal_submitted", appeal_id=appeal_id,
                               hold_code=draw(st.sampled_from(APPEALABLE)))
            at += draw(st.integers(1, 72)) * HOUR
            line.add("account", at, "appeal_decided", actor="ops-1", account_id="A1",
                     appeal_id=appeal_id, decision=draw(st.sampled_from(["approve", "reject"])))
        elif step == "installment":
            # Valid or not (unknown purchase, a months not allowed, a reused plan id, past
            # the due date): the fold must agree with itself either way.
            pid = (purchases[draw(st.integers(0, len(purchases) - 1))][0]
                   if purchases and draw(st.integers(0, 5)) else "no-such-purchase")
            line.account_event(at, "installment_plan_created",
                               plan_id=f"p{draw(st.integers(0, 3))}", purchase_event_id=pid,
                               months=draw(st.sampled_from([3, 6, 12, 4])))
        elif step == "tick":
            line.add("tick", at)
        elif step == "maintenance":
            start = at + draw(st.integers(0, 48)) * HOUR
            window_id = f"w{len(windows)}"
            windows.append(window_id)
            line.command(at, "maintenance_scheduled", window_id=window_id,
                         start=start.isoformat(),
                         end=(start + draw(st.integers(1, 48)) * HOUR).isoformat(),
                         **({"segment": s} if (s := draw(st.sampled_from([None, "mass"])))
                            else {}))
        elif step == "cancel" and windows:
            line.command(at, "maintenance_cancelled", window_id=draw(st.sampled_from(windows)))
        elif step == "migration":
            campaign_id = f"c{len(campaigns)}"
            campaigns.append(campaign_id)
            scope = draw(st.sampled_from([{"account_ids": ["A1"]}, {"account_ids": ["A2"]},
                                          {"segment": "mass"}]))
            line.command(at, "migration_started", campaign_id=campaign_id, **scope)
        elif step == "migration_done" and campaigns:
            line.command(at, "migration_completed", campaign_id=draw(st.sampled_from(campaigns)),
                         **draw(st.sampled_from([{}, {"account_ids": ["A1"]}])))
        elif step == "sweep":
            line.command(at, "policy_sweep", sweep_id=f"s{len(line.items)}",
                         criteria=draw(st.sampled_from(SWEEP_CRITERIA)),
                         reopen_criteria=draw(st.sampled_from(REOPEN_CRITERIA)))
    return line


# --- running them -----------------------------------------------------------------------------


@dataclass
class Step:
    event: Any
    scopes: Scopes
    before: AccountState  # the state advanced to the event's time, before the event
    after: AccountState
    effects: list[Effect]


@dataclass
class Run:
    state: AccountState  # advanced to END
    effects: list[Effect]
    scopes: Scopes  # the final scopes
    steps: list[Step]


def run_incrementally(line: Timeline) -> Run:
    scopes = Scopes()
    state = new_account("A1")
    effects: list[Effect] = []
    steps: list[Step] = []
    for item in line.items:
        if item.kind == "scope":
            scopes = apply_scope_command(scopes, item.event)
        elif item.kind == "tick":
            state, more = advance(state, item.at, POLICY, scopes)
            effects.extend(more)
        else:
            before, _ = advance(state, item.at, POLICY, scopes) if state.opened else (state, [])
            state, more = decide(state, item.event, POLICY, scopes)
            effects.extend(more)
            steps.append(Step(item.event, scopes, before, state, more))
    state, more = advance(state, END, POLICY, scopes)
    effects.extend(more)
    return Run(state, effects, scopes, steps)


def owed(state: AccountState) -> int:
    return state.ledger.total_owed_fen


def implied_status(state: AccountState, at: dt.datetime, scopes: Scopes) -> str:
    """The status the holds imply, derived here independently of derive_status."""
    held = set(state.holds)
    if scopes.maintenance_at(at, state.segment):
        held.add(H.MAINTENANCE)
    if scopes.migrations_at(at, state.account_id, state.segment):
        held.add(H.MIGRATION)
    if held & {H.DORMANT, H.POLICY_TIGHTENING}:
        return "closed"
    return "frozen" if held else "active"


def check_holds(holds: list[H.Hold]) -> None:
    for hold in holds:
        assert isinstance(hold.evidence, dict) and hold.evidence, hold
        assert isinstance(hold.placed_by, str) and hold.placed_by, hold
        assert hold.release_paths, hold
        assert hold.releases_at is None or hold.releases_at > hold.since, hold
        assert hold.since.tzinfo is not None


# --- the properties ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(timelines())
def test_repayment_is_never_blocked(line):
    for step in run_incrementally(line).steps:
        if step.event.type != "repayment":
            continue
        ignored = [e for e in step.effects if e.kind == E.EVENT_IGNORED]
        assert ignored == []
        paid_down = owed(step.before) - owed(step.after)
        credited = step.after.credit_balance_fen - step.before.credit_balance_fen
        assert paid_down >= 0 and credited >= 0
        assert paid_down + credited == step.event.amount_fen
        assert step.after.repayments_total_fen == (step.before.repayments_total_fen
                                                   + step.event.amount_fen)


@PROPERTY_SETTINGS
@given(timelines())
def test_status_always_equals_what_the_holds_imply(line):
    run = run_incrementally(line)
    for step in run.steps:
        at = step.event.at
        status = status_at(step.after, at, step.scopes)
        assert status == implied_status(step.after, at, step.scopes)
        assert status == H.derive_status(active_holds(step.after, at, step.scopes))
        for decided in (e for e in step.effects if e.kind == E.PURCHASE_DECIDED):
            own_codes = {"kind_not_allowed", "wrong_password", "insufficient_credit"}
            hold_codes = [c for c in decided.data["codes"] if c not in own_codes]
            # A purchase is approved exactly when nothing holds the line (and the request
            # itself is fine); the codes it cites are the holds in force.
            assert set(hold_codes) == {h.code for h in active_holds(step.after, at, step.scopes)}
            if decided.data["approved"]:
                assert status == "active"
    assert status_at(run.state, END, run.scopes) == implied_status(run.state, END, run.scopes)


@PROPERTY_SETTINGS
@given(timelines())
def test_replay_equals_incremental(line):
    run = run_incrementally(line)
    replayed, effects = fold("A1", line.account_events, POLICY, run.scopes, until=END)
    assert replayed.holds == run.state.holds
    assert replayed.summary() == run.state.summary()
    assert replayed == run.state
    assert effects == run.effects
    # Folded only as far as the last event, then advanced: the same again.
    partial, _ = fold("A1", line.account_events, POLICY, run.scopes)
    advanced, _ = advance(partial, END, POLICY, run.scopes)
    assert advanced == run.state
    assert (sorted(h.code for h in active_holds(advanced, END, run.scopes))
            == sorted(h.code for h in active_holds(run.state, END, run.scopes)))


@PROPERTY_SETTINGS
@given(timelines())
def test_no_hold_without_evidence(line):
    run = run_incrementally(line)
    for step in run.steps:
        check_holds(active_holds(step.after, step.event.at, step.scopes))
        for effect in step.effects:
            if effect.kind in (E.HOLD_PLACED, E.HOLD_UPDATED, E.HOLD_RELEASED):
                assert effect.code in H.HOLD_CODES and effect.cause
    check_holds(active_holds(run.state, END, run.scopes))


@PROPERTY_SETTINGS
@given(timelines())
def test_every_hold_has_a_way_out(line):
    run = run_incrementally(line)
    for step in run.steps:
        for hold in active_holds(step.after, step.event.at, step.scopes):
            assert hold.release_paths
            assert set(hold.release_paths) <= {H.RELEASE_TIME, H.RELEASE_CONDITION,
                                               H.RELEASE_EVENT, H.RELEASE_REVIEW}
            if hold.releases_at is not None:
                assert hold.releases_at > hold.since
            if hold.code in (H.CURE_PROBATION, H.PASSWORD_LOCKED, H.CASH_OUT_SUSPECTED,
                             H.ACCOUNT_SECURITY, H.MAINTENANCE):
                assert hold.releases_at is not None, hold
    # Holds with a date are gone once it has passed.
    for hold in active_holds(run.state, END, run.scopes):
        assert hold.releases_at is None or hold.releases_at > END


@PROPERTY_SETTINGS
@given(timelines())
def test_folding_is_deterministic(line):
    scopes = run_incrementally(line).scopes
    first = fold("A1", line.account_events, POLICY, scopes, until=END)
    second = fold("A1", line.account_events, POLICY, scopes, until=END)
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert [e.to_dict() for e in first[1]] == [e.to_dict() for e in second[1]]


@PROPERTY_SETTINGS
@given(timelines())
def test_the_ledger_stays_consistent(line):
    """After every event: nothing paid beyond what was billed, a minimum never above its new
    balance, a credit balance only when nothing billed is owed, plans within their totals, and a
    statement past due exactly when its judged minimum is still unpaid beyond the tolerance."""
    tolerance_fen = POLICY.billing.tolerance_fen
    for step in run_incrementally(line).steps:
        ledger = step.after.ledger
        for s in ledger.statements:
            assert 0 <= s.paid_fees_fen <= s.fees_fen
            assert 0 <= s.paid_interest_fen <= s.interest_fen
            assert 0 <= s.paid_installments_fen <= s.installments_fen
            assert 0 <= s.paid_principal_fen <= s.principal_fen
            assert 0 <= s.minimum_due_fen <= s.new_balance_fen
            if s.past_due:
                assert ledger.unpaid_minimum_fen(s) > tolerance_fen
        if ledger.credit_balance_fen:  # it pays the next statement; nothing billed is owed
            assert ledger.billed_owed_fen == 0
        for plan in ledger.plans.values():
            assert 0 <= plan.billed_principal_fen <= plan.principal_fen
            assert 0 <= plan.billed_fee_fen <= plan.fee_fen
            assert 0 < plan.remaining_months <= plan.months
        assert step.after.available_credit_fen >= 0
        assert (H.OVERDUE in step.after.holds) == bool(ledger.past_due_statements())

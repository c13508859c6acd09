"""What the operator console shows, gathered from the engine and the store (no HTML here).

- `overview`: accounts by status, active holds by code, holds placed and released by code per
  week (the chart), appeals waiting and SLA breaches;
- `account_view`: an account's status, holds with their evidence, ledger, hold timeline from
  the effects, and its latest events as stored (operators see actors and internal reasons);
- `appeal_view`: one appeal with the hold's evidence and the disputed purchases.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import func, select

from jiefeng.domain import holds as H
from jiefeng.domain.clock import local_date
from jiefeng.service import operator as ops
from jiefeng.service.engine import AccountNotFound, Engine
from jiefeng.store import schema as t

CHART_WEEKS = 26  # the placed/released chart looks back half a year
EVENTS_SHOWN = 200  # the account page lists the latest events; the API pages through all
QUEUE_SHOWN = 500


def _week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def overview(engine: Engine, now: dt.datetime) -> dict[str, Any]:
    zone = engine.policy.zone
    store = engine.store
    this_week = _week_start(local_date(now, zone))
    weeks = [this_week - dt.timedelta(weeks=n) for n in range(CHART_WEEKS - 1, -1, -1)]
    first = weeks[0]
    placed: dict[str, Counter] = defaultdict(Counter)
    released: dict[str, Counter] = defaultdict(Counter)
    with store.read() as connection:
        statuses = store.status_counts(connection)
        active = Counter(code for row in store.hold_code_rows(connection)
                         for code in row.split(",") if code)
        for _account, kind, code, at_utc in store.hold_effects(connection):
            week = _week_start(local_date(t.parse_utc_text(at_utc), zone))
            if week < first or week > this_week:
                continue
            (placed if kind == "hold_placed" else released)[code][week] += 1
        _scoped(engine, connection, zone, placed, released)
    pending = ops.appeal_queue(engine, "pending", QUEUE_SHOWN)
    codes = sorted(set(placed) | set(released), key=H.HOLD_CODES.index)
    return {
        "statuses": {status: statuses.get(status, 0) for status in ("active", "frozen",
                                                                     "closed")},
        "accounts": sum(statuses.values()),
        "holds_by_code": sorted(active.items(), key=lambda item: (-item[1], item[0])),
        "appeals_waiting": len(pending),
        "sla_breached": sum(1 for appeal in pending if appeal["sla_breached"]),
        "oldest_appeals": pending[:5],
        "chart": {
            "weeks": [week.isoformat() for week in weeks],
            "placed": {code: [placed[code][w] for w in weeks] for code in codes},
            "released": {code: [released[code][w] for w in weeks] for code in codes},
        },
    }


def _scoped(engine: Engine, connection: Any, zone: Any, placed: dict[str, Counter],
            released: dict[str, Counter]) -> None:
    """Maintenance and migration holds are derived from the operator's commands, not stored
    per account: counted here as the accounts each window or campaign covers, in the week it
    starts (placed) and ends (released)."""
    a = t.accounts.c
    by_segment = dict(connection.execute(
        select(a.segment, func.count()).group_by(a.segment)).all())
    everyone = sum(by_segment.values())

    def week(at: dt.datetime) -> dt.date:
        return _week_start(local_date(at, zone))

    scopes = engine.scopes()
    for window in scopes.windows.values():
        covered = everyone if window.segment is None else by_segment.get(window.segment, 0)
        end = window.cancelled_at if window.cancelled_at is not None else window.end
        if covered and end > window.start:
            placed[H.MAINTENANCE][week(window.start)] += covered
            released[H.MAINTENANCE][week(end)] += covered
    for campaign in scopes.campaigns.values():
        covered = (len(campaign.account_ids) if campaign.account_ids is not None
                   else by_segment.get(campaign.segment, 0))
        if covered:
            placed[H.MIGRATION][week(campaign.started_at)] += covered
            if campaign.completed_all_at is not None:
                released[H.MIGRATION][week(campaign.completed_all_at)] += covered


def account_view(engine: Engine, account_id: str, now: dt.datetime) -> dict[str, Any]:
    state, scopes, at = engine.state_at(account_id, now)
    if not state.opened:
        raise AccountNotFound(account_id)
    explanation = engine.explain(account_id, at)
    zone = engine.policy.zone
    store = engine.store
    with store.read() as connection:
        timeline = [
            {"kind": row.kind, "code": row.code, "cause": row.cause,
             "at": t.parse_utc_text(row.at_utc).astimezone(zone).isoformat(),
             "data": json.loads(row.data)}
            for row in connection.execute(
                select(t.effects.c.kind, t.effects.c.code, t.effects.c.cause,
                       t.effects.c.at_utc, t.effects.c.data)
                .where(t.effects.c.account_id == account_id,
                       t.effects.c.kind.in_(["hold_placed", "hold_released"]))
                .order_by(t.effects.c.seq))]
        latest = connection.execute(
            select(t.events.c.seq, t.events.c.type, t.events.c.at_utc, t.events.c.actor,
                   t.events.c.body)
            .where(t.events.c.account_id == account_id)
            .order_by(t.events.c.seq.desc()).limit(EVENTS_SHOWN)).all()
    events = [{"seq": row.seq, "type": row.type, "actor": row.actor,
               "at": t.parse_utc_text(row.at_utc).astimezone(zone).isoformat(),
               "fields": _fields(row.body)} for row in latest]
    traces = {found["code"]: found for found in engine.traces(account_id, at)["traces"]}
    return {"account_id": account_id, "explanation": explanation, "timeline": timeline,
            "events": events, "events_shown": EVENTS_SHOWN, "traces": traces}


def _fields(body: str) -> str:
    """An event's own fields in one line (the common ones are columns of their own)."""
    raw = json.loads(body)
    for key in ("event_id", "type", "at", "account_id", "actor"):
        raw.pop(key, None)
    return ", ".join(f"{key}={value}" for key, value in sorted(raw.items()))


def appeal_view(engine: Engine, appeal_id: str, now: dt.datetime) -> dict[str, Any]:
    appeal = ops.appeal_dict(ops.get_appeal(engine, appeal_id), now, engine.policy.zone)
    explanation = engine.explain(appeal["account_id"], now)
    hold = next((h for h in explanation["holds"] if h["code"] == appeal["hold_code"]), None)
    disputed = []
    with engine.store.read() as connection:
        submitted = connection.execute(
            select(t.events.c.body).where(t.events.c.account_id == appeal["account_id"],
                                          t.events.c.type == "appeal_submitted")).scalars()
        ids: list[str] = []
        for body in submitted:
            raw = json.loads(body)
            if raw.get("appeal_id") == appeal_id:
                ids = list(raw.get("purchase_event_ids") or [])
        if ids:
            rows = connection.execute(
                select(t.events.c.event_id, t.events.c.at_utc, t.events.c.body, t.events.c.outcome)
                .where(t.events.c.event_id.in_(ids))).all()
            for row in rows:
                raw = json.loads(row.body)
                disputed.append({
                    "event_id": row.event_id,
                    "at": t.parse_utc_text(row.at_utc).astimezone(engine.policy.zone).isoformat(),
                    "amount": raw.get("amount"), "merchant_id": raw.get("merchant_id"),
                    "outcome": row.outcome})
    return {"appeal": appeal, "hold": hold, "disputed": disputed}

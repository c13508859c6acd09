"""产品迁移: the account is moving to another product (a migration campaign).

Scoped: the campaign lives once in the portfolio's scopes; an included account is held from
the campaign's start until the campaign records the account as completed.
"""

from __future__ import annotations

import datetime as dt

from jiefeng.domain import holds as H
from jiefeng.domain.causes.base import Cause, Explanation, HoldKind, PlanStep
from jiefeng.domain.causes.explaining import ExplainContext, Item, iso
from jiefeng.domain.scopes import Scopes
from jiefeng.domain.state import AccountState
from jiefeng.domain.trace import Trace
from jiefeng.policy.schema import Policy


def scoped_holds(state: AccountState, at: dt.datetime, scopes: Scopes) -> list[H.Hold]:
    return [
        H.Hold(
            H.MIGRATION,
            campaign.started_at,
            campaign.event_id,
            {"campaign_id": campaign.campaign_id, "started_at": campaign.started_at},
            placed_by_actor=campaign.actor,
            trace=Trace("migration.campaign", "", campaign.started_at, {}, {
                "campaign_id": campaign.campaign_id, "started_at": campaign.started_at,
                "started_by": campaign.actor}),
        )
        for campaign in scopes.migrations_at(at, state.account_id, state.segment)
    ]


def scope_blocks(state: AccountState, at: dt.datetime, scopes: Scopes) -> bool:
    return bool(scopes.campaigns) and scopes.migrating(at, state.account_id, state.segment)


def _evidence(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"fact": "migration_started", "value": iso(hold.evidence["started_at"])}]


def _release(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"path": H.RELEASE_EVENT, "condition": "migration_completed"}]


def _steps(hold: H.Hold, ctx: ExplainContext) -> list[Item]:
    return [{"step": "wait_for_migration"}]


def _plan(state: AccountState, hold: H.Hold, at: dt.datetime, policy: Policy) -> PlanStep:
    return PlanStep(awaited="migration_completed")


CAUSE = Cause(
    name="migration",
    holds=(
        HoldKind(H.MIGRATION, 1000, (H.RELEASE_EVENT,), Explanation(_evidence, _release, _steps),
                 scoped=True, plan=_plan),
    ),
    policy_sections=(),
    scoped_holds=scoped_holds,
    scope_blocks=scope_blocks,
)

"""Portfolio-wide operator commands, stored once with their scope.

Maintenance windows, migration campaigns and policy sweeps cover many accounts. They live here
once, not copied onto every account; an account's fold asks "what covers me at time t?".

Every entry remembers when it became known (`known_at`) and, if cancelled, when; a question
about time t only sees what was known at t, so an answer "as of t" never changes later.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from jiefeng.domain import events as ev
from jiefeng.domain.event_kinds import SCOPE_TYPES  # noqa: F401 - read from here too


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    window_id: str
    start: dt.datetime
    end: dt.datetime
    segment: str | None
    known_at: dt.datetime
    event_id: str
    actor: str
    cancelled_at: dt.datetime | None = None

    def covers(self, at: dt.datetime, segment: str | None) -> bool:
        return (
            self.known_at <= at
            and (self.cancelled_at is None or at < self.cancelled_at)
            and self.start <= at < self.end
            and (self.segment is None or self.segment == segment)
        )

    def applies_to(self, segment: str | None, as_of: dt.datetime) -> bool:
        """Known and not cancelled as of `as_of`, and meant for this segment."""
        return (
            self.known_at <= as_of
            and (self.cancelled_at is None or as_of < self.cancelled_at)
            and (self.segment is None or self.segment == segment)
        )


@dataclass(frozen=True, slots=True)
class MigrationCampaign:
    campaign_id: str
    started_at: dt.datetime
    account_ids: frozenset[str] | None
    segment: str | None
    event_id: str
    actor: str
    completed_accounts: dict[str, dt.datetime] = field(default_factory=dict)
    completed_all_at: dt.datetime | None = None

    def includes(self, account_id: str, segment: str | None) -> bool:
        if self.account_ids is not None:
            return account_id in self.account_ids
        return segment is not None and segment == self.segment

    def completed_at(self, account_id: str) -> dt.datetime | None:
        done = self.completed_accounts.get(account_id)
        if self.completed_all_at is not None and (done is None or self.completed_all_at < done):
            return self.completed_all_at
        return done

    def covers(self, at: dt.datetime, account_id: str, segment: str | None) -> bool:
        if at < self.started_at or not self.includes(account_id, segment):
            return False
        done = self.completed_at(account_id)
        return done is None or at < done


@dataclass(frozen=True, slots=True)
class Sweep:
    sweep_id: str
    at: dt.datetime
    criteria: str
    reopen_criteria: str
    event_id: str
    actor: str


@dataclass(frozen=True, slots=True)
class PolicyActivation:
    at: dt.datetime
    version: str
    sha256: str
    event_id: str
    actor: str
    policy: Any = None  # the Policy, attached by whoever loads the scopes from a store


@dataclass(frozen=True, slots=True)
class _Bounds:
    """What no window or campaign can cover, for the questions asked on every purchase."""

    window_spans: tuple[tuple[dt.datetime, dt.datetime], ...]  # (start, end) of each window
    campaigns_from: dt.datetime | None  # the earliest campaign start
    listed: frozenset[str]  # accounts a campaign names
    segments: frozenset[str]  # segments a campaign takes whole

    @classmethod
    def of(cls, scopes: Scopes) -> _Bounds:
        windows = scopes.windows.values()
        campaigns = scopes.campaigns.values()
        return cls(
            tuple((w.start, w.end) for w in windows),
            min((c.started_at for c in campaigns), default=None),
            frozenset(a for c in campaigns if c.account_ids is not None for a in c.account_ids),
            frozenset(c.segment for c in campaigns
                      if c.account_ids is None and c.segment is not None),
        )

    def outside_windows(self, at: dt.datetime) -> bool:
        for start, end in self.window_spans:
            if start <= at < end:
                return False
        return True

    def outside_campaigns(self, at: dt.datetime, account_id: str, segment: str | None) -> bool:
        return self.campaigns_from is None or at < self.campaigns_from or (
            account_id not in self.listed and segment not in self.segments)


@dataclass
class Scopes:
    """The portfolio's scoped commands. Small: bounded by operator activity, not by accounts.

    Not changed once asked a question (`apply_scope_command` returns new scopes): the bounds
    that answer most questions are computed on the first."""

    windows: dict[str, MaintenanceWindow] = field(default_factory=dict)
    campaigns: dict[str, MigrationCampaign] = field(default_factory=dict)
    sweeps: list[Sweep] = field(default_factory=list)  # kept sorted by time
    policy_activations: list[PolicyActivation] = field(default_factory=list)  # sorted by time
    _bounds: _Bounds | None = field(default=None, init=False, repr=False, compare=False)

    def bounds(self) -> _Bounds:
        bounds = self._bounds
        if bounds is None:
            bounds = self._bounds = _Bounds.of(self)
        return bounds

    def copy(self) -> Scopes:
        return Scopes(dict(self.windows), dict(self.campaigns), list(self.sweeps),
                      list(self.policy_activations))

    def policy_for(self, at: dt.datetime, base: Any) -> Any:
        """The policy in effect at `at`: the latest activation at or before it whose policy
        is known, else `base` (the built-in default, or an explicit what-if policy)."""
        if not self.policy_activations:
            return base  # the common case, on the fold's hot path
        chosen = base
        for activation in self.policy_activations:
            if activation.at > at:
                break
            if activation.policy is not None:
                chosen = activation.policy
        return chosen

    # --- questions an account asks ------------------------------------------------------------

    def maintenance_at(self, at: dt.datetime, segment: str | None) -> list[MaintenanceWindow]:
        if not self.windows or self.bounds().outside_windows(at):
            return []
        return [w for w in self.windows.values() if w.covers(at, segment)]

    def migrations_at(
        self, at: dt.datetime, account_id: str, segment: str | None
    ) -> list[MigrationCampaign]:
        if not self.campaigns or self.bounds().outside_campaigns(at, account_id, segment):
            return []
        return [c for c in self.campaigns.values() if c.covers(at, account_id, segment)]

    # The yes/no forms run for every purchase: no list is built, and the bounds answer most.
    def in_maintenance(self, at: dt.datetime, segment: str | None) -> bool:
        if self.bounds().outside_windows(at):
            return False
        return any(w.covers(at, segment) for w in self.windows.values())

    def migrating(self, at: dt.datetime, account_id: str, segment: str | None) -> bool:
        if self.bounds().outside_campaigns(at, account_id, segment):
            return False
        return any(c.covers(at, account_id, segment) for c in self.campaigns.values())


class ScopeRejected(ValueError):
    def __init__(self, field_name: str, reason: str):
        self.field = field_name
        self.reason = reason
        super().__init__(f"{field_name}: {reason}")


def check_scope_command(scopes: Scopes, event: Any) -> None:
    """Refuse an operator command that contradicts what is known (raises ScopeRejected)."""
    if isinstance(event, ev.MaintenanceScheduled):
        if event.window_id in scopes.windows:
            raise ScopeRejected("window_id", f"window {event.window_id!r} already exists")
    elif isinstance(event, ev.MaintenanceCancelled):
        window = scopes.windows.get(event.window_id)
        if window is None:
            raise ScopeRejected("window_id", f"no maintenance window {event.window_id!r}")
        if window.cancelled_at is not None:
            raise ScopeRejected("window_id", f"window {event.window_id!r} is already cancelled")
    elif isinstance(event, ev.MigrationStarted):
        if event.campaign_id in scopes.campaigns:
            raise ScopeRejected("campaign_id", f"campaign {event.campaign_id!r} already exists")
    elif isinstance(event, ev.MigrationCompleted):
        campaign = scopes.campaigns.get(event.campaign_id)
        if campaign is None:
            raise ScopeRejected("campaign_id", f"no migration campaign {event.campaign_id!r}")
        if campaign.completed_all_at is not None:
            raise ScopeRejected("campaign_id", f"campaign {event.campaign_id!r} already ended")
        if event.account_ids is not None and campaign.account_ids is not None:
            outside = sorted(set(event.account_ids) - campaign.account_ids)
            if outside:
                raise ScopeRejected("account_ids", f"not in the campaign: {', '.join(outside[:5])}")
    elif isinstance(event, ev.PolicySweep):
        if any(s.sweep_id == event.sweep_id for s in scopes.sweeps):
            raise ScopeRejected("sweep_id", f"sweep {event.sweep_id!r} already exists")


def apply_scope_command(scopes: Scopes, event: Any) -> Scopes:
    """Fold one operator command into the scopes; returns new scopes (the input is untouched).

    Commands that contradict the scopes (checked by `check_scope_command` before storing) are
    ignored here so a replay never fails.
    """
    try:
        check_scope_command(scopes, event)
    except ScopeRejected:
        return scopes
    new = scopes.copy()
    if isinstance(event, ev.MaintenanceScheduled):
        new.windows[event.window_id] = MaintenanceWindow(
            event.window_id, event.start, event.end, event.segment, event.at, event.event_id,
            event.actor,
        )
    elif isinstance(event, ev.MaintenanceCancelled):
        new.windows[event.window_id] = replace(
            new.windows[event.window_id], cancelled_at=event.at
        )
    elif isinstance(event, ev.MigrationStarted):
        ids = frozenset(event.account_ids) if event.account_ids is not None else None
        new.campaigns[event.campaign_id] = MigrationCampaign(
            event.campaign_id, event.at, ids, event.segment, event.event_id, event.actor
        )
    elif isinstance(event, ev.MigrationCompleted):
        campaign = new.campaigns[event.campaign_id]
        if event.account_ids is None:
            new.campaigns[event.campaign_id] = replace(campaign, completed_all_at=event.at)
        else:
            done = dict(campaign.completed_accounts)
            for account_id in event.account_ids:
                done.setdefault(account_id, event.at)
            new.campaigns[event.campaign_id] = replace(campaign, completed_accounts=done)
    elif isinstance(event, ev.PolicySweep):
        new.sweeps.append(
            Sweep(event.sweep_id, event.at, event.criteria, event.reopen_criteria, event.event_id,
                  event.actor)
        )
        new.sweeps.sort(key=lambda s: s.at)
    elif isinstance(event, ev.PolicyActivated):
        new.policy_activations.append(PolicyActivation(
            event.at, event.version, event.sha256, event.event_id, event.actor))
        new.policy_activations.sort(key=lambda a: a.at)
    return new



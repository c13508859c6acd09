"""The event types of the operator commands that change the portfolio's scopes (maintenance
windows, migrations, sweeps, policy activations; see jiefeng.domain.scopes).

A module of its own, importing nothing: reading a file's lines to order them needs this set
and nothing of the event models (`jiefeng.service.event_file`, which a process may run before
it has imported the rest of jiefeng).
"""

from __future__ import annotations

SCOPE_TYPES = frozenset(
    {
        "maintenance_scheduled",
        "maintenance_cancelled",
        "migration_started",
        "migration_completed",
        "policy_sweep",
        "policy_activated",
    }
)

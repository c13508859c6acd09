"""Sets of event types that code needs before it has imported the event models.

Importing nothing: reading a file's lines to order them needs the scope commands' types, and
`jiefeng ingest` keeps the operator commands' lines for its audit; both run in a process that
may not have imported `jiefeng.domain.events` (a file's index can be made by a process forked
before the command imports the rest of jiefeng: see jiefeng.service.event_file). The event
models check at import that these sets are theirs.
"""

from __future__ import annotations

# The operator commands that change the portfolio's scopes (see jiefeng.domain.scopes).
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
# Every operator event (`jiefeng.domain.events.OperatorEvent`).
OPERATOR_TYPES = SCOPE_TYPES | {"manual_hold_placed", "manual_hold_released", "appeal_decided"}
# What the command line audits as a person's decision: the operator events and appeals.
COMMAND_TYPES = OPERATOR_TYPES | {"appeal_submitted"}

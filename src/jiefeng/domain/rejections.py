"""The refusal of an event that is well-formed but contradicts the account (the store refuses
it before it is logged; the fold never sees it)."""

from __future__ import annotations


class DomainRejected(ValueError):
    """An event that is well-formed but contradicts the account; names the field and why."""

    def __init__(self, field_name: str, reason: str):
        self.field = field_name
        self.reason = reason
        super().__init__(f"{field_name}: {reason}")

"""The features sweep criteria may name: the catalog of the per-account feature snapshot
(`docs/criteria.md`). Its own module, without sqlglot: the feature table and the exports need
the catalog, not the criteria parser (importing sqlglot is a tenth of a command's start-up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class FeatureSpec:
    """One column of the per-account feature snapshot that criteria may name."""

    name: str
    kind: Literal["number", "text"]
    unit: str
    description: str

    @property
    def max_abs(self) -> int:
        """The largest absolute value the feature can take (see criteria.MAX_MAGNITUDE)."""
        return _MAX_ABS_BY_UNIT[self.unit]


# Generous: money is at most 10**13 fen per amount (jiefeng.domain.money), here in yuan with
# room for sums; utilization is capped at 1.
_MAX_ABS_BY_UNIT = {"points": 10**3, "yuan": 10**12, "ratio": 1, "days": 10**6,
                    "count": 10**7, "": 0}


FEATURES: dict[str, FeatureSpec] = {
    spec.name: spec
    for spec in (
        FeatureSpec(
            "score",
            "number",
            "points",
            "Credit score, integer 350-950; NULL if the account has never been scored.",
        ),
        FeatureSpec("credit_limit", "number", "yuan", "Current credit limit of the line."),
        FeatureSpec(
            "available_credit",
            "number",
            "yuan",
            "Credit still available: credit_limit minus the used balance.",
        ),
        FeatureSpec(
            "utilization",
            "number",
            "ratio",
            "Used balance / credit_limit, normally 0-1 (precomputed; NULL if the limit is 0).",
        ),
        FeatureSpec(
            "days_past_due",
            "number",
            "days",
            "Integer days since the due date of the oldest statement whose minimum is still "
            "past due; 0 if none.",
        ),
        FeatureSpec(
            "minimum_due",
            "number",
            "yuan",
            "What is still unpaid of the latest statement's minimum (it includes earlier "
            "unpaid minimums); 0 if none.",
        ),
        FeatureSpec(
            "revolving_balance",
            "number",
            "yuan",
            "Purchase principal billed and still owed, installments excluded.",
        ),
        FeatureSpec(
            "installment_balance",
            "number",
            "yuan",
            "Installments billed and unpaid plus installment-plan principal not yet billed.",
        ),
        FeatureSpec(
            "months_revolving",
            "number",
            "count",
            "Consecutive statements, up to the latest judged one, not paid in full by the end "
            "of their due day (plus grace days).",
        ),
        FeatureSpec("deposits", "number", "yuan", "Balance of the customer's deposit accounts."),
        FeatureSpec(
            "wealth_balance",
            "number",
            "yuan",
            "Balance of the customer's wealth-management products.",
        ),
        FeatureSpec(
            "account_age_days", "number", "days", "Integer days since the credit line was opened."
        ),
        FeatureSpec("purchases_90d", "number", "count", "Number of purchases in the last 90 days."),
        FeatureSpec(
            "segment",
            "text",
            "",
            "Customer segment label, e.g. 'mass' or 'affluent'; may be NULL.",
        ),
    )
}

"""What the customer page adds around the rendered explanation, built from the structured
explanation (no I/O): per hold, its progress toward release and when it lifts by itself; the
holds the customer may appeal and the purchases they may dispute; the rights block."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jiefeng.explain.render import load_catalog
from jiefeng.policy.schema import Policy


def _number(text: str) -> Decimal:
    return Decimal(str(text))


def _progress(release: dict[str, Any], m: dict[str, str]) -> dict[str, Any] | None:
    """A bar for a release condition that is a count or an amount; None for the others."""
    condition = release.get("condition")
    if condition == "repay_past_due" and "progress" in release:
        repaid, of = release["progress"]["repaid"], release["progress"]["of"]
        return {"value": float(_number(repaid)), "max": float(_number(of)) or 1.0,
                "label": m["progress_repaid"].format(repaid=f"¥{repaid}", of=f"¥{of}")}
    if condition == "recent_activity":
        done, required = release["progress"]["done"], release["progress"]["required"]
        return {"value": min(done, required), "max": required,
                "label": m["progress_count"].format(done=done, required=required)}
    if condition == "score_at_least" and release.get("current") is not None:
        current, required = release["current"], release["required"]
        return {"value": min(current, required), "max": required,
                "label": m["progress_score"].format(current=current, required=required)}
    return None


def hold_widgets(explanation: dict[str, Any], lang: str,
                 m: dict[str, str]) -> list[dict[str, Any]]:
    catalog = load_catalog(lang)
    widgets = []
    for hold in explanation["holds"]:
        bars = [bar for item in hold["release"] if (bar := _progress(item, m)) is not None]
        widgets.append({"code": hold["code"],
                        "title": catalog.get(f"hold.{hold['code']}.title", hold["code"]),
                        "progress": bars, "releases_at": hold["releases_at"]})
    return widgets


def appeal_choices(explanation: dict[str, Any], lang: str) -> dict[str, Any]:
    """The holds that can be appealed now (no appeal pending for them) and the approved
    purchases on record that an appeal may name as disputed."""
    catalog = load_catalog(lang)
    holds = [{"code": hold["code"],
              "title": catalog.get(f"hold.{hold['code']}.title", hold["code"])}
             for hold in explanation["holds"] if hold["appealable"]]
    purchases = [p for p in explanation["self_checks"]["recent_purchases"] if not p["declined"]]
    return {"holds": holds, "purchases": purchases}


def rights(policy: Policy, m: dict[str, str]) -> list[str]:
    disclosures = policy.disclosures
    name = disclosures.creditor_name or m["rights_default_creditor"]
    contact = disclosures.creditor_contact or policy.support.phone
    review = disclosures.human_review_contact or policy.support.phone
    return [m["rights_creditor"].format(name=name, contact=contact),
            m["rights_bureau"].format(name=name, days=disclosures.bureau_dispute_days),
            m["rights_review"].format(contact=review)]

"""The policy document: the default loads; invalid documents are refused naming the field."""

from __future__ import annotations

import pytest

from jiefeng.policy.schema import (
    Policy,
    PolicyInvalid,
    default_policy,
    default_policy_text,
    load_policy,
    parse_policy_text,
)


def with_section(section: str, body: str) -> str:
    """The default policy text with `body` inserted at the top of `[section]`."""
    text = default_policy_text()
    marker = f"[{section}]\n"
    assert marker in text
    return text.replace(marker, marker + body + "\n", 1)


def refused(text: str) -> PolicyInvalid:
    with pytest.raises(PolicyInvalid) as info:
        parse_policy_text(text)
    return info.value


def test_default_policy_loads_with_the_documented_values():
    policy = default_policy()
    assert isinstance(policy, Policy)
    assert policy.version == "default-2026.11.1"
    assert policy.timezone == "Asia/Shanghai"
    assert policy.billing.late_fee_daily_bp == 5
    assert policy.cure_probation.days == 90
    assert policy.external_overdue.min_days_past_due == 30
    assert policy.score.threshold == 600 and policy.score.release_at == 600
    assert policy.password.max_consecutive_failures == 5 and policy.password.lock_hours == 24
    assert "M-HIGHRISK-001" in policy.cash_out.high_risk_merchants
    assert "cash_out_suspected" in policy.appeals.appealable_codes
    assert str(policy.zone) == "Asia/Shanghai"


def test_default_policy_is_cached_and_equal_to_a_fresh_parse():
    assert default_policy() is default_policy()
    assert parse_policy_text(default_policy_text()) == default_policy()


def test_load_policy_from_a_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(with_section("score", "").replace("default-2026.11.1", "test-1"), "utf-8")
    assert load_policy(path).version == "test-1"


def test_unknown_setting_is_named():
    error = refused(with_section("score", "threshhold = 610"))
    assert error.problems == [("score.threshhold", "unknown setting")]


def test_unknown_section_is_named():
    error = refused(default_policy_text() + "\n[bonus]\nx = 1\n")
    assert error.problems[0] == ("bonus", "unknown setting")


def test_release_at_below_threshold_is_refused_naming_release_at():
    text = default_policy_text().replace("release_at = 600", "release_at = 590")
    error = refused(text)
    assert [field for field, _ in error.problems] == ["score.release_at"]
    assert "threshold" in error.problems[0][1]


def test_bureau_prenotice_must_precede_the_report():
    text = default_policy_text().replace("bureau_prenotice_days_past_due = 1",
                                         "bureau_prenotice_days_past_due = 3")
    error = refused(text)
    assert error.problems[0][0] == "overdue.bureau_prenotice_days_past_due"


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [("days = 90 ", "days = 30 ", "cure_probation.days"),
     ("threshold = 600", "threshold = 1000", "score.threshold"),
     ('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"', "timezone"),
     ("lock_hours = 24", 'lock_hours = "a day"', "password.lock_hours"),
     ('currency = "CNY"', 'currency = "not a currency"', "currency"),
     ('currency = "CNY"', 'currency = "XYZ"', "currency"),
     ("minimum_payment_pct = 10 ", "minimum_payment_pct = 0 ", "billing.minimum_payment_pct"),
     ("grace_days = 0 ", "grace_days = 31 ", "billing.grace_days"),
     ("tolerance_fen = 0 ", "tolerance_fen = -1 ", "billing.tolerance_fen"),
     ("allowed_months = [3, 6, 9, 12]", "allowed_months = [3, 3]",
      "installments.allowed_months"),
     ("allowed_months = [3, 6, 9, 12]", "allowed_months = [3, 24]",
      "installments.fee_pct_total")],
)
def test_out_of_range_values_are_named(old, new, field):
    text = default_policy_text()
    assert old in text
    error = refused(text.replace(old, new, 1))
    assert error.problems[0][0] == field


def test_version_is_required():
    text = "\n".join(line for line in default_policy_text().splitlines()
                     if not line.startswith("version"))
    assert refused(text).problems[0] == ("version", "Field required")


def test_not_toml():
    assert refused("version = ").problems[0][0] == "(file)"


def test_only_holds_that_lift_on_review_may_be_appealable():
    """An approved appeal releases the hold: a code whose cause does not declare `review`
    (overdue lifts when the past-due minimum is paid) or no hold code at all is refused."""
    base = 'appealable_codes = ["cash_out_suspected", "account_security", "score_below_threshold", "policy_tightening", "external_overdue", "dormant", "manual_review"]'  # noqa: E501
    assert base in default_policy_text()
    error = refused(default_policy_text().replace(base, 'appealable_codes = ["overdue"]'))
    assert error.problems[0][0] == "appeals.appealable_codes"
    assert "does not lift on review" in error.problems[0][1]
    error = refused(default_policy_text().replace(base, 'appealable_codes = ["frozen"]'))
    assert "not a hold code" in error.problems[0][1]
    assert parse_policy_text(default_policy_text().replace(
        base, 'appealable_codes = ["dormant"]')).appeals.appealable_codes == {"dormant"}

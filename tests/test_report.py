"""The demo report: a self-contained HTML file with an embedded chart and escaped text."""

from __future__ import annotations

import base64
import re
from datetime import date, timedelta

from jiefeng.batch.ledger_summary import LedgerSummary
from jiefeng.batch.report import write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _timeline() -> dict[date, dict[str, int]]:
    days = [date(2025, 1, 1) + timedelta(days=d) for d in range(120)]
    timeline = {}
    for k, day in enumerate(days):
        counts = {"overdue": 3 if 10 <= k < 40 else 0, "cure_probation": 3 if k >= 40 else 0}
        if k == 60:
            counts["maintenance"] = 2000  # a portfolio-wide window dwarfs the rest
        timeline[day] = counts
    return timeline


def _write(tmp_path, **overrides):
    arguments = dict(
        title="Demo <script>alert('title')</script> 解冻报告",
        policy_version="default-2026.11.1",
        active_by_day=_timeline(),
        placed_by_code={"overdue": 3, "cure_probation": 3, "maintenance": 2000},
        released_by_code={"overdue": 3, "cure_probation": 1, "maintenance": 2000},
        explanations=[
            ("overdue", "您的花呗已冻结：账单逾期 <script>alert(1)</script>",
             "Your line is frozen: the statement is overdue & unpaid <b>now</b>"),
            ("cure_probation", "观察期 90 天", "Probation for 90 days"),
        ],
    )
    arguments.update(overrides)
    return write_report(tmp_path / "out" / "report.html", **arguments)


def test_writes_html_with_table_chart_and_explanations(tmp_path):
    path = _write(tmp_path)
    assert path == tmp_path / "out" / "report.html"
    text = path.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in text
    assert "default-2026.11.1" in text
    # one table row per code, placed then released
    rows = re.findall(r'<tr><td><code>(\w+)</code></td><td class="num">([\d,]+)</td>'
                      r'<td class="num">([\d,]+)</td>', text)
    assert rows == [("overdue", "3", "3"), ("cure_probation", "3", "1"),
                    ("maintenance", "2,000", "2,000")]
    # the chart, embedded
    match = re.search(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(PNG_MAGIC)
    # explanations in both languages
    assert "您的花呗已冻结" in text and "观察期 90 天" in text
    assert text.count("<pre") == 4


def test_text_is_escaped(tmp_path):
    text = _write(tmp_path).read_text(encoding="utf-8")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Demo &lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt; 解冻报告" in text
    assert "overdue &amp; unpaid &lt;b&gt;now&lt;/b&gt;" in text


def test_png_saved_next_to_the_html(tmp_path):
    path = _write(tmp_path)
    png = path.with_name("report-holds.png")
    assert png.exists()
    data = png.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 1000
    embedded = re.search(r'base64,([A-Za-z0-9+/=]+)"', path.read_text(encoding="utf-8"))
    assert embedded is not None and base64.b64decode(embedded.group(1)) == data


def test_empty_timeline_still_writes_a_report(tmp_path):
    path = _write(tmp_path, active_by_day={}, placed_by_code={}, released_by_code={},
                  explanations=[])
    text = path.read_text(encoding="utf-8")
    assert "No explanations." in text
    assert path.with_name("report-holds.png").read_bytes().startswith(PNG_MAGIC)


def test_ledger_section_lists_outcomes_plans_and_the_overdue_share(tmp_path):
    ledger = LedgerSummary(
        statements={"paid_in_full": 1800, "minimum_met": 1200, "below_minimum": 12,
                    "not_yet_due": 300},
        accounts={"paid_in_full": 280, "minimum_met": 150, "below_minimum": 10,
                  "not_yet_due": 300},
        card_holders=300, overdue_accounts=10, revolving_never_overdue=140, plans=97,
        plan_accounts=40, plans_by_months={3: 25, 6: 24, 12: 48}, plan_principal_fen=12_345_678,
        plan_fee_fen=98_765)
    text = _write(tmp_path, ledger=ledger).read_text(encoding="utf-8")
    rows = re.findall(r'<tr><td>([^<]+)</td><td class="num">([\d,]+)</td>'
                      r'<td class="num">([\d,]+)</td></tr>', text)
    assert rows == [("paid in full", "1,800", "280"),
                    ("minimum met, the rest revolving", "1,200", "150"),
                    ("below the minimum: overdue", "12", "10"),
                    ("not yet due at the horizon", "300", "300")]
    assert "Installment plans created: 97 on 40 accounts (3 months: 25, 6 months: 24, " \
           "12 months: 48), principal ¥123456.78, fees ¥987.65." in text
    assert "10 of 300 card holders (3.3%)" in text


def test_no_ledger_section_without_a_summary(tmp_path):
    assert "Credit ledger" not in _write(tmp_path).read_text(encoding="utf-8")

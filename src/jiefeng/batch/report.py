"""The demo report: one self-contained HTML file with a chart of active holds over time.

    write_report(path, title=..., policy_version=..., active_by_day=..., placed_by_code=...,
                 released_by_code=..., explanations=[(code, zh_text, en_text), ...],
                 ledger=LedgerSummary | None) -> path

With a ledger summary (jiefeng.batch.ledger_summary) the report also shows the statements
judged by outcome, the installment plans created and the share of card holders frozen by
`overdue`.

The HTML embeds the chart as a base64 PNG, so it opens anywhere without its neighbours; the
same PNG is also saved next to it as `<stem>-holds.png`. All text is HTML-escaped. The chart is
drawn with matplotlib's Agg canvas directly (no pyplot), so no global backend or figure state
is touched and the function is safe to call from any thread.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from jiefeng.domain.holds import HOLD_CODES
from jiefeng.domain.money import format_fen

if TYPE_CHECKING:
    from jiefeng.batch.ledger_summary import LedgerSummary

# The order codes are listed in (the hold contract's order); unknown codes follow, sorted.
CODE_ORDER: tuple[str, ...] = HOLD_CODES

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei",
       sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #1f2328; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #59636e; margin-top: 0; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #d1d9e0; padding: 0.35rem 0.8rem; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: 600; }
img.chart { max-width: 100%; height: auto; border: 1px solid #d1d9e0; }
pre { background: #f6f8fa; padding: 0.8rem; white-space: pre-wrap; border-radius: 6px; }
section.explanation { margin-bottom: 1.5rem; }
"""


def _ordered(codes: Iterable[str]) -> list[str]:
    known = set(codes)
    head = [code for code in CODE_ORDER if code in known]
    return head + sorted(known - set(CODE_ORDER))


def _as_datetime(day: date) -> datetime:
    return day if isinstance(day, datetime) else datetime.combine(day, time())


def _draw_chart(active_by_day: Mapping[date, Mapping[str, int]], title: str) -> bytes:
    """A PNG: one line per hold code, accounts with that hold active on each day."""
    days = sorted(active_by_day)
    codes = _ordered(code for counts in active_by_day.values() for code in counts)
    figure = Figure(figsize=(11, 5.5), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    if not days or not codes:
        axes.text(0.5, 0.5, "no active holds in this period", ha="center", va="center",
                  transform=axes.transAxes)
        axes.set_xticks([])
        axes.set_yticks([])
    else:
        x = [_as_datetime(day) for day in days]
        palette = colormaps["tab10"]
        peaks = []
        for k, code in enumerate(codes):
            y = [active_by_day[day].get(code, 0) for day in days]
            peaks.append(max(y))
            axes.plot(x, y, label=code, linewidth=1.6, color=palette(k % 10),
                      linestyle="-" if k < 10 else "--")
        nonzero = sorted(p for p in peaks if p > 0)
        # One code (a portfolio-wide maintenance window, say) can dwarf the others: then a
        # symmetric log scale keeps the small lines readable.
        if len(nonzero) >= 2 and nonzero[-1] > 10 * nonzero[len(nonzero) // 2]:
            axes.set_yscale("symlog", linthresh=10)
            axes.set_ylabel("accounts with the hold active (symlog scale)")
        else:
            axes.set_ylabel("accounts with the hold active")
        axes.set_ylim(bottom=0)
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                    title="hold code", frameon=False)
        axes.margins(x=0.01)
    axes.set_title(title)
    figure.tight_layout()
    buffer = BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _table(placed_by_code: Mapping[str, int], released_by_code: Mapping[str, int],
           peak_active: Mapping[str, int]) -> str:
    codes = _ordered([*placed_by_code, *released_by_code])
    rows = []
    for code in codes:
        rows.append(
            f'<tr><td><code>{html.escape(code)}</code></td>'
            f'<td class="num">{int(placed_by_code.get(code, 0)):,}</td>'
            f'<td class="num">{int(released_by_code.get(code, 0)):,}</td>'
            f'<td class="num">{int(peak_active.get(code, 0)):,}</td></tr>'
        )
    total_placed = sum(int(v) for v in placed_by_code.values())
    total_released = sum(int(v) for v in released_by_code.values())
    return (
        '<table class="holds">\n<thead><tr><th>hold code</th><th>placed</th><th>released</th>'
        "<th>peak active (accounts)</th></tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + f'\n</tbody>\n<tfoot><tr><td>total</td><td class="num">{total_placed:,}</td>'
        f'<td class="num">{total_released:,}</td><td></td></tr></tfoot>\n</table>'
    )


def _ledger(ledger: LedgerSummary | None) -> str:
    if ledger is None:
        return ""
    rows = "\n".join(
        f'<tr><td>{html.escape(label)}</td><td class="num">{statements:,}</td>'
        f'<td class="num">{accounts:,}</td></tr>'
        for label, statements, accounts in ledger.rows())
    months = ", ".join(f"{m} months: {n:,}" for m, n in ledger.plans_by_months.items())
    return (
        "<h2>Credit ledger</h2>\n"
        '<table class="ledger">\n<thead><tr><th>statement outcome</th><th>statements</th>'
        "<th>accounts</th></tr></thead>\n<tbody>\n" + rows + "\n</tbody>\n</table>\n"
        f"<p>Installment plans created: {ledger.plans:,} on {ledger.plan_accounts:,} accounts"
        f"{' (' + html.escape(months) + ')' if months else ''}, principal "
        f"¥{format_fen(ledger.plan_principal_fen)}, fees ¥{format_fen(ledger.plan_fee_fen)}.</p>\n"
        f'<p class="overdue-share">Frozen by <code>overdue</code> at any time: '
        f"{ledger.overdue_accounts:,} of {ledger.card_holders:,} card holders "
        f"({ledger.overdue_share:.1%}); {ledger.revolving_never_overdue:,} revolved without "
        "ever being overdue.</p>\n"
    )


def _explanations(explanations: Iterable[tuple[str, str, str]]) -> str:
    parts = []
    for code, zh_text, en_text in explanations:
        parts.append(
            '<section class="explanation">'
            f"<h3><code>{html.escape(code)}</code></h3>\n"
            f'<pre lang="zh-CN">{html.escape(zh_text)}</pre>\n'
            f'<pre lang="en">{html.escape(en_text)}</pre>'
            "</section>"
        )
    return "\n".join(parts) if parts else "<p>No explanations.</p>"


def write_report(
    path: Path,
    *,
    title: str,
    policy_version: str,
    active_by_day: dict[date, dict[str, int]],
    placed_by_code: dict[str, int],
    released_by_code: dict[str, int],
    explanations: list[tuple[str, str, str]],
    ledger: LedgerSummary | None = None,
) -> Path:
    """Write the HTML report (and `<stem>-holds.png` beside it); returns the HTML path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = _draw_chart(active_by_day, "Active holds by code")
    png_path = path.with_name(f"{path.stem}-holds.png")
    png_path.write_bytes(png)

    days = sorted(active_by_day)
    period = f"{days[0].isoformat()} – {days[-1].isoformat()}" if days else "no days"
    peak_active: dict[str, int] = {}
    for counts in active_by_day.values():
        for code, count in counts.items():
            peak_active[code] = max(peak_active.get(code, 0), int(count))
    encoded = base64.b64encode(png).decode("ascii")
    document = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">Policy version <code>{html.escape(policy_version)}</code>
· period {html.escape(period)}</p>
<h2>Holds placed and released</h2>
{_table(placed_by_code, released_by_code, peak_active)}
{_ledger(ledger)}<h2>Active holds over time</h2>
<img class="chart" alt="Active holds by code over time" src="data:image/png;base64,{encoded}">
<p class="meta">Chart also saved as <code>{html.escape(png_path.name)}</code>.</p>
<h2>Explanations</h2>
{_explanations(explanations)}
</body>
</html>
"""
    path.write_text(document, encoding="utf-8")
    return path

"""backtest.html: the backtest's result for people, with its two charts.

One self-contained file (charts embedded as base64 PNG, drawn with matplotlib's Agg canvas,
no pyplot state): frozen accounts by hold code over time, baseline against candidate, and the
distribution of time to release under each. Every value comes from the backtest's dictionary
(the content of backtest.json), so the page and the file never disagree.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
from io import BytesIO
from typing import Any

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from jiefeng.batch.report import _STYLE

_SIDES = ("baseline", "candidate")
_EXTRA_STYLE = """
.side-by-side { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
@media (max-width: 700px) { .side-by-side { grid-template-columns: 1fr; } }
td.up { color: #b42318; } td.down { color: #067647; }
"""


def _png(figure: Figure) -> str:
    buffer = BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", bbox_inches="tight", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def frozen_chart(result: dict[str, Any]) -> str:
    """Accounts under each hold code per day: baseline solid, candidate dashed, one colour a
    code."""
    figure = Figure(figsize=(11, 5.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    series = result["frozen_by_day"]
    days = sorted(series["baseline"])
    codes = list(result["by_code"])
    if not days or not codes:
        axes.text(0.5, 0.5, "no holds in this window", ha="center", va="center",
                  transform=axes.transAxes)
    else:
        x = [dt.datetime.fromisoformat(day) for day in days]
        palette = colormaps["tab10"]
        for k, code in enumerate(codes):
            for side, style in zip(_SIDES, ("-", "--"), strict=True):
                y = [series[side].get(day, {}).get(code, 0) for day in days]
                axes.plot(x, y, linestyle=style, linewidth=1.5, color=palette(k % 10),
                          label=f"{code} ({side})")
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        axes.set_ylabel("accounts with the hold active")
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small",
                    frameon=False)
    axes.set_title("Frozen accounts by hold code: baseline (solid) vs candidate (dashed)")
    return _png(figure)


def release_chart(result: dict[str, Any]) -> str:
    """Histogram of hours from placement to release, both policies on the same bins."""
    figure = Figure(figsize=(11, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    hours = result["hours_to_release"]
    values = [h for side in _SIDES for h in hours[side]]
    if not values:
        axes.text(0.5, 0.5, "no hold was released in this window", ha="center", va="center",
                  transform=axes.transAxes)
    else:
        # Days on a log scale: a password lock lifts in hours, a cure period in months.
        days = {side: [max(h / 24, 1 / 24) for h in hours[side]] for side in _SIDES}
        top = max(max(v) for v in days.values() if v)
        edges = [1 / 24]
        while edges[-1] < top:
            edges.append(edges[-1] * 1.6)
        axes.hist([days[side] for side in _SIDES], bins=edges, label=list(_SIDES),
                  color=["#4c72b0", "#dd8452"])
        axes.set_xscale("log")
        axes.set_xlabel("days from placement to release (log scale)")
        axes.set_ylabel("holds released")
        axes.legend(frameon=False)
        axes.grid(True, alpha=0.3)
    axes.set_title("Time to release")
    return _png(figure)


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else html.escape(str(value))


def _delta_cell(base: Any, cand: Any) -> str:
    if not isinstance(base, (int, float)) or not isinstance(cand, (int, float)):
        return '<td class="num">–</td>'
    delta = cand - base
    css = "up" if delta > 0 else "down" if delta < 0 else ""
    text = f"{delta:+,.2f}" if isinstance(delta, float) else f"{delta:+,}"
    return f'<td class="num {css}">{text}</td>'


def _code_table(result: dict[str, Any]) -> str:
    rows = []
    metrics = (("accounts", "accounts"), ("holds_placed", "placed"),
               ("holds_released", "released"), ("account_days_frozen", "account-days frozen"),
               ("median_hours_to_release", "median h to release"),
               ("p90_hours_to_release", "p90 h to release"))
    for code, figures in result["by_code"].items():
        for key, label in metrics:
            base, cand = figures["baseline"][key], figures["candidate"][key]
            rows.append(f"<tr><td><code>{html.escape(code)}</code></td><td>{label}</td>"
                        f'<td class="num">{_num(base)}</td><td class="num">{_num(cand)}</td>'
                        f"{_delta_cell(base, cand)}</tr>")
        shares = " · ".join(
            f"{kind} {_num(figures['baseline']['released_by'][kind])} → "
            f"{_num(figures['candidate']['released_by'][kind])}"
            for kind in figures["baseline"]["released_by"])
        rows.append(f"<tr><td><code>{html.escape(code)}</code></td><td>released by (share)</td>"
                    f'<td colspan="3">{html.escape(shares)}</td></tr>')
        rows.append(f"<tr><td><code>{html.escape(code)}</code></td>"
                    "<td>frozen under one policy only</td>"
                    f'<td class="num">{figures["accounts_frozen_only_baseline"]:,}</td>'
                    f'<td class="num">{figures["accounts_frozen_only_candidate"]:,}</td>'
                    "<td></td></tr>")
    if not rows:
        return "<p>No hold was active in this window under either policy.</p>"
    return ("<table><thead><tr><th>hold code</th><th>figure</th><th>baseline</th>"
            "<th>candidate</th><th>change</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _status_table(result: dict[str, Any]) -> str:
    statuses = result["by_status_at_end"]
    rows = "".join(
        f"<tr><td>{status}</td><td class=\"num\">{statuses['baseline'][status]:,}</td>"
        f"<td class=\"num\">{statuses['candidate'][status]:,}</td>"
        f"{_delta_cell(statuses['baseline'][status], statuses['candidate'][status])}</tr>"
        for status in statuses["baseline"])
    reports = result["bureau_reports"]
    rows += (f"<tr><td>bureau reports in the window</td>"
             f"<td class=\"num\">{reports['baseline']:,}</td>"
             f"<td class=\"num\">{reports['candidate']:,}</td>"
             f"{_delta_cell(reports['baseline'], reports['candidate'])}</tr>")
    return ("<table><thead><tr><th>accounts at the end</th><th>baseline</th><th>candidate</th>"
            "<th>change</th></tr></thead><tbody>" + rows + "</tbody></table>")


def _sample(result: dict[str, Any]) -> str:
    parts = []
    for account in result["differing_sample"]:
        columns = []
        for side in _SIDES:
            entry = account[side]
            texts = entry.get("explanation", {})
            columns.append(
                f"<div><h4>{side}: {html.escape(entry['status'])}</h4>"
                f"<p class=\"meta\">holds in the window: "
                f"{html.escape(', '.join(entry['codes_in_window']) or 'none')}</p>"
                + "".join(f'<pre lang="{lang}">{html.escape(text)}</pre>'
                          for lang, text in texts.items())
                + "</div>")
        parts.append(f"<section><h3><code>{html.escape(account['account_id'])}</code></h3>"
                     f"<div class=\"side-by-side\">{''.join(columns)}</div></section>")
    return "\n".join(parts) if parts else "<p>No account's outcome differs.</p>"


def _changes(result: dict[str, Any]) -> str:
    """The settings the candidate changes, and how many accounts ever read one of them."""
    changed = result["policies"].get("changed_settings")
    if changed is None:  # a result written before the key existed
        return ""
    if not changed:
        return "The candidate changes no setting (only its version): every outcome is the same."
    names = ", ".join(f"<code>{html.escape(name)}</code>" for name in changed)
    reached = result["accounts"]["reached_by_changes"]
    return (f"Settings the candidate changes: {names} · read by {reached:,} of the "
            f"{result['accounts']['compared']:,} accounts compared (no other account can "
            "differ)")


def render_backtest_html(result: dict[str, Any]) -> str:
    policies = result["policies"]
    accounts = result["accounts"]
    title = (f"Backtest: {policies['candidate']['version']} against "
             f"{policies['baseline']['version']}")
    window = result["window"]
    criteria = accounts.get("criteria")
    selection = (f" · accounts where <code>{html.escape(criteria)}</code> as of "
                 f"{html.escape(accounts['criteria_as_of'])}" if criteria else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}{_EXTRA_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">Window {html.escape(window['from'])} – {html.escape(window['to'])}
· {accounts['compared']:,} accounts compared of {accounts['stored']:,} stored{selection}
· {accounts['differing']:,} with a different outcome</p>
<p class="meta">{_changes(result)}</p>
<h2>Accounts and bureau reports</h2>
{_status_table(result)}
<h2>Frozen accounts over time</h2>
<img class="chart" alt="Frozen accounts by hold code over time, baseline against candidate"
 src="data:image/png;base64,{frozen_chart(result)}">
<h2>Holds by code</h2>
{_code_table(result)}
<h2>Time to release</h2>
<img class="chart" alt="Distribution of time from placement to release"
 src="data:image/png;base64,{release_chart(result)}">
<h2>Accounts whose outcome differs (a sample)</h2>
{_sample(result)}
</body>
</html>
"""

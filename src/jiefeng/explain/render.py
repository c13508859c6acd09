"""Render a structured explanation (see `structured.py`) for the customer, in zh-CN or en.

All words come from the message catalogs (`catalogs/<lang>.json`); all dates, times and amounts
are formatted with Babel for the language, in the time zone given (`tz`, the policy's zone,
Asia/Shanghai by default). A message that is missing, or a placeholder it needs that the
explanation does not supply, raises `KeyError`: an explanation never shows a raw key or "{name}".

Parameters are formatted by their shape, which `structured.py` guarantees: "YYYY-MM-DDTHH:MM..."
is an instant, "YYYY-MM-DD" a date, "123.45" an amount of money; ids (refs, merchants, phone) are
shown as they are; codes (products, signals, dimensions, features) are looked up in the catalog.

Why one long module: every part of an explanation rendered the same way in text and HTML,
in both languages, from one set of formatting rules.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import string
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_time
from babel.lists import format_list
from babel.numbers import format_currency, format_decimal, format_percent
from babel.units import format_unit

SUPPORTED_LANGS = ("zh-CN", "en")
DEFAULT_TZ = "Asia/Shanghai"

_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONEY = re.compile(r"^-?\d+\.\d{2}$")

# Parameters shown exactly as given (identifiers and customer-facing text).
_RAW_KEYS = frozenset({"ref", "event_id", "merchant_id", "appeal_id", "phone",
                       "placed_by", "reason", "criteria", "version"})
# Parameters holding one code, or a list of codes, to look up in the catalog.
_CODE_KEYS = {"product": "product", "products": "product", "dimension": "dimension",
              "dimensions": "dimension", "feature": "feature", "features": "feature"}
# Facts whose `value` is a signal code.
_SIGNAL_FACTS = frozenset({"cash_out_signal", "security_signal"})
_LEDGER_KEYS = ("credit_limit", "available_credit", "unbilled", "billed_owed", "past_due",
                "credit_balance", "minimum_due", "revolving", "installments", "total_owed")


def _check_lang(lang: str) -> None:
    if lang not in SUPPORTED_LANGS:
        raise ValueError("lang: must be one of zh-CN, en")


@lru_cache(maxsize=len(SUPPORTED_LANGS))
def load_catalog(lang: str) -> dict[str, str]:
    """The messages for `lang` (key -> text with `{name}` placeholders)."""
    _check_lang(lang)
    path = resources.files("jiefeng.explain").joinpath("catalogs", f"{lang}.json")
    return json.loads(path.read_text(encoding="utf-8"))


def placeholders(message: str) -> set[str]:
    """The `{name}` placeholders of a message."""
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


class _Messages:
    """Catalog look-ups that fail loudly, and Babel formatting for one language and zone."""

    def __init__(self, lang: str, tz: str, currency: str):
        _check_lang(lang)
        self.lang = lang
        self.catalog = load_catalog(lang)
        self.locale = Locale.parse(lang.replace("-", "_"))
        self.tz = ZoneInfo(tz)
        self.currency = currency

    # catalog

    def text(self, key: str) -> str:
        try:
            return self.catalog[key]
        except KeyError:
            raise KeyError(f"catalog {self.lang}: no message {key!r}") from None

    def fmt(self, key: str, params: dict[str, Any] | None = None) -> str:
        message = self.text(key)
        values = {}
        for name in placeholders(message):
            if params is None or name not in params:
                raise KeyError(f"catalog {self.lang}: message {key!r} needs {{{name}}}")
            values[name] = params[name]
        return message.format_map(values)

    def code(self, kind: str, value: str) -> str:
        return self.text(f"{kind}.{value}")

    # values

    def instant(self, text: str) -> str:
        when = dt.datetime.fromisoformat(text).astimezone(self.tz)
        date = format_date(when.date(), "medium", locale=self.locale)
        time = format_time(when, "short", tzinfo=self.tz, locale=self.locale)
        pattern = str(self.locale.datetime_formats["medium"])
        return pattern.replace("{1}", date).replace("{0}", time)

    def date(self, text: str) -> str:
        return format_date(dt.date.fromisoformat(text), "medium", locale=self.locale)

    def money(self, text: str) -> str:
        if self.currency == "CNY":
            # Customers of a CNY line read ¥ in both languages; Babel's English says "CN¥".
            amount = Decimal(text)
            sign = "-" if amount < 0 else ""
            return f"{sign}¥{format_decimal(abs(amount), '#,##0.00', locale=self.locale)}"
        return format_currency(Decimal(text), self.currency, locale=self.locale)

    def number(self, value: int | float) -> str:
        return format_decimal(value, locale=self.locale)

    def duration(self, value: int, unit: str) -> str:
        name = f"duration-{unit.rstrip('s')}"
        text = format_unit(value, name, length="long", locale=self.locale)
        if name in text:  # Babel 2.18 has no long duration patterns for zh: use the short ones
            text = format_unit(value, name, length="short", locale=self.locale)
        return text

    def join(self, items: list[str]) -> str:
        return format_list(items, locale=self.locale) if items else self.text("label.unknown")

    def join_or(self, items: list[str]) -> str:
        return format_list(items, style="or", locale=self.locale)

    def join_neutral(self, items: list[str]) -> str:
        """A list that says neither "and" nor "or" (the features a mixed rule reads)."""
        return self.text("label.list_separator").join(items)

    def segment(self, label: str) -> str:
        """A customer segment as people say it: the catalog's label, else the raw label made
        readable ("young_urban" -> "young urban"), never the code as stored."""
        known = self.catalog.get(f"segment.{label}")
        return known if known is not None else re.sub(r"[_\-.]+", " ", label).strip()

    def decline(self, code: str) -> str:
        """Why a purchase was declined: a hold's title, or the request's own problem."""
        if f"decline.{code}" in self.catalog:
            return self.text(f"decline.{code}")
        return self.text(f"hold.{code}.title")

    def value(self, key: str, value: Any) -> str:
        """One parameter, formatted by its key and shape."""
        if value is None:
            return self.text("label.unknown")
        if key in _CODE_KEYS:
            kind = _CODE_KEYS[key]
            if isinstance(value, list):
                return self.join([self.code(kind, v) for v in value])
            return self.code(kind, value)
        if isinstance(value, list):
            return self.join([self.value("", v) for v in value])
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (int, float)):
            return self.number(value)
        if not isinstance(value, str) or key in _RAW_KEYS:
            return str(value)
        if _INSTANT.match(value):
            return self.instant(value)
        if _DATE.match(value):
            return self.date(value)
        if _MONEY.match(value):
            return self.money(value)
        return value

    def params(self, item: dict[str, Any]) -> dict[str, str]:
        """Every parameter of an item formatted; nested dicts (progress) are flattened."""
        flat: dict[str, Any] = {}
        for key, value in item.items():
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        params = {key: self.value(key, value) for key, value in flat.items()}
        if "appeal_path" in params:
            # Where to appeal, as the customer finds it in the app: never the raw path (a
            # policy's https:// address becomes a link in the HTML, see `render_html`).
            params["appeal_path"] = self.text("label.appeals_entry")
        return params


# --- the view both renderers lay out -------------------------------------------------------------


@dataclass
class _HoldView:
    code: str
    title: str
    summary: str
    since: str
    closes_line: str | None
    evidence: list[str]
    release: list[str]
    lifts: str
    lifts_by_itself: bool
    bureau: list[str]
    steps: list[str]
    appeal: list[str]
    what_if: str | None


@dataclass
class _View:
    lang: str
    status: str
    title: str
    status_text: str
    as_of: str
    version: str
    works: str
    ledger_heading: str
    ledger: list[tuple[str, str]]
    holds_heading: str | None
    no_holds: str | None
    labels: dict[str, str]
    holds: list[_HoldView] = field(default_factory=list)
    checks_heading: str = ""
    checks_intro: str = ""
    checks: list[tuple[str, list[str]]] = field(default_factory=list)
    appeals_entry: str = ""
    appeals_url: str | None = None  # a policy's https:// appeal page, linked in the HTML
    plan_heading: str | None = None
    plan_intro: str = ""
    plan: list[str] = field(default_factory=list)


def _plan_lines(m: _Messages, plan: dict[str, Any]) -> tuple[str, list[str]]:
    """(the intro line, the steps) of the unfreeze plan."""
    if plan["earliest_active_at"]:
        intro = m.fmt("plan.earliest", {"at": m.instant(plan["earliest_active_at"])})
    else:
        intro = m.text("plan.no_date")
    lines = []
    for action in plan["actions"]:
        params: dict[str, Any] = {}
        if "amount" in action:
            params["amount"] = m.money(action["amount"])
        if "times" in action:
            params["times"] = m.number(action["times"])
        if "products" in action:
            params["products"] = m.join([m.code("product", p) for p in action["products"]])
        lines.append(m.fmt(f"plan.action.{action['action']}", params))
    if plan["then_pay_each_minimum_on_time"]:
        lines.append(m.text("plan.then_pay_minimums"))
    if plan["waits_for"] and plan["earliest_active_at"]:
        lines.append(m.fmt("plan.waits", {"holds": m.join(
            [m.text(f"hold.{code}.title") for code in plan["waits_for"]])}))
    lines += [m.text(f"plan.awaiting.{item['awaiting']}") for item in plan["awaiting"]]
    return intro, lines


def _feature_text(m: _Messages, feature: str, value: Any) -> str:
    """A feature's value in its unit: a share as a percentage, a segment by its label, money
    as money (`structured.py` gives money features as decimal strings)."""
    if feature == "utilization" and isinstance(value, (int, float)) and not isinstance(
        value, bool
    ):
        return format_percent(value, locale=m.locale, format="#,##0.#%")
    if feature == "segment" and isinstance(value, str):
        return m.segment(value)
    return m.value("value", value)


def _evidence_line(m: _Messages, item: dict[str, Any]) -> str:
    params = m.params(item)
    if item["fact"] in _SIGNAL_FACTS:
        params["value"] = m.code("signal", item["value"])
    elif item["fact"] == "feature_matched":
        params["value"] = _feature_text(m, item["feature"], item["value"])
    return m.fmt(f"fact.{item['fact']}", params)


def _criterion(m: _Messages, term: dict[str, Any]) -> str:
    """One term of a rule: "share of the limit in use at most 30% (use less of your line)"."""
    name = term["feature"]
    params = {"feature": m.code("feature", name)}
    for key in ("value", "low", "high"):
        if key in term:
            params[key] = _feature_text(m, name, term[key])
    if "values" in term:
        params["values"] = m.join_or([_feature_text(m, name, v) for v in term["values"]])
    text = m.fmt(f"criterion.{term['op']}", params)
    direction = term.get("direction")
    if direction:
        specific = f"direction.{name}.{direction}"
        hint = m.text(specific if specific in m.catalog else f"direction.{direction}")
        text = m.fmt("criterion.with_hint", {"term": text, "hint": hint})
    return text


def _reopen_line(m: _Messages, item: dict[str, Any]) -> str:
    """The reopening standard: its terms joined as the rule joins them ("or" for OR, "and"
    for AND), or, for a rule of another shape, the features it reads (no "and" implied)."""
    params = m.params({"not_before": item["not_before"]})
    if item.get("terms"):
        parts = [_criterion(m, term) for term in item["terms"]]
        joiner = m.text(f"criteria.join.{item['join']}") if item.get("join") else ""
        params["terms"] = joiner.join(parts)
        return m.fmt("release.reopen_criteria_terms", params)
    params["features"] = m.join_neutral([m.code("feature", f) for f in item["features"]])
    return m.fmt("release.reopen_criteria", params)


def _release_line(m: _Messages, item: dict[str, Any]) -> str:
    condition = item["condition"]
    if condition == "reopen_criteria":
        line = _reopen_line(m, item)
    else:
        line = m.fmt(f"release.{condition}", m.params(item))
    if item.get("currently_met"):
        line = line + _sep(m) + m.text(f"release.{condition}_met")
    return m.fmt("label.key_value", {"label": m.text(f"path.{item['path']}"), "value": line})


def _sep(m: _Messages) -> str:
    return "；" if m.lang == "zh-CN" else "; "


def _appeal_lines(m: _Messages, hold: dict[str, Any]) -> list[str]:
    lines = []
    if hold["appealable"]:
        sla = hold["appeal_sla"]
        lines.append(m.fmt("label.appealable",
                           {"sla": m.duration(sla["value"], sla["unit"])}))
    elif hold["appeal_sla"] is None:
        lines.append(m.text("label.not_appealable"))
    appeal = hold.get("appeal")
    if appeal is not None:
        lines.append(m.fmt(f"appeal.status.{appeal['status']}", m.params(appeal)))
        if appeal["status"] == "rejected" and appeal.get("reason"):
            lines.append(m.fmt("appeal.rejected_reason", m.params(appeal)))
    return lines


def _bureau_lines(m: _Messages, hold: dict[str, Any]) -> list[str]:
    bureau = hold.get("bureau")
    if not bureau:
        return []
    if "products" in bureau:
        return [m.fmt("bureau.external_product", m.params(p)) for p in bureau["products"]]
    key = "bureau.reported" if bureau["reported"] else "bureau.will_report"
    return [m.fmt(key, m.params(bureau))]


def _hold_view(m: _Messages, hold: dict[str, Any]) -> _HoldView:
    code = hold["code"]
    if hold["releases_at"] is not None:
        lifts = m.fmt("label.lifts_at", {"at": m.value("at", hold["releases_at"])})
    elif len(hold["release"]) > 1:
        lifts = m.text("label.no_auto_release")  # "... as soon as any of the ways above is met"
    else:
        lifts = m.text("label.no_auto_release_one")
    counterfactual = hold.get("counterfactual")
    return _HoldView(
        code=code,
        title=m.text(f"hold.{code}.title"),
        summary=m.text(f"hold.{code}.summary"),
        since=m.fmt("label.since", {"at": m.value("since", hold["since"])}),
        closes_line=m.text("label.line_closed") if hold["closes_line"] else None,
        evidence=[_evidence_line(m, item) for item in hold["evidence"]],
        release=[_release_line(m, item) for item in hold["release"]],
        lifts=lifts,
        lifts_by_itself=hold["releases_at"] is not None,
        bureau=_bureau_lines(m, hold),
        steps=[m.fmt(f"step.{item['step']}", m.params(item)) for item in hold["steps"]],
        appeal=_appeal_lines(m, hold),
        what_if=(m.fmt(f"counterfactual.{counterfactual['if']}", m.params(counterfactual))
                 if counterfactual else None),
    )


def _checks(m: _Messages, checks: dict[str, Any]) -> list[tuple[str, list[str]]]:
    none = [m.text("check.none")]
    purchases = []
    for item in checks["recent_purchases"]:
        if item.get("declined"):
            params = m.params({k: v for k, v in item.items() if k != "decline_codes"})
            params["reasons"] = m.join([m.decline(code) for code in item["decline_codes"]])
            purchases.append(m.fmt("check.purchase_item_declined", params))
            continue
        refunded = item.get("refunded") not in (None, "0.00")
        key = "check.purchase_item_refunded" if refunded else "check.purchase_item"
        purchases.append(m.fmt(key, m.params(item)))
    repayments = [m.fmt("check.repayment_item", m.params(item))
                  for item in checks["recent_repayments"]]
    statements = []
    for item in checks.get("recent_statements", []):
        params = m.params(item)
        params["status"] = m.fmt(f"statement_status.{item['status']}", params)
        statements.append(m.fmt("check.statement_item", params))
    score: list[str] = []
    if checks["score"] is not None:
        score.append(m.fmt("check.score_item", m.params(checks["score"])))
        score.extend(m.fmt("check.weak_dimension", m.params(d))
                     for d in checks["score"]["weakest_dimensions"])
    bureau = [m.fmt("check.bureau_item", {**m.params(item),
                                          "status": m.code("bureau_status", item["status"])})
              for item in checks["bureau_records"]]
    support = checks["support"]
    help_lines = [m.fmt("check.support_phone", m.params(support)),
                  m.fmt("check.appeal_path", m.params(support))]
    for appeal in support["pending_appeals"]:
        params = m.params(appeal)
        params["hold"] = m.text(f"hold.{appeal['hold_code']}.title")
        help_lines.append(m.fmt("check.pending_appeal", params))
    return [
        (m.text("check.recent_purchases"), purchases or none),
        (m.text("check.recent_repayments"), repayments or none),
        (m.text("check.recent_statements"), statements or none),
        (m.text("check.score"), score or none),
        (m.text("check.bureau_records"), bureau or none),
        (m.text("check.support"), help_lines),
    ]


def _ledger_value(m: _Messages, ledger: dict[str, Any], key: str) -> str:
    """A ledger figure; available credit is shown as usable only while the line is: frozen,
    nothing is usable (the headroom comes back when it lifts); closed, nothing is."""
    status = ledger.get("usable_credit_status", "active")
    if key != "available_credit" or status == "active":
        return m.money(ledger[key])
    return m.fmt(f"ledger.available_credit_{status}",
                 {"usable": m.money(ledger.get("usable_credit", "0.00")),
                  "available": m.money(ledger[key])})


def _view(explanation: dict[str, Any], lang: str, tz: str) -> _View:
    ledger = explanation["ledger"]
    m = _Messages(lang, tz, ledger.get("currency", "CNY"))
    holds = explanation["holds"]
    works = explanation["what_still_works"]
    labels = {key: m.text(f"label.{key}")
              for key in ("evidence", "release", "bureau", "steps", "appeal", "what_if")}
    view = _View(
        lang=lang,
        status=explanation["status"],
        title=m.text("label.title"),
        status_text=m.text(f"status.{explanation['status']}"),
        as_of=m.fmt("label.as_of", {"at": m.value("at", explanation["at"])}),
        version=m.fmt("label.policy_version", {"version": explanation["policy_version"]}),
        works=m.fmt("label.what_still_works",
                    {"items": m.join([m.text(f"works.{w}") for w in works])}),
        ledger_heading=m.text("label.ledger"),
        ledger=[(m.text(f"ledger.{key}"), _ledger_value(m, ledger, key)) for key in _LEDGER_KEYS],
        holds_heading=(m.fmt("label.holds_closed" if explanation["status"] == "closed"
                             else "label.holds", {"count": m.number(len(holds))})
                       if holds else None),
        no_holds=None if holds else m.text("label.no_holds"),
        labels=labels,
        holds=[_hold_view(m, hold) for hold in holds],
        checks_heading=m.text("check.heading"),
        checks_intro=m.text("check.intro"),
        checks=_checks(m, explanation["self_checks"]),
    )
    view.labels["key_value"] = m.text("label.key_value")
    if explanation.get("plan"):
        view.plan_heading = m.text("plan.heading")
        view.plan_intro, view.plan = _plan_lines(m, explanation["plan"])
    view.appeals_entry = m.text("label.appeals_entry")
    path = explanation["self_checks"]["support"].get("appeal_path") or ""
    view.appeals_url = path if path.startswith("https://") else None
    return view


# --- plain text ----------------------------------------------------------------------------------


def render_text(explanation: dict[str, Any], lang: str = "zh-CN", tz: str = DEFAULT_TZ) -> str:
    """The explanation as plain text (for the CLI)."""
    _check_lang(lang)
    v = _view(explanation, lang, tz)
    kv = v.labels["key_value"]
    out = [v.title, "=" * 24, v.status_text, v.as_of, v.version, v.works, "", v.ledger_heading]
    out += [f"  {kv.format(label=label, value=value)}" for label, value in v.ledger]
    out.append("")
    if v.plan_heading:
        out += [v.plan_heading, f"  {v.plan_intro}"]
        out += [f"  {i}) {line}" for i, line in enumerate(v.plan, 1)]
        out.append("")
    if v.no_holds:
        out.append(v.no_holds)
    else:
        out.append(v.holds_heading or "")
    for number, hold in enumerate(v.holds, 1):
        out += ["", f"{number}. {hold.title}", f"   {hold.summary}", f"   {hold.since}"]
        if hold.closes_line:
            out.append(f"   {hold.closes_line}")
        out.append(_heading(v, "evidence"))
        out += [f"   - {line}" for line in hold.evidence]
        out.append(_heading(v, "release"))
        out += [f"   - {line}" for line in hold.release]
        out.append(f"   {hold.lifts}")
        if hold.bureau:
            out.append(_heading(v, "bureau"))
            out += [f"   - {line}" for line in hold.bureau]
        out.append(_heading(v, "steps"))
        out += [f"   {i}) {line}" for i, line in enumerate(hold.steps, 1)]
        out.append(_heading(v, "appeal"))
        out += [f"   - {line}" for line in hold.appeal]
        if hold.what_if:
            out.append(f"   {kv.format(label=v.labels['what_if'], value=hold.what_if)}")
    out += ["", v.checks_heading, "=" * 24, v.checks_intro]
    for heading, lines in v.checks:
        out.append(f"{heading}")
        out += [f"  - {line}" for line in lines]
    return "\n".join(out) + "\n"


def _heading(v: _View, key: str) -> str:
    return f"   {v.labels[key]}" + (":" if v.lang == "en" else "：")


# --- HTML ----------------------------------------------------------------------------------------

_STYLE = """
.jf-explanation{font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif;
max-width:40rem;margin:0 auto;color:#1f2329;line-height:1.6}
.jf-explanation h1{font-size:1.3rem;margin:.5rem 0}
.jf-explanation h2{font-size:1.1rem;margin:1.2rem 0 .4rem}
.jf-explanation h3{font-size:1rem;margin:.8rem 0 .2rem}
.jf-explanation h4{font-size:.9rem;margin:.6rem 0 .1rem;color:#4e5969}
.jf-status{font-size:1.15rem;font-weight:600;padding:.6rem .8rem;border-radius:.5rem}
.jf-status-active{background:#e8f7ee;color:#137333}
.jf-status-frozen{background:#fff4e5;color:#a15c00}
.jf-status-closed{background:#fdecea;color:#b3261e}
.jf-meta{color:#86909c;font-size:.85rem;margin:.2rem 0}
.jf-hold{border:1px solid #e5e6eb;border-radius:.5rem;padding:.4rem 1rem;margin:.8rem 0}
.jf-lifts{color:#137333}
.jf-whatif{background:#f2f3f5;padding:.4rem .6rem;border-radius:.4rem}
.jf-explanation dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem 1rem}
.jf-explanation dd{margin:0;text-align:right}
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _ul(lines: list[str], css: str = "", v: _View | None = None) -> str:
    cls = f' class="{css}"' if css else ""
    return f"<ul{cls}>" + "".join(f"<li>{_linked(v, line)}</li>" for line in lines) + "</ul>"


def _linked(v: _View | None, line: str) -> str:
    """The escaped line; the appeals entry becomes a link when the policy gives an https://
    appeal page (an in-app path such as /me/appeals is only named, never shown)."""
    text = _e(line)
    if v is None or v.appeals_url is None or not v.appeals_entry:
        return text
    link = f'<a href="{_e(v.appeals_url)}">{_e(v.appeals_entry)}</a>'
    return text.replace(_e(v.appeals_entry), link)


def render_html(explanation: dict[str, Any], lang: str = "zh-CN", tz: str = DEFAULT_TZ) -> str:
    """The explanation as a self-contained HTML fragment (inline style, every value escaped)."""
    _check_lang(lang)
    v = _view(explanation, lang, tz)
    parts = [
        f'<section class="jf-explanation" lang="{_e(lang)}">',
        f"<style>{_STYLE}</style>",
        f"<h1>{_e(v.title)}</h1>",
        f'<p class="jf-status jf-status-{_e(v.status)}">{_e(v.status_text)}</p>',
        f'<p class="jf-meta">{_e(v.as_of)} · {_e(v.version)}</p>',
        f'<p class="jf-works">{_e(v.works)}</p>',
        f"<h2>{_e(v.ledger_heading)}</h2><dl>",
    ]
    parts += [f"<dt>{_e(label)}</dt><dd>{_e(value)}</dd>" for label, value in v.ledger]
    parts.append("</dl>")
    if v.plan_heading:
        parts += ['<div class="jf-plan" id="plan">', f"<h2>{_e(v.plan_heading)}</h2>",
                  f"<p>{_e(v.plan_intro)}</p>",
                  "<ol>" + "".join(f"<li>{_e(line)}</li>" for line in v.plan) + "</ol>",
                  "</div>"]
    if v.no_holds:
        parts.append(f'<p class="jf-no-holds">{_e(v.no_holds)}</p>')
    else:
        parts.append(f"<h2>{_e(v.holds_heading or '')}</h2>")
    for hold in v.holds:
        lifts_css = "jf-lifts" if hold.lifts_by_itself else "jf-meta"
        parts += [
            f'<article class="jf-hold" data-code="{_e(hold.code)}">',
            f"<h3>{_e(hold.title)}</h3>",
            f"<p>{_e(hold.summary)}</p>",
            f'<p class="jf-meta">{_e(hold.since)}</p>',
        ]
        if hold.closes_line:
            parts.append(f"<p>{_e(hold.closes_line)}</p>")
        parts += [f"<h4>{_e(v.labels['evidence'])}</h4>", _ul(hold.evidence),
                  f"<h4>{_e(v.labels['release'])}</h4>", _ul(hold.release),
                  f'<p class="{lifts_css}">{_e(hold.lifts)}</p>']
        if hold.bureau:
            parts += [f"<h4>{_e(v.labels['bureau'])}</h4>", _ul(hold.bureau)]
        parts += [f"<h4>{_e(v.labels['steps'])}</h4>",
                  "<ol>" + "".join(f"<li>{_linked(v, step)}</li>" for step in hold.steps)
                  + "</ol>",
                  f"<h4>{_e(v.labels['appeal'])}</h4>", _ul(hold.appeal)]
        if hold.what_if:
            parts.append(f'<p class="jf-whatif"><strong>{_e(v.labels["what_if"])}</strong> '
                         f"{_e(hold.what_if)}</p>")
        parts.append("</article>")
    parts += [f"<h2>{_e(v.checks_heading)}</h2>", f"<p>{_e(v.checks_intro)}</p>"]
    for heading, lines in v.checks:
        parts += [f"<h3>{_e(heading)}</h3>", _ul(lines, v=v)]
    parts.append("</section>")
    return "\n".join(parts) + "\n"

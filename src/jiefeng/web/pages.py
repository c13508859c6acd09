"""Server-rendered pages: the Jinja2 environment, the UI messages in zh-CN and en, the
security headers every page carries, and CSRF tokens for forms (double submit: a random value
in a SameSite=Strict cookie that each form must echo)."""

from __future__ import annotations

import json
import secrets
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

LANGS = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
CSRF_COOKIE = "jiefeng_csrf"
# Scripts and styles from this origin only (vendored assets, no inline script); images may be
# data: URLs (charts); nothing may frame the pages.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' "
                           "'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# (X-Content-Type-Options: nosniff is on every response already: api/context.py.)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}

environment = Environment(loader=PackageLoader("jiefeng.web", "templates"),
                          autoescape=select_autoescape(["html"]))


def lang_of(requested: str | None) -> str:
    return requested if requested in LANGS else DEFAULT_LANG


@lru_cache(maxsize=len(LANGS))
def messages(lang: str) -> dict[str, str]:
    text = resources.files("jiefeng.web").joinpath("messages", f"{lang}.json").read_text(
        encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=len(LANGS))
def console_messages(lang: str) -> dict[str, str]:
    """The operator console's messages, on top of the shared ones (language switch...)."""
    text = resources.files("jiefeng.web").joinpath("messages", f"console.{lang}.json").read_text(
        encoding="utf-8")
    return {**messages(lang), **json.loads(text)}


def render(template: str, lang: str, **values: Any) -> str:
    return environment.get_template(template).render(lang=lang, m=messages(lang), **values)


def render_console(template: str, lang: str, **values: Any) -> str:
    return environment.get_template(template).render(lang=lang, m=console_messages(lang),
                                                     **values)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(cookie: str | None, submitted: str | None) -> bool:
    return bool(cookie) and bool(submitted) and secrets.compare_digest(cookie, submitted)

"""Every declared release path of every hold is reachable, shown from the source without
running a scenario (issue 12 §3); the scenarios (tests/scenarios/) then show each path taken.

A path is reachable when code the dispatcher runs can lift the hold that way:
- `time`: the cause places the hold with a `releases_at` (the core lifts every hold whose
  time has come) in a function the dispatcher reaches, or the hold is scoped (its window ends);
- `review`: the default policy lets the customer appeal the code, and an approved appeal
  releases the appealed hold;
- `condition` / `event`: the cause calls `release` for the code, in a function reachable from
  what it registers with the dispatcher (event listeners, admissions, time step, after-change
  check), with a reason of its own.
And no hold is lifted by a way it does not declare.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jiefeng import native
from jiefeng.domain import account, causes, rules
from jiefeng.domain import holds as H
from jiefeng.policy.schema import default_policy

# Release reasons that are not a cause's own way out: the core's expiry, the appeal process,
# and overdue taking over from its own cure period.
CORE_REASONS = {"expired", "appeal_approved", "superseded_by_overdue"}


def _module_tree(cause: causes.Cause) -> tuple[ast.Module, Path]:
    module = inspect.getmodule(cause.holds[0].explanation.evidence)
    path = native.source_path(module.__name__)  # the .py, also where it runs compiled
    return ast.parse(path.read_text(encoding="utf-8")), path


def _function_source(function: Any) -> str:
    """A function's source, also where it runs compiled (inspect reads only Python ones)."""
    text = native.source_path(function.__module__).read_text(encoding="utf-8")
    node = next(n for n in ast.walk(ast.parse(text))
                if isinstance(n, ast.FunctionDef) and n.name == function.__name__)
    return ast.get_source_segment(text, node) or ""


def _entry_points(cause: causes.Cause) -> set[str]:
    """The names of the module's functions the dispatcher calls."""
    callables = [*cause.listens.values(), *cause.admits.values(), cause.deadline,
                 cause.on_time, cause.after_change, cause.scoped_holds, cause.scope_blocks]
    for kind in cause.holds:
        callables += [kind.on_expiry, kind.on_appeal_approved, kind.plan]
    return {f.__name__ for f in callables if f is not None}


def _reachable(tree: ast.Module, entries: set[str]) -> set[str]:
    """Functions of the module reachable from `entries` through calls by name."""
    calls: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            calls[node.name] = {c.func.id for c in ast.walk(node)
                                if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
    seen: set[str] = set()
    todo = [name for name in entries if name in calls]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(callee for callee in calls[name] if callee in calls)
    return seen


def _calls_in(tree: ast.Module, functions: set[str], callee: str) -> Iterator[ast.Call]:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in functions:
            for call in ast.walk(node):
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
                        and call.func.id == callee):
                    yield call


def _code_of(call: ast.Call) -> str | None:
    """The hold code a place/release call names (`H.CODE` as its third argument)."""
    if len(call.args) >= 3 and isinstance(call.args[2], ast.Attribute):
        return getattr(H, call.args[2].attr, None)
    return None


def _releases(cause: causes.Cause) -> dict[str, set[str]]:
    """code -> the reasons it is released with, from reachable code of the cause's module."""
    tree, _ = _module_tree(cause)
    reachable = _reachable(tree, _entry_points(cause))
    found: dict[str, set[str]] = {}
    for call in _calls_in(tree, reachable, "release"):
        code = _code_of(call)
        reason = call.args[5] if len(call.args) >= 6 else None
        if code is not None and isinstance(reason, ast.Constant):
            found.setdefault(code, set()).add(reason.value)
    return found


def _placed_to_expire(cause: causes.Cause) -> set[str]:
    """Codes placed with a `releases_at` by reachable code of the cause's module."""
    tree, _ = _module_tree(cause)
    reachable = _reachable(tree, _entry_points(cause))
    codes = set()
    for call in _calls_in(tree, reachable, "place"):
        timed = [k for k in call.keywords if k.arg == "releases_at"]
        if len(call.args) >= 7 or (timed and not (isinstance(timed[0].value, ast.Constant)
                                                  and timed[0].value.value is None)):
            codes.add(_code_of(call))
    return codes


KINDS = [(cause, kind) for cause in causes.CAUSES for kind in cause.holds]


@pytest.mark.parametrize(("cause", "kind"), KINDS, ids=[k.code for _, k in KINDS])
def test_every_declared_release_path_is_reachable(cause, kind) -> None:
    own_reasons = _releases(cause).get(kind.code, set()) - CORE_REASONS
    for path in kind.release_paths:
        if path == H.RELEASE_TIME:
            assert kind.scoped or kind.code in _placed_to_expire(cause), (
                f"{kind.code} declares `time` but is never placed with a releases_at")
        elif path == H.RELEASE_REVIEW:
            assert kind.code in default_policy().appeals.appealable_codes, (
                f"{kind.code} declares `review` but cannot be appealed")
        elif kind.scoped:
            # A scoped hold is derived from the portfolio's scopes at each instant: it lifts
            # when the scope command that ends it (a campaign's completion) is applied.
            assert cause.scoped_holds is not None
        else:
            assert own_reasons, f"{kind.code} declares `{path}` but nothing releases it"


@pytest.mark.parametrize(("cause", "kind"), KINDS, ids=[k.code for _, k in KINDS])
def test_no_hold_is_lifted_a_way_it_does_not_declare(cause, kind) -> None:
    own = set(kind.release_paths) - {H.RELEASE_TIME, H.RELEASE_REVIEW}
    if _releases(cause).get(kind.code, set()) - CORE_REASONS:
        assert own, f"{kind.code} is released by its cause but declares neither condition " \
                    "nor event"
    if kind.code in _placed_to_expire(cause):
        assert H.RELEASE_TIME in kind.release_paths, (
            f"{kind.code} is placed to expire but does not declare `time`")
    if kind.code in default_policy().appeals.appealable_codes:
        assert H.RELEASE_REVIEW in kind.release_paths, (
            f"{kind.code} can be appealed but does not declare `review`")


def test_the_core_lifts_expired_holds_and_approved_appeals_for_every_code() -> None:
    """The two generic ways out the per-cause checks rely on."""
    on_time = _function_source(rules.on_time)
    assert "releases_at <= at" in on_time and '"expired"' in on_time
    decided = _function_source(account.on_appeal_decided)
    assert '"appeal_approved"' in decided and "appeal.hold_code" in decided


def test_the_analysis_sees_a_release_path_that_is_missing() -> None:
    """The check can fail: a cause whose only release sits in a function nothing registers
    has no reachable way out."""
    tree = ast.parse(
        "def listener(state, event, policy, scopes, effects):\n"
        "    pass\n"
        "def orphan(state, event, policy, scopes, effects):\n"
        "    release(state, effects, H.PASSWORD_LOCKED, event.at, event.event_id, 'reset')\n")
    reachable = _reachable(tree, {"listener"})
    assert not list(_calls_in(tree, reachable, "release"))
    assert [_code_of(c) for c in _calls_in(tree, {"orphan"}, "release")] == [H.PASSWORD_LOCKED]

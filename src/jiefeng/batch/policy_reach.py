"""Which accounts a candidate policy can change: the fold's reads of the settings it changes.

A backtest folds every account under the baseline policy and under the candidate. The fold is
a pure function of the account's events, the operator commands and the policy, and it sees the
policy only by reading its settings (`policy.cure_probation.days`). An account whose baseline
fold never read a setting on which the two policies differ would take, under the candidate,
the same path with the same values at every step: its candidate run is its baseline run. A
typical candidate changes a setting that only some accounts ever reach (a cure period is read
where an overdue is cured, a password lock where a password was mistyped five times), and the
second fold of every other account can be skipped.

`PolicyWatch` is a copy of the baseline in which every setting the candidate changes notes that
it was read (the rest read as fast as before). A setting inside a section (`[billing]`) is
watched alone; a changed top-level value (the time zone) is watched with what is derived from
it (the zone the policy caches).

What this relies on, and what keeps it true:

- The fold reads a setting only as an attribute of the policy it was given or of one of its
  sections, and keeps nothing computed from a setting beyond one fold: the domain's caches take
  a zone name, dates or an outcome's text, never a policy or a section, and no policy or
  section is compared, hashed or dumped whole by the fold.
- The version is not watched. Every decision reads it, but only to record it (traces,
  decisions' `policy_version`), never to decide: a run under one policy holds one version, the
  two runs differ only in that recorded name, and what a backtest compares (holds, reports,
  status) holds none.
- tests/test_policy_reach.py: for 30 settings across every section, changed alone and several
  at once, every account the change does not reach runs the same under the candidate; and a
  backtest gives, byte for byte, the result of folding every account under both policies.

Pure: no I/O (a thread keeps its watch: `policy_watch`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from jiefeng.policy.schema import Policy

# Read by every decision to be recorded, never decided on (see the module's docstring).
UNWATCHED = frozenset({"version"})
# Values a policy derives from a top-level setting and caches: watched with it.
DERIVED = {"timezone": ("zone",)}


class PolicyWatch:
    """The baseline policy (`policy`), watched for reads of the settings where `candidate`
    differs (`settings`, dotted names): `read` turns True at the first such read. Reset it
    before each account's fold. One watch serves one thread."""

    def __init__(self, baseline: Policy, candidate: Policy) -> None:
        self.read = False
        self._settings: list[str] = []
        watched = self._watched(baseline, candidate, "")
        assert isinstance(watched, Policy)
        self.policy: Policy = watched
        self.settings = tuple(self._settings)

    def _note(self) -> None:
        self.read = True

    def _watched(self, mine: BaseModel, theirs: BaseModel, prefix: str) -> BaseModel:
        """`mine`, or a copy of it whose settings that differ from `theirs` are watched."""
        differing = [name for name in type(mine).model_fields
                     if not (prefix == "" and name in UNWATCHED)
                     and getattr(mine, name) != getattr(theirs, name)]
        if not differing:
            return mine
        copy = mine.model_copy()
        values = copy.__dict__
        trapped: list[str] = []
        for name in differing:
            own, other = getattr(mine, name), getattr(theirs, name)
            if isinstance(own, BaseModel) and type(own) is type(other):
                values[name] = self._watched(own, other, f"{prefix}{name}.")
            else:
                trapped.append(name)
                self._settings.append(f"{prefix}{name}")
                for derived in DERIVED.get(name, ()) if prefix == "" else ():
                    values[derived] = getattr(mine, derived)  # computed now, then watched
                    trapped.append(derived)
        if trapped:
            object.__setattr__(copy, "__class__", self._watching_class(type(copy), trapped))
        return copy

    def _watching_class(self, cls: type[BaseModel], names: list[str]) -> type[BaseModel]:
        """A subclass of `cls` whose `names` are properties that note the read. A property is
        found on the class before the instance's own values, so the other settings are read
        as before; the class is this watch's own, so two watches never share a flag."""
        watching = type(cls)(f"Watched{cls.__name__}", (cls,), {"__module__": cls.__module__})
        for name in names:
            setattr(watching, name, property(self._reader(name)))
        return watching

    def _reader(self, name: str) -> Callable[[Any], Any]:
        note = self._note

        def read(model: Any) -> Any:
            note()
            return model.__dict__[name]

        return read


_watches = threading.local()  # this thread's PolicyWatch, and the two policies it watches


def policy_watch(baseline: Policy, candidate: Policy) -> PolicyWatch:
    """The watch of `baseline` against `candidate`, made once per thread for a pair of
    policies (a backtest's workers, a Spark task, a server's threads each make their own)."""
    made = getattr(_watches, "made", None)
    if made is None or made[0] is not baseline or made[1] is not candidate:
        made = (baseline, candidate, PolicyWatch(baseline, candidate))
        _watches.made = made
    return made[2]

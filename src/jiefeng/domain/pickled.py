"""Dataclasses pickled as their class called with their field values, in field order.

Snapshots and the pipeline's write sets pickle account states, their ledgers and effects.
Python and mypyc (`make native`) pickle a dataclass the default way differently, and neither
reads the other's bytes; called with its fields, a class pickles to the same bytes either way.
A class opts in with `def __reduce__(self): return by_fields(self)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter
from typing import Any

_GETTERS: dict[type, Callable[[Any], tuple]] = {}


def field_values(cls: type) -> Callable[[Any], tuple]:
    """A function giving an instance's field values as a tuple, in field order (one C call),
    made once per class. From the dataclass fields: a compiled class has no `__slots__`."""
    getter = _GETTERS.get(cls)
    if getter is None:
        names = tuple(f.name for f in fields(cls))
        # attrgetter of one name returns the value itself, not a tuple of one
        getter = attrgetter(*names) if len(names) > 1 else (
            lambda value: (getattr(value, names[0]),))
        _GETTERS[cls] = getter
    return getter


def by_fields(value: Any) -> tuple[type, tuple]:
    """What `__reduce__` returns: the value's class and its field values."""
    cls = type(value)
    return cls, field_values(cls)(value)

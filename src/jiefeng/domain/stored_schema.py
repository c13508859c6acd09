"""A cheaper validator for event bodies read back from the log, and for new lines.

A stored body was validated when it was ingested; reading it back (backtests, state reloads,
late arrivals, exports) must give the same event, and it is most of what a backtest spends
besides the fold. The validator built here is the event union's own schema with the Python
validators of the account events' instants and amounts left out: pydantic calls each from its
Rust core, about half of reading a purchase. Here the instant is parsed by pydantic (strictly:
a text only) and the amount's text checked against `parse_amount_fen`'s grammar, both in Rust;
one Python pass per event then finishes them as the validators would (the year bounds and the
instant in UTC; integer fen, above zero where zero is refused, within MAX_AMOUNT_FEN). The event
is an instance of the same class, with the same values and the same fields set.

Models with a validator of their own, optional fields and operator events keep their schema as
it is. Anything this reading refuses, the caller reads with the full validator, which names the
problem, so a damaged body is refused as it would be on the way in. A new line is read this way
too (`parse_event_json`): it accepts what the full validator accepts, with the same values, and
a line it refuses is validated in full.

A stored row is cheaper still (`read_row`): the store knows its type and its instant (the
`type` and `at_utc` columns, written from the validated event), so each type has a validator of
its own (the union's dispatch on `type` was a quarter of reading a purchase: pydantic reads the
whole object before it can pick the model) and the instant is the store's, in UTC already (the
body's `at` is only checked to be a text: converting a parsed instant to UTC cost as much as
parsing it).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from pydantic_core import SchemaValidator

from jiefeng.domain import events as ev
from jiefeng.domain.money import fen_of_digits
from jiefeng.domain.upcasting import SCHEMA_VERSION

# The key of a stored body's shape version (`upcasting.stamped`).
STAMP = "schema_version"


def _amount(text: str) -> int:
    # The text matched AMOUNT_PATTERN in the validator: digits, then one or two places.
    whole, _, cents = text.partition(".")
    return fen_of_digits(whole, cents)


def _balance(text: str) -> int:
    whole, _, cents = text.partition(".")
    return fen_of_digits(whole, cents, allow_zero=True)


# What `parse_amount_fen` accepts, for the validator to check in Rust.
AMOUNT_PATTERN = r"^[0-9]{1,15}(?:\.[0-9]{1,2})?$"


def _timestamp_schema(wrapper: dict[str, Any]) -> dict[str, Any]:
    # pydantic's own parsing of an aware datetime, without the wrap; strict, so that only a
    # text is read (lax, it would take a Unix number, which the contract refuses).
    return {**wrapper["schema"], "strict": True}


def _new_timestamp_schema(wrapper: dict[str, Any]) -> dict[str, Any]:
    # A new line's instant: a text that starts with a full date (strictly: never a number),
    # then parsed as above. pydantic reads a Unix time in a text ("1736042400") as an
    # instant, strictly or not; the contract refuses it on the way in (a stored body, taken
    # before that rule, is still read).
    return {"type": "chain", "steps": [
        {"type": "str", "strict": True, "pattern": ev.RFC3339_START},
        {**wrapper["schema"], "strict": False},  # the text, parsed as the strict one parses
    ]}


def _amount_schema(wrapper: dict[str, Any]) -> dict[str, Any]:
    return {"type": "str", "pattern": AMOUNT_PATTERN}


Conversion = Callable[[Any], Any]
SchemaMaker = Callable[[dict[str, Any]], dict[str, Any]]
Plan = tuple[tuple[str, Conversion], ...]  # (field, conversion) of one model

StandsIn = dict[Callable[..., Any], tuple[SchemaMaker, Conversion]]

# The field validators left out of the stored bodies' reading: the schema that replaces each,
# and the conversion that then finishes the field's value.
_STANDS_IN: StandsIn = {
    ev._timestamp: (_timestamp_schema, ev._in_range_utc),  # the year bounds, then in UTC
    ev._amount_fen: (_amount_schema, _amount),
    ev._balance_fen: (_amount_schema, _balance),
}
# New lines': the same, but an instant's text must start with a full date.
_NEW_STANDS_IN: StandsIn = {
    **_STANDS_IN, ev._timestamp: (_new_timestamp_schema, ev._in_range_utc)}


def _replaced(field_schema: dict[str, Any], stands_in: StandsIn
              ) -> tuple[SchemaMaker, Conversion] | None:
    """(schema maker, conversion) that replace this field's validator, if it is left out."""
    if field_schema.get("type") not in ("function-wrap", "function-before"):
        return None
    function = field_schema.get("function", {})
    if function.get("type") not in ("no-info", "with-info"):
        return None
    return stands_in.get(function.get("function"))


def _lighten(model: dict[str, Any], new: bool) -> Plan:
    """Replace the left-out validators of one model schema (in place); (field, conversion).
    `new`: for new lines, else for stored bodies."""
    stands_in = _NEW_STANDS_IN if new else _STANDS_IN
    conversions = []
    for name, field in model["schema"]["fields"].items():
        replacement = _replaced(field["schema"], stands_in)
        if replacement is not None:
            make_schema, convert = replacement
            field["schema"] = make_schema(field["schema"])
            conversions.append((name, convert))
    return tuple(conversions)


def _build(new: bool) -> tuple[SchemaValidator, dict[type, Plan]]:
    """The lighter validator for new lines (`new`) or for stored bodies (about 1 ms each)."""
    schema = copy.deepcopy(ev._EVENT_ADAPTER.core_schema)
    assert schema["type"] == "tagged-union", "the event union is discriminated by type"
    plans: dict[type, Plan] = {}
    for choice in schema["choices"].values():
        if choice.get("type") != "model" or choice["schema"].get("type") != "model-fields":
            continue  # a model validator would see the texts: kept as it is
        cls = choice["cls"]
        if "account_id" not in choice["schema"]["fields"] or issubclass(cls, ev._OperatorEvent):
            continue
        plans[cls] = _lighten(choice, new)
    return _validator_of(schema, plans), plans


# Only the keys' Python strings are cached. pydantic's default also looks every string value up
# in its cache, to hand out one object per repeated text; a body's values are mostly unique
# (event ids, instants, amounts), so that lookup was a sixth of reading a body (measured
# pair by pair, the stored-body validator alone) and saved nothing. The values are the same.
_CONFIG: dict[str, Any] = {"cache_strings": "keys"}


def _validator_of(schema: dict[str, Any], classes: Iterable[type]) -> SchemaValidator:
    """The validator of `schema`, built from it. pydantic-core takes a complete model's own
    validator for any model schema of its class; the classes are marked incomplete while this
    one is built (only building a schema reads the mark), then complete again."""
    classes = list(classes)
    for cls in classes:
        assert cls.__dict__.get("__pydantic_complete__") is True
        cls.__pydantic_complete__ = False
    try:
        return SchemaValidator(schema, _CONFIG)
    finally:
        for cls in classes:
            cls.__pydantic_complete__ = True


def _build_row_reader(event_type: str) -> tuple[SchemaValidator, Plan]:
    """(the validator of a stored body of this type, the fields it finishes): its model's
    schema as `_build` lightens it, the instant left as a text, and the body's stamp read as a
    field that must hold the current version (see `read_row`). Built on first use, about half
    a millisecond a type: most processes never read a row."""
    schema = copy.deepcopy(ev._EVENT_ADAPTER.core_schema)
    choice = schema["choices"][event_type]
    plan = _lighten(choice, new=False)
    fields = choice["schema"]["fields"]
    fields["at"]["schema"] = {"type": "str", "strict": True}
    assert STAMP not in fields, f"{event_type} has a field named as the stamp"
    fields[STAMP] = {"type": "model-field",
                     "schema": {"type": "literal", "expected": [SCHEMA_VERSION]}}
    return (_validator_of(choice, [choice["cls"]]),
            tuple((name, convert) for name, convert in plan if name != "at"))


_VALIDATOR, _PLANS = _build(new=False)
_NEW_VALIDATOR, _NEW_PLANS = _build(new=True)
assert _NEW_PLANS == _PLANS  # the same fields finished the same way
_NOTHING: Plan = ()
# The types `read_row` reads: the account events `_build` lightens.
ROW_TYPES = frozenset(cls.model_fields["type"].default for cls in _PLANS)
_ROWS: dict[str, tuple[SchemaValidator, Plan]] = {}


def read_current(text: str | bytes, *, stored: bool = True) -> Any:
    """The event a stored body in the current shape (its stamp removed) holds; with
    `stored=False`, the event a new line holds (checked as on the way in: a sweep's criteria
    are compiled, where a stored sweep's are not checked again).

    Raises ValueError, TypeError or pydantic's ValidationError for a text this reading does not
    take; the caller then reads it with the full validator, which names the problem."""
    if stored:
        event = _VALIDATOR.validate_json(text, context=ev._STORED)
    else:
        event = _NEW_VALIDATOR.validate_json(text)
    fields = event.__dict__
    for name, convert in _PLANS.get(type(event), _NOTHING):
        fields[name] = convert(fields[name])
    return event


def read_row(event_type: str, text: str | bytes, at_utc: dt.datetime) -> Any:
    """The event a stored body in the current shape (stamped with the current version) holds,
    read by its type's own validator (`event_type` in ROW_TYPES), with the instant the store
    indexed it by (`at_utc`, aware, with `datetime.UTC` as its zone, as every instant inside
    is). The stamp is read as a field and dropped: finding it in the text and cutting it out
    first cost a tenth of reading a row.

    Raises as `read_current` does, also for a body of another type than `event_type` and for
    one without the current stamp (an older shape, for the caller to upcast)."""
    reader = _ROWS.get(event_type)
    if reader is None:
        if event_type not in ROW_TYPES:
            raise ValueError(f"no reader of its own for the type {event_type!r}")
        reader = _ROWS[event_type] = _build_row_reader(event_type)
    validator, plan = reader
    event = validator.validate_json(text)
    fields = event.__dict__
    del fields[STAMP]
    event.__pydantic_fields_set__.discard(STAMP)
    fields["at"] = at_utc
    for name, convert in plan:
        fields[name] = convert(fields[name])
    return event

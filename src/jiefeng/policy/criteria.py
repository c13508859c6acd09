"""Sweep criteria: one SQL boolean expression, checked against a whitelist, run in two places.

Operators write freeze and reopen criteria as SQL conditions over the per-account feature
snapshot, e.g. ``score < 650 AND utilization > 0.8``. The same text must give the same answer

* in the embedded engine, as a Python closure called once per account (`compile_criteria`), and
* in SQL engines (DuckDB, PostgreSQL, Spark, SQLite), as a transpiled WHERE condition
  (`transpile_criteria`).

The text is parsed with sqlglot and every node is checked against a whitelist: feature names,
number and string literals, comparisons, AND/OR/NOT, IN (literal list), BETWEEN, IS [NOT] NULL
and + - * /. Anything else is refused with a `CriteriaError` that names the construct and where it
is. User text is never passed to `eval`: the closure is assembled from small prebuilt functions.

The closure follows SQL three-valued logic (None stands for UNKNOWN). The transpiled SQL is
generated from the checked tree, not from the raw text, with explicit parentheses, decimal literals
cast to DOUBLE and every divisor wrapped in NULLIF(divisor, 0), so that each engine computes what
the closure computes. See docs/criteria.md.

Why one long module: the parser, the whitelist checker, the closure compiler and the
transpilers walk one tree and must agree on its semantics (NULLs, division); a candidate
for a package of four modules.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokens import Tokenizer, TokenType

# The catalog of features criteria may name (re-exported: callers have found it here).
from jiefeng.policy.feature_catalog import FEATURES, FeatureSpec  # noqa: F401

__all__ = [
    "ALLOWED",
    "DIALECTS",
    "FEATURES",
    "MAX_CRITERIA_CHARS",
    "CompiledCriteria",
    "NOT_EVALUABLE",
    "CriteriaError",
    "CriteriaNotEvaluable",
    "FeatureSpec",
    "compile_criteria",
    "describe_criteria",
    "compile_stored_criteria",
    "transpile_criteria",
]

MAX_CRITERIA_CHARS = 2000
MAX_NESTING = 64  # levels of the expression tree; far above any real rule
MAX_LITERAL = 10**15  # numbers beyond this are not exact as doubles, so engines could disagree
MAX_NODES = 200  # operators, features and literals; a 2000-character rule of real use has fewer
# The largest value arithmetic may reach, each feature taken at its largest: below 2**63, so
# integer arithmetic cannot overflow a BIGINT in PostgreSQL, DuckDB or Spark.
MAX_MAGNITUDE = 10**18
DIALECTS = frozenset({"duckdb", "postgres", "spark", "sqlite"})
ALLOWED = (
    "allowed: comparisons, AND/OR/NOT, IN, BETWEEN, IS NULL, + - * /, numbers, strings, "
    "feature names"
)


# --------------------------------------------------------------------------------------------
# Public types


class CriteriaError(ValueError):
    """The criteria text is not allowed; the message says what and where."""


class CriteriaNotEvaluable(ArithmeticError):
    """The criteria cannot be evaluated for this row (its arithmetic overflows)."""


NOT_EVALUABLE = "not_evaluable"  # the outcome of criteria that cannot be evaluated for a row

Evaluator = Callable[[Mapping[str, Any]], "bool | None"]


@dataclass(frozen=True)
class CompiledCriteria:
    """Checked criteria. `evaluate` gives the SQL three-valued result (None = UNKNOWN).

    `evaluate(row)` reads each feature in `features_used` with ``row[name]`` (a missing key raises
    KeyError; pass None for NULL). Values are ints/floats/Decimals for number features and str
    for text features. It raises CriteriaNotEvaluable when the arithmetic overflows for the row;
    `matches` and `outcome` never do.
    """

    text: str
    features_used: frozenset[str]
    evaluate: Evaluator

    def matches(self, features: Mapping[str, Any]) -> bool:
        """True only when the criteria are TRUE: UNKNOWN counts as no match, as in a WHERE, and
        so do criteria that cannot be evaluated for the row (never closed by a broken rule)."""
        try:
            return bool(self.evaluate(features))
        except CriteriaNotEvaluable:
            return False

    def outcome(self, features: Mapping[str, Any]) -> bool | None | str:
        """True, False, None (UNKNOWN) or NOT_EVALUABLE."""
        try:
            return self.evaluate(features)
        except CriteriaNotEvaluable:
            return NOT_EVALUABLE


# --------------------------------------------------------------------------------------------
# Checking


_CMP: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.EQ: operator.eq,
    exp.NEQ: operator.ne,
    exp.LT: operator.lt,
    exp.LTE: operator.le,
    exp.GT: operator.gt,
    exp.GTE: operator.ge,
}
_CMP_SYMBOL = {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
_SWAPPED = {
    operator.eq: operator.eq,
    operator.ne: operator.ne,
    operator.lt: operator.gt,
    operator.gt: operator.lt,
    operator.le: operator.ge,
    operator.ge: operator.le,
}
_ARITH: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.Add: operator.add,
    exp.Sub: operator.sub,
    exp.Mul: operator.mul,
}
_ARITH_SYMBOL = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/"}
_CONDITIONS = (*_CMP, exp.And, exp.Or, exp.Not, exp.In, exp.Between, exp.Is)

# Names for refused constructs; checked in order (subclasses before their bases).
_REFUSED_NAMES: tuple[tuple[type[exp.Expression], str], ...] = (
    (exp.Block, "multiple statements"),
    (exp.Subquery, "subquery"),
    (exp.Query, "SELECT / subquery"),
    (exp.Exists, "EXISTS"),
    (exp.ILike, "ILIKE"),
    (exp.Like, "LIKE"),
    (exp.SimilarTo, "SIMILAR TO"),
    (exp.RegexpLike, "regular-expression match (RLIKE/REGEXP)"),
    (exp.Glob, "GLOB"),
    (exp.Case, "CASE"),
    (exp.If, "IF"),
    (exp.Cast, "CAST / :: type conversion"),
    (exp.Star, "* (star)"),
    (exp.Placeholder, "parameter placeholder"),
    (exp.Parameter, "parameter"),
    (exp.SessionParameter, "session parameter"),
    (exp.Mod, "% (modulo)"),
    (exp.DPipe, "|| (string concatenation)"),
    (exp.IntDiv, "DIV (integer division)"),
    (exp.NullSafeEQ, "IS NOT DISTINCT FROM / <=>"),
    (exp.NullSafeNEQ, "IS DISTINCT FROM"),
    (exp.Any, "ANY"),
    (exp.All, "ALL"),
    (exp.Array, "array"),
    (exp.Tuple, "tuple"),
    (exp.Interval, "INTERVAL"),
    (exp.National, "N'...' string"),
    (exp.Dot, "dotted name"),
    (exp.Bracket, "subscript [...]"),
    (exp.Window, "window function"),
    (exp.Collate, "COLLATE"),
    (exp.BitwiseAnd, "& (bitwise AND)"),
    (exp.BitwiseOr, "| (bitwise OR)"),
    (exp.BitwiseXor, "^ (bitwise XOR)"),
    (exp.BitwiseNot, "~ (bitwise NOT)"),
    (exp.BitwiseLeftShift, "<< (shift)"),
    (exp.BitwiseRightShift, ">> (shift)"),
    (exp.Overlaps, "OVERLAPS"),
    (exp.Distinct, "DISTINCT"),
)

_INT_RE = re.compile(r"[0-9]+")


def _snippet(node: exp.Expression) -> str:
    text = node.sql()
    return text if len(text) <= 60 else text[:57] + "..."


def _position(node: exp.Expression) -> int | None:
    """1-based character position where `node` starts in the text, when sqlglot recorded it."""
    starts = [s for n in node.walk() if isinstance(s := n.meta_get("start"), int)]
    return min(starts) + 1 if starts else None


def _where(node: exp.Expression) -> str:
    pos = _position(node)
    at = f" at character {pos}" if pos is not None else ""
    return f"`{_snippet(node)}`{at}"


def _construct_name(node: exp.Expression) -> str:
    for cls, name in _REFUSED_NAMES:
        if isinstance(node, cls):
            return name
    if isinstance(node, exp.Anonymous):
        return f"function {str(node.name).upper()}"
    if isinstance(node, exp.Func):
        return f"function {node.sql_name()}"
    return node.key.upper()


def _refuse(node: exp.Expression) -> CriteriaError:
    return CriteriaError(f"{_construct_name(node)} is not allowed: {_where(node)}; {ALLOWED}")


def _kind_word(kind: str) -> str:
    return {"number": "a number", "text": "text", "bool": "a condition"}[kind]


class _Checker:
    """Walks the parsed tree against the whitelist; returns each node's kind."""

    def __init__(self, max_nodes: int = MAX_NODES) -> None:
        self.features: set[str] = set()
        self.nodes = 0
        self.max_nodes = max_nodes

    def _count(self) -> None:
        self.nodes += 1
        if self.nodes > self.max_nodes:
            raise CriteriaError(
                f"criteria have more than {self.max_nodes} operators, features and values; "
                "split the rule or precompute a feature"
            )

    def check(self, node: exp.Expression, depth: int = 0) -> str:
        if depth > MAX_NESTING:
            raise CriteriaError(f"criteria are nested more than {MAX_NESTING} levels deep")
        if type(node) is not exp.Paren:
            self._count()
        t = type(node)
        d = depth + 1
        if t is exp.Paren:
            return self.check(node.this, d)
        if t is exp.Column:
            return self._column(node)
        if t is exp.Literal:
            _literal_value(node)
            return "text" if node.is_string else "number"
        if t is exp.Boolean:
            return "bool"
        if t is exp.Null:
            raise CriteriaError(
                f"NULL is only allowed in IS NULL / IS NOT NULL ({_where(node)}): "
                "a comparison or arithmetic with NULL is always UNKNOWN, so the rule would "
                "never match"
            )
        if t is exp.Neg:
            self._need(node.this, "number", "unary minus", node, d)
            return "number"
        if t in _ARITH or t is exp.Div:
            word = f"arithmetic ({_ARITH_SYMBOL[t]})"
            self._need(node.this, "number", word, node, d)
            self._need(node.expression, "number", word, node, d)
            return "number"
        if t in _CMP:
            self._comparison(node, _CMP_SYMBOL[t], node.this, node.expression, d)
            return "bool"
        if t is exp.And or t is exp.Or:
            word = t.__name__.upper()
            self._need(node.this, "bool", word, node, d)
            self._need(node.expression, "bool", word, node, d)
            return "bool"
        if t is exp.Not:
            self._need(node.this, "bool", "NOT", node, d)
            return "bool"
        if t is exp.In:
            self._in(node, d)
            return "bool"
        if t is exp.Between:
            if node.args.get("symmetric"):
                raise CriteriaError(f"BETWEEN SYMMETRIC is not allowed: {_where(node)}; {ALLOWED}")
            for bound in (node.args["low"], node.args["high"]):
                self._comparison(node, "BETWEEN", node.this, bound, d)
            return "bool"
        if t is exp.Is:
            target = node.expression
            if type(target) is not exp.Null:
                raise CriteriaError(
                    f"IS {target.sql()} is not allowed: {_where(node)}; only IS NULL and "
                    f"IS NOT NULL; {ALLOWED}"
                )
            if type(node.this) is not exp.Null:  # NULL IS NULL is pointless but harmless
                self.check(node.this, d)
            return "bool"
        if t is exp.Alias:
            raise CriteriaError(
                f"unexpected `{node.alias}` after `{_snippet(node.this)}`: SQL reads it as an "
                f"alias (AS), which is not allowed; is an operator missing? {ALLOWED}"
            )
        raise _refuse(node)

    def _column(self, node: exp.Column) -> str:
        for part in ("table", "db", "catalog"):
            if node.args.get(part) is not None:
                raise CriteriaError(
                    f"qualified column {_where(node)} is not allowed; write the bare feature "
                    f"name ({node.name})"
                )
        ident = node.this
        if not isinstance(ident, exp.Identifier):
            raise _refuse(ident)
        raw = str(ident.this)
        name = raw if ident.args.get("quoted") else raw.lower()
        spec = FEATURES.get(name)
        if spec is None:
            pos = _position(node)
            at = f" at character {pos}" if pos is not None else ""
            close = difflib.get_close_matches(name, FEATURES, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise CriteriaError(
                f"unknown feature '{raw}'{at}{hint}; known: {', '.join(sorted(FEATURES))}"
            )
        # Canonical, unquoted, lower-case name: what the closure reads and the SQL emits.
        node.set("this", exp.to_identifier(name))
        self.features.add(name)
        return spec.kind

    def _need(
        self, child: exp.Expression, kind: str, word: str, parent: exp.Expression, depth: int
    ) -> None:
        got = self.check(child, depth)
        if got != kind:
            raise CriteriaError(
                f"{word} needs {_kind_word(kind)}, but `{_snippet(child)}` is "
                f"{_kind_word(got)}, in {_where(parent)}"
            )

    def _comparison(
        self,
        parent: exp.Expression,
        symbol: str,
        left: exp.Expression,
        right: exp.Expression,
        depth: int,
    ) -> None:
        kl = self.check(left, depth)
        kr = self.check(right, depth)
        if kl != kr:
            raise CriteriaError(
                f"cannot compare {_kind_word(kl)} (`{_snippet(left)}`) with {_kind_word(kr)} "
                f"(`{_snippet(right)}`) in {_where(parent)}"
            )
        if kl == "bool":
            raise CriteriaError(
                f"comparing conditions with {symbol} is not allowed: {_where(parent)}; "
                "combine conditions with AND / OR / NOT"
            )
        if kl == "text" and symbol not in ("=", "<>"):
            raise CriteriaError(
                f"ordering text with {symbol} is not allowed: {_where(parent)}; text may only "
                "be compared with =, <> and IN (string order depends on each engine's collation)"
            )

    def _in(self, node: exp.In, depth: int) -> None:
        for extra in ("query", "unnest", "field"):
            value = node.args.get(extra)
            if isinstance(value, exp.Expression):
                raise _refuse(value)
            if value:
                raise CriteriaError(f"IN {extra} is not allowed: {_where(node)}; {ALLOWED}")
        items = node.expressions
        if not items:
            raise CriteriaError(f"IN needs at least one value: {_where(node)}")
        kind = self.check(node.this, depth)
        if kind == "bool":
            raise CriteriaError(
                f"IN needs a feature or number on the left, but `{_snippet(node.this)}` is a "
                f"condition, in {_where(node)}"
            )
        for item in items:
            self._count()
            lit = item.this if type(item) is exp.Neg else item
            if type(lit) is not exp.Literal or (item is not lit and lit.is_string):
                raise CriteriaError(
                    f"IN lists may hold only number and string literals, not `{_snippet(item)}`"
                    f", in {_where(node)}"
                )
            got = "text" if lit.is_string else "number"
            _literal_value(lit)
            if got != kind:
                raise CriteriaError(
                    f"cannot compare {_kind_word(kind)} (`{_snippet(node.this)}`) with "
                    f"{_kind_word(got)} (`{_snippet(item)}`) in {_where(node)}"
                )


def _literal_value(node: exp.Literal) -> int | float | str:
    text = str(node.this)
    if node.is_string:
        return text
    try:
        value: int | float = int(text) if _INT_RE.fullmatch(text) else float(text)
    except ValueError:
        raise CriteriaError(f"number literal {_where(node)} is not understood") from None
    if not math.isfinite(value) or abs(value) > MAX_LITERAL:
        raise CriteriaError(
            f"number literal {_where(node)} is out of range (at most {MAX_LITERAL:.0e} in size)"
        )
    return value


def _magnitude(node: exp.Expression) -> float:
    """The largest absolute value a checked number expression can take, each feature at its
    largest; raises CriteriaError at the innermost arithmetic that may exceed MAX_MAGNITUDE.
    Conditions return 0 after checking their operands."""
    t = type(node)
    if t is exp.Paren or t is exp.Neg:
        return _magnitude(node.this)
    if t is exp.Column:
        return float(FEATURES[node.name].max_abs)
    if t is exp.Literal:
        return 0.0 if node.is_string else float(abs(_literal_value(node)))
    if t in _ARITH or t is exp.Div:
        left, right = _magnitude(node.this), _magnitude(node.expression)
        if t is exp.Mul:
            value = left * right
        elif t is exp.Div:
            value = left / _literal_divisor(node.expression)
        else:
            value = left + right
        if value > MAX_MAGNITUDE:
            raise CriteriaError(
                f"arithmetic {_where(node)} may reach {value:.0e} (each feature at its "
                f"largest), beyond {MAX_MAGNITUDE:.0e} where SQL engines overflow; use "
                "smaller factors"
            )
        return value
    for child in node.iter_expressions():
        _magnitude(child)
    return 0.0


def _literal_divisor(node: exp.Expression) -> float:
    """How much a division by `node` can enlarge: 1/|literal|, or 1 for anything else (the
    evaluation guard catches what a non-literal divisor does)."""
    while type(node) in (exp.Paren, exp.Neg):
        node = node.this
    if type(node) is exp.Literal and not node.is_string:
        value = abs(float(_literal_value(node)))
        if value != 0.0:
            return value  # a tiny literal makes the bound huge: the rule is refused
    return 1.0


@dataclass(frozen=True)
class _Checked:
    tree: exp.Expression  # whitelisted tree, column names canonical; parens as the user wrote
    features: frozenset[str]


def _reject_statement_separators(text: str) -> None:
    try:
        tokens = Tokenizer().tokenize(text)
    except SqlglotError as err:
        raise CriteriaError(f"cannot read criteria: {err}") from None
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            raise CriteriaError(
                f"semicolon (;) at character {tok.start + 1} is not allowed: criteria are a "
                "single condition, not statements"
            )


@functools.lru_cache(maxsize=512)
def _check(text: str, limits: bool = True) -> _Checked:
    """The checked tree; `limits=False` leaves out the bounds on size and magnitude (for text
    accepted before they were tightened, see `compile_stored_criteria`)."""
    if not isinstance(text, str):
        raise CriteriaError(f"criteria must be a string, not {type(text).__name__}")
    if not text.strip():
        raise CriteriaError("criteria text is empty; write a condition such as `score < 650`")
    if len(text) > MAX_CRITERIA_CHARS:
        raise CriteriaError(
            f"criteria text is {len(text)} characters; at most {MAX_CRITERIA_CHARS} are allowed"
        )
    _reject_statement_separators(text)
    try:
        tree = sqlglot.parse_one(text)
    except ParseError as err:
        first = err.errors[0] if err.errors else None
        if first:
            raise CriteriaError(
                f"cannot parse criteria: {first.get('description')} at line {first.get('line')}"
                f", column {first.get('col')} (near {first.get('highlight')!r})"
            ) from None
        raise CriteriaError(f"cannot parse criteria: {err}") from None
    except SqlglotError as err:
        raise CriteriaError(f"cannot parse criteria: {err}") from None
    except RecursionError:
        raise CriteriaError("criteria are nested too deeply to parse") from None
    if tree is None:
        raise CriteriaError("criteria text is empty; write a condition such as `score < 650`")

    # The characters bound the nodes anyway; without limits, only the nesting is bounded.
    checker = _Checker(MAX_NODES if limits else MAX_CRITERIA_CHARS)
    kind = checker.check(tree)
    top = tree
    while type(top) is exp.Paren:
        top = top.this
    if kind != "bool" or not isinstance(top, _CONDITIONS):
        raise CriteriaError(
            f"criteria must be a condition (a comparison, AND/OR/NOT, IN, BETWEEN or IS NULL), "
            f"but `{_snippet(tree)}` is {_kind_word(kind) if kind != 'bool' else 'a constant'}"
        )
    if not checker.features:
        raise CriteriaError(
            f"criteria `{_snippet(tree)}` use no feature, so they would match every account or none"
        )
    if limits:
        _magnitude(tree)
    return _Checked(tree, frozenset(checker.features))


# --------------------------------------------------------------------------------------------
# Python closure with SQL NULL semantics
#
# _build returns ("const", value), ("col", name) or ("fn", callable): knowing that an operand is
# a constant or a plain column lets the common shapes (`score < 650`) use one small closure.


def _as_fn(part: tuple[str, Any]) -> Callable[[Mapping[str, Any]], Any]:
    tag, value = part
    if tag == "fn":
        return value
    if tag == "col":
        name = value

        def column(r: Mapping[str, Any]) -> Any:
            return r[name]

        return column

    def constant(r: Mapping[str, Any]) -> Any:
        return value

    return constant


def _finite(value: Any) -> Any:
    # A float that overflowed is inf (or nan after inf - inf); SQL engines raise instead.
    if type(value) is float and not math.isfinite(value):
        raise CriteriaNotEvaluable("arithmetic overflows")
    return value


def _arith_value(op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    try:
        try:
            return _finite(op(a, b))
        except TypeError:  # e.g. Decimal with float: compute in floats, as the SQL engines do
            return _finite(op(float(a), float(b)))
    except CriteriaNotEvaluable:
        raise
    except ArithmeticError as error:  # OverflowError: an int too large for a float
        raise CriteriaNotEvaluable(f"arithmetic overflows: {error}") from None


def _div_value(a: Any, b: Any) -> Any:
    if a is None or b is None or b == 0:
        return None  # x / 0 is NULL here and, via NULLIF(divisor, 0), in the transpiled SQL
    try:
        try:
            return _finite(a / b)
        except TypeError:
            return _finite(float(a) / float(b))
    except CriteriaNotEvaluable:
        raise
    except ArithmeticError as error:  # OverflowError: an int too large for a float
        raise CriteriaNotEvaluable(f"arithmetic overflows: {error}") from None


def _cmp_value(op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    return op(a, b)


def _and_value(a: Any, b: Any) -> Any:
    if a is None:
        return False if (b is not None and not b) else None
    return b if a else False


def _or_value(a: Any, b: Any) -> Any:
    if a is None:
        return True if b else None
    return True if a else b


def _build(node: exp.Expression) -> tuple[str, Any]:
    t = type(node)
    if t is exp.Paren:
        return _build(node.this)
    if t is exp.Column:
        return ("col", node.name)
    if t is exp.Literal:
        return ("const", _literal_value(node))
    if t is exp.Boolean:
        return ("const", bool(node.this))
    if t is exp.Null:
        return ("const", None)
    if t is exp.Neg:
        return _build_neg(_build(node.this))
    if t in _ARITH or t is exp.Div:
        return _build_arith(t, _build(node.this), _build(node.expression))
    if t in _CMP:
        return _build_cmp(_CMP[t], _build(node.this), _build(node.expression))
    if t is exp.And or t is exp.Or:
        return _build_logic(t, node)
    if t is exp.Not:
        return _build_not(_build(node.this))
    if t is exp.In:
        return _build_in(node)
    if t is exp.Between:
        return _build_between(
            _build(node.this), _build(node.args["low"]), _build(node.args["high"])
        )
    if t is exp.Is:
        return _build_is_null(_build(node.this))
    raise AssertionError(f"unchecked node {t.__name__}")  # the checker refuses everything else


def _build_neg(inner: tuple[str, Any]) -> tuple[str, Any]:
    if inner[0] == "const":
        return ("const", None if inner[1] is None else -inner[1])
    f = _as_fn(inner)

    def neg(r: Mapping[str, Any]) -> Any:
        v = f(r)
        return None if v is None else -v

    return ("fn", neg)


def _build_arith(
    t: type[exp.Expression], left: tuple[str, Any], right: tuple[str, Any]
) -> tuple[str, Any]:
    if t is exp.Div:

        def value(a: Any, b: Any) -> Any:
            return _div_value(a, b)

    else:
        op = _ARITH[t]

        def value(a: Any, b: Any) -> Any:
            return _arith_value(op, a, b)

    if left[0] == "const" and right[0] == "const":
        return ("const", value(left[1], right[1]))
    fa, fb = _as_fn(left), _as_fn(right)

    def arith(r: Mapping[str, Any]) -> Any:
        return value(fa(r), fb(r))

    return ("fn", arith)


def _build_cmp(
    op: Callable[[Any, Any], Any], left: tuple[str, Any], right: tuple[str, Any]
) -> tuple[str, Any]:
    if left[0] == "const" and right[0] == "const":
        return ("const", _cmp_value(op, left[1], right[1]))
    if left[0] == "const" and right[0] == "col":
        left, right, op = right, left, _SWAPPED[op]
    if left[0] == "col" and right[0] == "const":
        name, c = left[1], right[1]
        if c is None:
            return ("const", None)

        def col_cmp_const(r: Mapping[str, Any]) -> Any:
            v = r[name]
            return None if v is None else op(v, c)

        return ("fn", col_cmp_const)
    fa, fb = _as_fn(left), _as_fn(right)

    def cmp(r: Mapping[str, Any]) -> Any:
        a = fa(r)
        if a is None:
            return None
        b = fb(r)
        return None if b is None else op(a, b)

    return ("fn", cmp)


def _flatten(node: exp.Expression, t: type[exp.Expression]) -> list[exp.Expression]:
    """Operands of a chain of the same AND/OR (parentheses of the same operator included)."""
    while type(node) is exp.Paren:
        node = node.this
    if type(node) is t:
        return _flatten(node.this, t) + _flatten(node.expression, t)
    return [node]


def _build_logic(t: type[exp.Expression], node: exp.Expression) -> tuple[str, Any]:
    parts = [_build(child) for child in _flatten(node, t)]
    combine = _and_value if t is exp.And else _or_value
    if all(p[0] == "const" for p in parts):
        return ("const", functools.reduce(combine, (p[1] for p in parts)))
    fns = [_as_fn(p) for p in parts]
    if len(fns) == 2:
        fa, fb = fns
        if t is exp.And:

            def and2(r: Mapping[str, Any]) -> Any:
                a = fa(r)
                if a is None:
                    b = fb(r)
                    return False if (b is not None and not b) else None
                return fb(r) if a else False

            return ("fn", and2)

        def or2(r: Mapping[str, Any]) -> Any:
            a = fa(r)
            if a is None:
                return True if fb(r) else None
            return True if a else fb(r)

        return ("fn", or2)

    funcs = tuple(fns)
    if t is exp.And:

        def and_n(r: Mapping[str, Any]) -> Any:
            unknown = False
            for f in funcs:
                v = f(r)
                if v is None:
                    unknown = True
                elif not v:
                    return False
            return None if unknown else True

        return ("fn", and_n)

    def or_n(r: Mapping[str, Any]) -> Any:
        unknown = False
        for f in funcs:
            v = f(r)
            if v is None:
                unknown = True
            elif v:
                return True
        return None if unknown else False

    return ("fn", or_n)


def _build_not(inner: tuple[str, Any]) -> tuple[str, Any]:
    if inner[0] == "const":
        return ("const", None if inner[1] is None else not inner[1])
    f = _as_fn(inner)

    def not_(r: Mapping[str, Any]) -> Any:
        v = f(r)
        return None if v is None else not v

    return ("fn", not_)


def _build_in(node: exp.In) -> tuple[str, Any]:
    values = frozenset(_build(item)[1] for item in node.expressions)
    inner = _build(node.this)
    if inner[0] == "const":
        return ("const", None if inner[1] is None else inner[1] in values)
    if inner[0] == "col":
        name = inner[1]

        def col_in(r: Mapping[str, Any]) -> Any:
            v = r[name]
            return None if v is None else v in values

        return ("fn", col_in)
    f = _as_fn(inner)

    def in_(r: Mapping[str, Any]) -> Any:
        v = f(r)
        return None if v is None else v in values

    return ("fn", in_)


def _build_between(x: tuple[str, Any], lo: tuple[str, Any], hi: tuple[str, Any]) -> tuple[str, Any]:
    if x[0] == "col" and lo[0] == "const" and hi[0] == "const":
        name, low, high = x[1], lo[1], hi[1]
        if low is None or high is None:  # only a constant division by zero gets here
            return _build_logic_between(x, lo, hi)

        def col_between(r: Mapping[str, Any]) -> Any:
            v = r[name]
            return None if v is None else low <= v <= high

        return ("fn", col_between)
    return _build_logic_between(x, lo, hi)


def _build_logic_between(
    x: tuple[str, Any], lo: tuple[str, Any], hi: tuple[str, Any]
) -> tuple[str, Any]:
    fx, flo, fhi = _as_fn(x), _as_fn(lo), _as_fn(hi)

    def between(r: Mapping[str, Any]) -> Any:  # x >= lo AND x <= hi, three-valued
        v = fx(r)
        if v is None:
            return None
        low, high = flo(r), fhi(r)
        return _and_value(None if low is None else v >= low, None if high is None else v <= high)

    return ("fn", between)


def _build_is_null(inner: tuple[str, Any]) -> tuple[str, Any]:
    if inner[0] == "const":
        return ("const", inner[1] is None)
    if inner[0] == "col":
        name = inner[1]

        def col_is_null(r: Mapping[str, Any]) -> bool:
            return r[name] is None

        return ("fn", col_is_null)
    f = _as_fn(inner)

    def is_null(r: Mapping[str, Any]) -> bool:
        return f(r) is None

    return ("fn", is_null)


@functools.lru_cache(maxsize=512)
def compile_criteria(text: str) -> CompiledCriteria:
    """Check `text` against the whitelist and compile it to a three-valued Python closure.

    Raises CriteriaError saying what is not allowed and where. Cached by text (bounded LRU).
    """
    checked = _check(text)
    evaluate = _as_fn(_build(checked.tree))
    return CompiledCriteria(text=text, features_used=checked.features, evaluate=evaluate)


def _never_evaluable(row: Mapping[str, Any]) -> Any:
    raise CriteriaNotEvaluable("the criteria no longer pass the checks")


@functools.lru_cache(maxsize=512)
def compile_stored_criteria(text: str) -> CompiledCriteria:
    """Criteria from the log, accepted when they were stored: never raises.

    The checks may have been tightened since (size, magnitude): such text compiles without
    those limits, its overflows caught per row. Text that fails even the whitelist compiles
    to criteria that are not evaluable for any row. Either way an account's fold goes on.
    """
    try:
        return compile_criteria(text)
    except CriteriaError:
        pass
    try:
        checked = _check(text, limits=False)
        evaluate = _as_fn(_build(checked.tree))
        return CompiledCriteria(text=text, features_used=checked.features, evaluate=evaluate)
    except (CriteriaError, CriteriaNotEvaluable):  # constant arithmetic that overflows
        return CompiledCriteria(text=text, features_used=frozenset(), evaluate=_never_evaluable)


# --------------------------------------------------------------------------------------------
# A description for people
#
# The customer reads what a criterion asks ("utilization at most 0.3, or deposits at least
# 10000"), never its SQL. Only the shapes a person reads at a glance are described: one simple
# term, or terms joined by one kind of operator (all AND or all OR). Anything else (a mix of AND
# and OR, NOT, arithmetic, IS NULL) has no description; the caller names the features instead.

# operator -> (word, direction the feature must move: "more", "less" or None)
_TERM_OPS: dict[type[exp.Expression], tuple[str, str | None]] = {
    exp.GTE: ("at_least", "more"),
    exp.GT: ("above", "more"),
    exp.LTE: ("at_most", "less"),
    exp.LT: ("below", "less"),
    exp.EQ: ("equals", None),
    exp.NEQ: ("not_equals", None),
}
_FLIPPED = {exp.GTE: exp.LTE, exp.GT: exp.LT, exp.LTE: exp.GTE, exp.LT: exp.GT,
            exp.EQ: exp.EQ, exp.NEQ: exp.NEQ}


def _unparen(node: exp.Expression) -> exp.Expression:
    while type(node) is exp.Paren:
        node = node.this
    return node


def _constant(node: exp.Expression) -> tuple[bool, Any]:
    """(True, value) for a literal or a negated number literal, else (False, None)."""
    node = _unparen(node)
    if type(node) is exp.Literal:
        return True, _literal_value(node)
    if type(node) is exp.Neg and type(_unparen(node.this)) is exp.Literal:
        value = _literal_value(_unparen(node.this))
        return (True, -value) if not isinstance(value, str) else (False, None)
    return False, None


def _term(node: exp.Expression) -> dict[str, Any] | None:
    node = _unparen(node)
    t = type(node)
    if t in _TERM_OPS:
        left, right = _unparen(node.this), _unparen(node.expression)
        if type(right) is exp.Column:  # `650 <= score` reads as `score >= 650`
            left, right, t = right, left, _FLIPPED[t]
        is_constant, value = _constant(right)
        if type(left) is not exp.Column or not is_constant:
            return None
        op, direction = _TERM_OPS[t]
        return {"feature": left.name, "op": op, "value": value, "direction": direction}
    if t is exp.In and type(_unparen(node.this)) is exp.Column and not node.args.get("query"):
        values = [_constant(item) for item in node.expressions]
        if not values or not all(ok for ok, _ in values):
            return None
        return {"feature": _unparen(node.this).name, "op": "one_of",
                "values": [value for _, value in values], "direction": None}
    if t is exp.Between and type(_unparen(node.this)) is exp.Column:
        (low_ok, low), (high_ok, high) = (_constant(node.args["low"]),
                                          _constant(node.args["high"]))
        if not (low_ok and high_ok):
            return None
        return {"feature": _unparen(node.this).name, "op": "between", "low": low, "high": high,
                "direction": None}
    return None


def describe_criteria(text: str) -> dict[str, Any] | None:
    """What stored criteria ask, term by term, for people: `{"join": "and" | "or" | None,
    "terms": [{"feature", "op", "value" (or "values", or "low" and "high"), "direction"}]}`.

    `op` is at_least, above, at_most, below, equals, not_equals, one_of or between; `direction`
    says which way the feature must move to meet the term ("more", "less" or None). None when
    the text has another shape (see above) or does not pass the whitelist: never raises.
    """
    try:
        tree = _unparen(_check(text, limits=False).tree)
    except CriteriaError:
        return None
    join = {exp.And: "and", exp.Or: "or"}.get(type(tree))
    parts = _flatten(tree, type(tree)) if join else [tree]
    terms = [_term(part) for part in parts]
    if any(term is None for term in terms):
        return None
    return {"join": join, "terms": terms}


# --------------------------------------------------------------------------------------------
# Transpiling


# Operands that need no parentheses: leaves, user parentheses, and the CAST(...) / NULLIF(...)
# calls that _portable itself adds.
_ATOMIC_TYPES = frozenset(
    {exp.Column, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Cast, exp.Nullif}
)


def _atomic(node: exp.Expression) -> bool:
    # Exact types on purpose: sqlglot's And/Or are also exp.Func subclasses.
    if type(node) in _ATOMIC_TYPES:
        return True
    return type(node) is exp.Neg and type(node.this) in _ATOMIC_TYPES


def _wrap(node: exp.Expression) -> exp.Expression:
    return node if _atomic(node) else exp.Paren(this=node)


def _portable(node: exp.Expression) -> exp.Expression:
    """A copy of a checked tree that means the same thing in every target dialect.

    Every compound operand gets explicit parentheses (engines differ in the precedence of IS,
    NOT and comparisons), decimal literals become CAST(... AS DOUBLE) (DuckDB and PostgreSQL
    would otherwise do exact DECIMAL arithmetic where the closure uses floats), and divisors
    become NULLIF(divisor, 0) (PostgreSQL and ANSI Spark raise on x / 0, DuckDB gives inf).
    """
    t = type(node)
    if t is exp.Paren:
        return exp.Paren(this=_portable(node.this))
    if t is exp.Column:
        return exp.column(node.name)
    if t is exp.Literal:
        value = _literal_value(node)
        if isinstance(value, str):
            return exp.Literal.string(value)
        if isinstance(value, int):
            return exp.Literal.number(value)
        return exp.Cast(this=exp.Literal.number(repr(value)), to=exp.DataType.build("double"))
    if t is exp.Boolean:
        return exp.Boolean(this=bool(node.this))
    if t is exp.Null:
        return exp.Null()
    if t is exp.Neg:
        return exp.Neg(this=_wrap(_portable(node.this)))
    if t is exp.Div:
        divisor = exp.Nullif(this=_portable(node.expression), expression=exp.Literal.number(0))
        dividend = _wrap(_portable(node.this))
        return exp.Div(this=dividend, expression=divisor, typed=False, safe=False)
    if t in _ARITH or t in _CMP:
        return t(this=_wrap(_portable(node.this)), expression=_wrap(_portable(node.expression)))
    if t is exp.And or t is exp.Or:
        parts = [_portable(child) for child in _flatten(node, t)]
        parts = [p if type(p) is t or _atomic(p) else exp.Paren(this=p) for p in parts]
        return functools.reduce(lambda a, b: t(this=a, expression=b), parts)
    if t is exp.Not:
        return exp.Not(this=_wrap(_portable(node.this)))
    if t is exp.In:
        return exp.In(
            this=_wrap(_portable(node.this)),
            expressions=[_portable(item) for item in node.expressions],
        )
    if t is exp.Between:
        return exp.Between(
            this=_wrap(_portable(node.this)),
            low=_wrap(_portable(node.args["low"])),
            high=_wrap(_portable(node.args["high"])),
        )
    if t is exp.Is:
        return exp.Is(this=_wrap(_portable(node.this)), expression=exp.Null())
    raise AssertionError(f"unchecked node {t.__name__}")


@functools.lru_cache(maxsize=512)
def _portable_tree(text: str) -> exp.Expression:
    tree = _portable(_check(text).tree)
    while type(tree) is exp.Paren:
        tree = tree.this
    if type(tree) in (exp.And, exp.Or):
        tree = exp.Paren(this=tree)  # safe to splice into `WHERE ... AND <criteria>`
    return tree


def transpile_criteria(text: str, dialect: str) -> str:
    """Check `text` like `compile_criteria`, then render it as a WHERE condition for `dialect`.

    `dialect` is one of duckdb, postgres, spark, sqlite. The text is read as sqlglot's generic
    (ANSI-like) SQL. Comments are dropped. Raises CriteriaError.
    """
    if dialect not in DIALECTS:
        supported = ", ".join(sorted(DIALECTS))
        raise CriteriaError(f"unknown dialect {dialect!r}; supported: {supported}")
    return _portable_tree(text).sql(dialect=dialect, comments=False)

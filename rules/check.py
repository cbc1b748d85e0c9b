"""Static type check of an expression against the names in scope, before anything runs.

Every problem names its position; unknown names and functions come with the nearest defined one.
Pure: it reads the tree and the scope, evaluates nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field

from rules.errors import Problem, Span
from rules.syntax import (
    Binary,
    Boolean,
    Call,
    Conditional,
    Expr,
    MemberOf,
    Name,
    Number,
    Text,
    Unary,
    to_source,
)
from rules.types import (
    BOOLEAN,
    COUNT,
    DATE,
    NUMBER,
    NUMERIC,
    RATE,
    TEXT,
    BandsTable,
    KeyedTable,
    PointsTable,
    Rows,
    Type,
    product_type,
    quotient_type,
    unify,
)
from rules.values import iso_date

ROUNDING_MODES = ("half_even", "half_up", "half_down", "down", "up", "floor", "ceiling")
MAX_ROUND_PLACES = 12

FUNCTIONS: Mapping[str, str] = {
    "min": "min(a, b, ...): the smallest of values of one type",
    "max": "max(a, b, ...): the largest of values of one type",
    "clamp": "clamp(x, low, high): x limited to [low, high]",
    "abs": "abs(x): x without its sign",
    "round": "round(x, places[, mode]): x rounded to places decimals; mode is one of "
    + ", ".join(ROUNDING_MODES)
    + " (default: the contract's rounding mode)",
    "interpolate": "interpolate(points_table, x): piecewise-linear value at x",
    "bands": "bands(bands_table, x): marginal (tax-bracket) sum of each band's rate x its part",
    "lookup": 'lookup(keyed_table, key, "column"): one value from a keyed table',
    "given": "given(name): true when the optional input was supplied",
    "sum": "sum(rows, expression): the expression summed over every row",
    "count": "count(rows[, condition]): the number of rows (for which the condition holds)",
    "date": 'date("YYYY-MM-DD"): a date',
}


@dataclass(frozen=True, slots=True)
class Scope:
    """What an expression may name: types by name, and which of them are optional inputs."""

    types: Mapping[str, Type]
    optional: frozenset[str] = frozenset()
    unavailable: Mapping[str, str] = field(default_factory=dict)  # name -> why it cannot be used
    unchecked: frozenset[str] = frozenset()  # names whose own clause is broken: no cascade

    def with_columns(self, columns: tuple[tuple[str, Type], ...]) -> Scope:
        types = {**self.types, **dict(columns)}
        return Scope(types, self.optional, self.unavailable, self.unchecked)


class _Checker:
    def __init__(self, source: str, scope: Scope, *, per_row: bool = False) -> None:
        self.source = source
        self.scope = scope
        self.per_row = per_row  # inside sum()/count(): another one would cost rows x rows
        self.problems: list[Problem] = []

    def fail(self, span: Span, message: str) -> None:
        self.problems.append(Problem("", message, self.source, span))

    def check(self, node: Expr) -> Type | None:
        match node:
            case Number():
                return RATE if node.percent else NUMBER
            case Text():
                return TEXT
            case Boolean():
                return BOOLEAN
            case Name():
                return self.name(node)
            case Unary(op="not"):
                return BOOLEAN if self.expect_boolean(node.operand, "'not'") else None
            case Unary():
                operand = self.check(node.operand)
                if operand is not None and operand not in NUMERIC:
                    self.fail(node.span, f"'{node.op}' needs a number, not {operand}")
                    return None
                return operand
            case Binary(op="and" | "or"):
                left = self.expect_boolean(node.left, f"'{node.op}'")
                right = self.expect_boolean(node.right, f"'{node.op}'")
                return BOOLEAN if left and right else None
            case Binary():
                return self.binary(node)
            case MemberOf():
                return self.member_of(node)
            case Conditional():
                self.expect_boolean(node.condition, "'if'")
                return self.agree(node.span, "the branches of 'if'", [node.then, node.otherwise])
            case Call():
                return self.call(node)
        raise TypeError(node)

    def name(self, node: Name) -> Type | None:
        if node.name in self.scope.unavailable:
            self.fail(node.span, self.scope.unavailable[node.name])
            return None
        found = self.scope.types.get(node.name)
        if found is None and node.name in self.scope.unchecked:
            return None  # its own clause's problem is already reported
        if found is None:
            if node.name in FUNCTIONS:
                self.fail(
                    node.span,
                    f"'{node.name}' is a function: call it as {FUNCTIONS[node.name].split(':')[0]}",
                )
            else:
                self.fail(
                    node.span, f"unknown name '{node.name}'{suggest(node.name, self.scope.types)}"
                )
        return found

    def expect_boolean(self, node: Expr, what: str) -> bool:
        found = self.check(node)
        if found is not None and found != BOOLEAN:
            self.fail(
                node.span, f"{what} needs a condition (boolean), not {found}: {to_source(node)}"
            )
            return False
        return found is not None

    def agree(self, span: Span, what: str, nodes: list[Expr]) -> Type | None:
        types = [self.check(n) for n in nodes]
        if any(t is None for t in types):
            return None
        result: Type | None = types[0]
        for node, found in zip(nodes[1:], types[1:], strict=True):
            assert result is not None and found is not None
            joined = unify(result, found)
            if joined is None:
                self.fail(node.span, f"{what} must have one type: {result} and {found}")
                return None
            result = joined
        return result

    def binary(self, node: Binary) -> Type | None:
        left, right = self.check(node.left), self.check(node.right)
        if left is None or right is None:
            return None
        op = node.op
        if op in ("+", "-"):
            result = unify(left, right)
            if result is None or result not in NUMERIC:
                self.fail(
                    node.span,
                    f"cannot {'add' if op == '+' else 'subtract'} {right} "
                    f"{'to' if op == '+' else 'from'} {left}: {to_source(node)}",
                )
                return None
            return result
        if op == "*":
            result = product_type(left, right)
            if result is None:
                self.fail(node.span, f"cannot multiply {left} by {right}: {to_source(node)}")
            return result
        if op == "/":
            result = quotient_type(left, right)
            if result is None:
                self.fail(node.span, f"cannot divide {left} by {right}: {to_source(node)}")
            return result
        return self.comparison(node, left, right)

    def comparison(self, node: Binary, left: Type, right: Type) -> Type | None:
        joined = unify(left, right)
        if joined is None:
            self.fail(node.span, f"cannot compare {left} with {right}: {to_source(node)}")
            return None
        ordered = joined in NUMERIC or joined == DATE
        if node.op not in ("==", "!=") and not ordered:
            self.fail(node.span, f"'{node.op}' needs numbers or dates, not {joined}")
            return None
        if not (ordered or joined in (BOOLEAN, TEXT)):
            self.fail(node.span, f"cannot compare values of type {joined}")
            return None
        return BOOLEAN

    def member_of(self, node: MemberOf) -> Type | None:
        joined = self.agree(
            node.span, "a value and its 'in' options", [node.operand, *node.options]
        )
        if joined is not None and joined not in NUMERIC and joined not in (TEXT, DATE):
            self.fail(node.span, f"'in' compares numbers, texts or dates, not {joined}")
            return None
        return BOOLEAN if joined is not None else None

    def call(self, node: Call) -> Type | None:
        if node.function not in FUNCTIONS:
            if node.function in self.scope.types:
                self.fail(node.name_span, f"'{node.function}' is not a function")
            else:
                known = ", ".join(sorted(FUNCTIONS))
                self.fail(
                    node.name_span,
                    f"unknown function '{node.function}'"
                    f"{suggest(node.function, FUNCTIONS)}; the functions are: {known}",
                )
            return None
        checks = {
            "min": self.call_min, "max": self.call_max, "clamp": self.call_clamp,
            "abs": self.call_abs, "round": self.call_round,
            "interpolate": self.call_interpolate, "bands": self.call_bands,
            "lookup": self.call_lookup, "given": self.call_given, "sum": self.call_sum,
            "count": self.call_count, "date": self.call_date,
        }  # fmt: skip
        return checks[node.function](node)

    def arity(self, node: Call, low: int, high: int | None) -> bool:
        count = len(node.args)
        if count < low or (high is not None and count > high):
            usage = FUNCTIONS[node.function].split(":")[0]
            self.fail(
                node.span,
                f"{node.function}() takes {_count_words(low, high)}, got {count}: {usage}",
            )
            return False
        return True

    def numeric(self, node: Call, result: Type | None) -> Type | None:
        if result is not None and result not in NUMERIC:
            self.fail(node.span, f"{node.function}() needs numbers, not {result}")
            return None
        return result

    def call_min(self, node: Call) -> Type | None:
        if not self.arity(node, 2, None):
            return None
        return self.numeric(
            node, self.agree(node.span, f"the arguments of {node.function}()", list(node.args))
        )

    call_max = call_min

    def call_clamp(self, node: Call) -> Type | None:
        if not self.arity(node, 3, 3):
            return None
        return self.numeric(
            node, self.agree(node.span, "the arguments of clamp()", list(node.args))
        )

    def call_abs(self, node: Call) -> Type | None:
        if not self.arity(node, 1, 1):
            return None
        return self.numeric(node, self.check(node.args[0]))

    def call_round(self, node: Call) -> Type | None:
        if not self.arity(node, 2, 3):
            return None
        value = self.numeric(node, self.check(node.args[0]))
        places = node.args[1]
        if not (
            isinstance(places, Number)
            and not places.percent
            and places.value == places.value.to_integral_value()
            and 0 <= places.value <= MAX_ROUND_PLACES
        ):
            self.fail(
                places.span,
                f"round() places must be a whole number from 0 to "
                f"{MAX_ROUND_PLACES} written out, such as 2",
            )
            return None
        if len(node.args) == 3:
            mode = node.args[2]
            if not (isinstance(mode, Text) and mode.value in ROUNDING_MODES):
                self.fail(
                    mode.span,
                    "round() mode must be one of " + ", ".join(f'"{m}"' for m in ROUNDING_MODES),
                )
                return None
        return value

    def table_argument(self, node: Call, kind: type) -> Type | None:
        table = self.check(node.args[0])
        if table is not None and not isinstance(table, kind):
            wanted = {
                PointsTable: "a table of points",
                BandsTable: "a table of bands",
                KeyedTable: "a keyed table",
            }[kind]
            self.fail(node.args[0].span, f"{node.function}() needs {wanted}, not {table}")
            return None
        return table

    def call_interpolate(self, node: Call) -> Type | None:
        if not self.arity(node, 2, 2):
            return None
        table = self.table_argument(node, PointsTable)
        x = self.check(node.args[1])
        if not isinstance(table, PointsTable) or x is None:
            return None
        if unify(table.x, x) != table.x:
            self.fail(
                node.args[1].span, f"interpolate() over {table} needs x of type {table.x}, not {x}"
            )
            return None
        return table.y

    def call_bands(self, node: Call) -> Type | None:
        if not self.arity(node, 2, 2):
            return None
        table = self.table_argument(node, BandsTable)
        x = self.check(node.args[1])
        if not isinstance(table, BandsTable) or x is None:
            return None
        if unify(table.bound, x) != table.bound:
            self.fail(
                node.args[1].span, f"bands() over {table} needs x of type {table.bound}, not {x}"
            )
            return None
        return table.bound

    def call_lookup(self, node: Call) -> Type | None:
        if not self.arity(node, 3, 3):
            return None
        table = self.table_argument(node, KeyedTable)
        key_ok = self.check(node.args[1])
        if key_ok is not None and key_ok != TEXT:
            self.fail(node.args[1].span, f"lookup() keys are text, not {key_ok}")
        column = node.args[2]
        if not isinstance(column, Text):
            self.fail(
                column.span, 'lookup() column must be written as a quoted name, such as "rate"'
            )
            return None
        if not isinstance(table, KeyedTable):
            return None
        found = table.column(column.value)
        if found is None:
            names = dict(table.columns)
            self.fail(
                column.span,
                f"the table has no column '{column.value}'{suggest(column.value, names)}",
            )
        return found

    def call_given(self, node: Call) -> Type | None:
        if not self.arity(node, 1, 1):
            return None
        target = node.args[0]
        if not isinstance(target, Name) or target.name not in self.scope.optional:
            self.fail(target.span, "given() takes the name of an optional input")
            return None
        return BOOLEAN

    def rows_argument(self, node: Call) -> Rows | None:
        if self.per_row:
            self.fail(
                node.span,
                f"{node.function}() cannot stand inside another sum() or "
                "count(): its cost would grow with rows x rows; define it separately",
            )
            return None
        rows = self.check(node.args[0])
        if rows is not None and not isinstance(rows, Rows):
            self.fail(
                node.args[0].span, f"{node.function}() needs rows (such as episodes), not {rows}"
            )
            return None
        return rows if isinstance(rows, Rows) else None

    def in_rows(self, rows: Rows, node: Expr) -> Type | None:
        shadowed = [c for c, _ in rows.columns if c in self.scope.types]
        if shadowed:
            self.fail(
                node.span,
                f"row column '{shadowed[0]}' has the name of a parameter, input "
                "or definition; rename one of them",
            )
            return None
        inner = _Checker(self.source, self.scope.with_columns(rows.columns), per_row=True)
        found = inner.check(node)
        self.problems.extend(inner.problems)
        return found

    def call_sum(self, node: Call) -> Type | None:
        if not self.arity(node, 2, 2):
            return None
        rows = self.rows_argument(node)
        if rows is None:
            return None
        return self.numeric(node, self.in_rows(rows, node.args[1]))

    def call_count(self, node: Call) -> Type | None:
        if not self.arity(node, 1, 2):
            return None
        rows = self.rows_argument(node)
        if rows is None:
            return None
        if len(node.args) == 2:
            condition = self.in_rows(rows, node.args[1])
            if condition is not None and condition != BOOLEAN:
                self.fail(node.args[1].span, f"count() condition must be boolean, not {condition}")
                return None
        return COUNT

    def call_date(self, node: Call) -> Type | None:
        if not self.arity(node, 1, 1):
            return None
        text = node.args[0]
        if not isinstance(text, Text) or iso_date(text.value) is None:
            self.fail(text.span, 'date() takes a quoted ISO date, such as date("2018-01-01")')
            return None
        return DATE


def _count_words(low: int, high: int | None) -> str:
    if high is None:
        return f"{low} or more arguments"
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


def suggest(name: str, known: Mapping[str, object]) -> str:
    """A hint naming the nearest known name (\" (did you mean 'x'?)\"), or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check(source: str, expr: Expr, scope: Scope) -> tuple[Type | None, tuple[Problem, ...]]:
    """The type of `expr` in `scope`, and every problem found (empty when it is well typed)."""
    checker = _Checker(source, scope)
    found = checker.check(expr)
    return (found if not checker.problems else None), tuple(checker.problems)

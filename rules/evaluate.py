"""Evaluate a type-checked expression in exact Decimal arithmetic, recording what it read.

Arithmetic runs in one named context (34 significant digits, the precision of IEEE decimal128);
nothing is rounded unless the expression says round(). Pure: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from rules.errors import EvaluationError, Problem, Span
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
from rules.values import Bands, Keyed, Points, RowSet, Value

ARITHMETIC = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

ROUNDING = {
    "half_even": decimal.ROUND_HALF_EVEN,
    "half_up": decimal.ROUND_HALF_UP,
    "half_down": decimal.ROUND_HALF_DOWN,
    "down": decimal.ROUND_DOWN,
    "up": decimal.ROUND_UP,
    "floor": decimal.ROUND_FLOOR,
    "ceiling": decimal.ROUND_CEILING,
}


class RoundingError(ValueError):
    """A value with more digits at the asked places than the arithmetic holds."""


def round_decimal(value: Decimal, places: int, mode: str) -> Decimal:
    """`value` to `places` decimals by the named mode (half_even, half_up, down, …)."""
    with decimal.localcontext(ARITHMETIC):
        try:
            return value.quantize(Decimal(1).scaleb(-places), rounding=ROUNDING[mode])
        except decimal.InvalidOperation:
            raise RoundingError(
                f"{value:.6E} has more than {ARITHMETIC.prec} digits at {places} decimal "
                "places: too large to round"
            ) from None


MAX_EVALUATION_STEPS = 5_000_000


@dataclass(slots=True)
class Budget:
    """Steps left for one evaluation of a contract, shared by all its expressions: the cost of a
    contract is bounded however many rows its sum() and count() run over."""

    limit: int = MAX_EVALUATION_STEPS
    used: int = 0


@dataclass(frozen=True, slots=True)
class Environment:
    """The values an expression can read, and the optional inputs that were not given."""

    values: Mapping[str, Value]
    not_given: frozenset[str] = frozenset()
    rounding_mode: str = "half_even"
    budget: Budget = field(default_factory=Budget)


@dataclass(slots=True)
class Reading:
    """What one evaluation read: names in first-read order, and per-row values of sum()/count()."""

    names: list[str] = field(default_factory=list)
    row_values: list[tuple[str, tuple[Value, ...]]] = field(default_factory=list)

    def read(self, name: str) -> None:
        if name not in self.names:
            self.names.append(name)


def evaluate(source: str, expr: Expr, environment: Environment) -> tuple[Value, Reading]:
    """The value of a well-typed expression and what it read; EvaluationError says where."""
    evaluator = _Evaluator(source, environment)
    with decimal.localcontext(ARITHMETIC):
        try:
            value = evaluator.value(expr, environment.values)
        except (decimal.Overflow, decimal.InvalidOperation):
            raise EvaluationError(
                [Problem("", "a result is too large to hold exactly", source, expr.span)]
            ) from None
    return value, evaluator.reading


class _Evaluator:
    def __init__(self, source: str, environment: Environment) -> None:
        self.source = source
        self.environment = environment
        self.reading = Reading()
        self.row_columns: frozenset[str] = frozenset()

    def fail(self, span: Span, message: str) -> EvaluationError:
        return EvaluationError([Problem("", message, self.source, span)])

    def value(self, node: Expr, scope: Mapping[str, Value]) -> Value:
        budget = self.environment.budget
        budget.used += 1
        if budget.used > budget.limit:
            raise self.fail(
                node.span,
                f"the evaluation took more than {budget.limit:,} steps: the limit bounds the cost "
                "of a contract (a sum() or count() over very many rows of a large expression?)",
            )
        match node:
            case Number():
                return node.value
            case Text(value=text):
                return text
            case Boolean(value=flag):
                return flag
            case Name(name=name):
                return self.name(node, name, scope)
            case Unary(op="not", operand=operand):
                return not self.value(operand, scope)
            case Unary(op=op, operand=operand):
                number = self.number(operand, scope)
                return -number if op == "-" else +number
            case Binary(op="and", left=left, right=right):
                return bool(self.value(left, scope)) and bool(self.value(right, scope))
            case Binary(op="or", left=left, right=right):
                return bool(self.value(left, scope)) or bool(self.value(right, scope))
            case Binary():
                return self.binary(node, scope)
            case MemberOf(operand=operand, options=options):
                found = self.value(operand, scope)
                return any(found == self.value(option, scope) for option in options)
            case Conditional(condition=condition, then=then, otherwise=otherwise):
                chosen = then if self.value(condition, scope) else otherwise
                return self.value(chosen, scope)
            case Call():
                return self.call(node, scope)
        raise TypeError(node)

    def name(self, node: Name, name: str, scope: Mapping[str, Value]) -> Value:
        if name in scope:
            if name not in self.row_columns:  # a row's own column is not a contract value
                self.reading.read(name)
            return scope[name]
        if name in self.environment.not_given:
            raise self.fail(
                node.span,
                f"the optional input '{name}' was not given, and this "
                "expression needs it: supply it, or guard the use with given()",
            )
        raise self.fail(node.span, f"no value for '{name}'")

    def number(self, node: Expr, scope: Mapping[str, Value]) -> Decimal:
        found = self.value(node, scope)
        assert isinstance(found, Decimal), found
        return found

    def binary(self, node: Binary, scope: Mapping[str, Value]) -> Value:
        left, right = self.value(node.left, scope), self.value(node.right, scope)
        op = node.op
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if op in _ORDER:
            return _ORDER[op](left, right)  # type: ignore[arg-type]
        assert isinstance(left, Decimal) and isinstance(right, Decimal)
        if op == "/" and right == 0:
            raise self.fail(node.span, f"division by zero: {to_source(node.right)} is 0")
        try:
            return _ARITHMETIC_OPERATORS[op](left, right)
        except (decimal.Overflow, decimal.InvalidOperation):
            raise self.fail(node.span, "the result is too large to hold exactly") from None

    def call(self, node: Call, scope: Mapping[str, Value]) -> Value:
        function = node.function
        if function == "given":
            target = node.args[0]
            assert isinstance(target, Name)
            return target.name not in self.environment.not_given
        if function in ("sum", "count"):
            return self.over_rows(node, scope)
        if function == "date":
            text = node.args[0]
            assert isinstance(text, Text)
            return dt.date.fromisoformat(text.value)
        if function == "round":
            return self.round(node, scope)
        if function == "lookup":
            return self.lookup(node, scope)
        args = [self.value(arg, scope) for arg in node.args]
        if function == "clamp":
            x, low, high = args
            if low > high:  # type: ignore[operator]
                raise self.fail(
                    node.span, f"clamp() low bound {low} is above its high bound {high}"
                )
            return min(max(x, low), high)  # type: ignore[type-var]
        return _PLAIN[function](args)

    def round(self, node: Call, scope: Mapping[str, Value]) -> Value:
        x = self.number(node.args[0], scope)
        places = node.args[1]
        assert isinstance(places, Number)
        mode = node.args[2].value if len(node.args) == 3 else self.environment.rounding_mode  # type: ignore[union-attr]
        assert isinstance(mode, str)
        try:
            return round_decimal(x, int(places.value), mode)
        except RoundingError as error:
            raise self.fail(node.span, str(error)) from None

    def lookup(self, node: Call, scope: Mapping[str, Value]) -> Value:
        table, key = self.value(node.args[0], scope), self.value(node.args[1], scope)
        column = node.args[2]
        assert isinstance(table, Keyed) and isinstance(key, str) and isinstance(column, Text)
        try:
            return table.lookup(key, column.value)
        except KeyError:
            raise self.fail(
                node.args[1].span, f"the table has no row '{key}' (rows: {', '.join(table.keys())})"
            ) from None

    def in_row(
        self,
        node: Call,
        number: int,
        row: tuple[tuple[str, Value], ...],
        scope: Mapping[str, Value],
    ) -> Value:
        """One row's value; a failure says which row (its number and its first column)."""
        if len(node.args) == 1:
            return True
        try:
            return self.value(node.args[1], {**scope, **dict(row)})
        except EvaluationError as error:
            column, value = row[0]
            where = f"row {number} of {to_source(node.args[0])} ({column} {value!r:.40})"
            raise EvaluationError(
                Problem(p.where, f"{where}: {p.message}", p.source, p.span) for p in error.problems
            ) from None

    def over_rows(self, node: Call, scope: Mapping[str, Value]) -> Value:
        rows = self.value(node.args[0], scope)
        assert isinstance(rows, RowSet)
        outer_columns = self.row_columns
        self.row_columns = outer_columns | {column for row in rows.rows[:1] for column, _ in row}
        try:
            per_row = tuple(
                self.in_row(node, number, row, scope) for number, row in enumerate(rows.rows, 1)
            )
        finally:
            self.row_columns = outer_columns
        self.reading.row_values.append((to_source(node), per_row))
        if node.function == "count":
            return Decimal(sum(1 for kept in per_row if kept))
        return sum((v for v in per_row if isinstance(v, Decimal)), Decimal(0))


_ARITHMETIC_OPERATORS: Mapping[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
}

_ORDER: Mapping[str, Callable[[Decimal, Decimal], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _numbers(args: list[Value]) -> list[Decimal]:
    assert all(isinstance(a, Decimal) for a in args)
    return args  # type: ignore[return-value]


def _interpolate(args: list[Value]) -> Value:
    table, x = args
    assert isinstance(table, Points) and isinstance(x, Decimal)
    return table.interpolate(x)


def _bands(args: list[Value]) -> Value:
    table, x = args
    assert isinstance(table, Bands) and isinstance(x, Decimal)
    return table.apply(x)


_PLAIN: Mapping[str, Callable[[list[Value]], Value]] = {
    "min": lambda args: min(_numbers(args)),
    "max": lambda args: max(_numbers(args)),
    "abs": lambda args: abs(_numbers(args)[0]),
    "interpolate": _interpolate,
    "bands": _bands,
}

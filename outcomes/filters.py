"""Aggregate filters (`where`): the shapes they may take, and what a missing value means.

Pure: the SQL compiler (outcomes.aggregates) and the pure-Python reference both read a filter
through `comparison`, so they agree on its meaning, and contract validation refuses at once a
filter that could not be computed.

A filter is comparisons joined by `and`, `or` and `not`. A comparison is an event field against
a literal (a number, "text", true/false, date("YYYY-MM-DD")), a parameter, or another field, in
either order (`100 < paid_amount` is `paid_amount > 100`); or `field in (…)` of literals and
parameters.

A missing (empty) field equals nothing: `==`, `<`, `<=`, `>`, `>=` and `in` are false for it, and
`!=` is true. So `ms_drg_code != "470"` and `not (ms_drg_code == "470")` both keep the claims
that have no MS-DRG, as a payer writing "everything but DRG 470" means.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rules.syntax import Binary, Boolean, Call, Expr, MemberOf, Name, Number, Text, Unary
from rules.values import iso_date

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
OPERATORS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}  # on values, and on SQLAlchemy columns alike
FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
SHAPE = ("a filter compares an event field with a literal, a parameter or another field "
         "(field == value, value < field, field in (…)), joined by and/or/not")  # fmt: skip


class FilterError(ValueError):
    """A filter Settle cannot compute, with why."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """`field op operand`: the operand is a literal or parameter (`value`) or a field (`other`)."""

    op: str  # one of COMPARISONS, or "in"
    field: str
    other: str | None = None
    value: Expr | None = None
    values: tuple[Expr, ...] = ()


def comparison(expr: Expr, fields: Collection[str]) -> Comparison | None:
    """The comparison `expr` is, field first; None for and/or/not/true/false (walk those)."""
    match expr:
        case Boolean() | Unary(op="not") | Binary(op="and" | "or"):
            return None
        case Binary(op=op, left=Name(name=a), right=Name(name=b)) if (
            a in fields and b in fields and op in COMPARISONS
        ):
            return Comparison(op, a, other=b)
        case Binary(op=op, left=Name(name=a), right=right) if a in fields and op in COMPARISONS:
            return Comparison(op, a, value=_operand(right, fields))
        case Binary(op=op, left=left, right=Name(name=b)) if b in fields and op in COMPARISONS:
            return Comparison(FLIPPED[op], b, value=_operand(left, fields))
        case MemberOf(operand=Name(name=a), options=options) if a in fields:
            return Comparison("in", a, values=tuple(_operand(o, fields) for o in options))
    raise FilterError(SHAPE)


def check_filter(expr: Expr, fields: Collection[str]) -> None:
    """Raise FilterError if any part of the filter is not a shape Settle computes. (Types are the
    type checker's: text, for one, is only compared for equality.)"""
    match expr:
        case Boolean():
            return
        case Unary(op="not", operand=operand):
            check_filter(operand, fields)
        case Binary(op="and" | "or", left=left, right=right):
            check_filter(left, fields)
            check_filter(right, fields)
        case _:
            comparison(expr, fields)


def literal_value(expr: Expr, parameters: Mapping[str, Any]) -> Any:
    """A comparison's operand as a value: a literal, or a parameter's value in this period."""
    match expr:
        case Number(value=value) | Text(value=value) | Boolean(value=value):
            return value
        case Call(function="date", args=(Text(value=text),)):
            return iso_date(text)
        case Name(name=name):
            if name not in parameters:
                raise FilterError(f"parameter '{name}' has no value in this period")
            return parameters[name]
    raise FilterError(SHAPE)


def holds(op: str, value: Any, other: Any) -> bool:
    """`value op other` for present values, a missing one equalling nothing."""
    if value is None or other is None:
        return op == "!="
    return bool(OPERATORS[op](value, other))


def _operand(expr: Expr, fields: Collection[str]) -> Expr:
    match expr:
        case Number() | Text() | Boolean() | Call(function="date", args=(Text(),)):
            return expr
        case Name(name=name) if name not in fields:
            return expr  # a parameter
    raise FilterError(SHAPE)


def scaled_bounds(op: str, scaled: Decimal) -> tuple[str, int] | bool:
    """`column op scaled` over whole stored units, exactly: the comparison to make with a whole
    number, or True/False when no stored value can be equal (100.00005 is no stored amount)."""
    whole = scaled.to_integral_value()
    if scaled == whole:
        return op, int(whole)
    if op == "==":
        return False
    if op == "!=":
        return True
    below, above = (
        int(scaled.to_integral_value("ROUND_FLOOR")),
        int(scaled.to_integral_value("ROUND_CEILING")),
    )
    return {"<": ("<=", below), "<=": ("<=", below), ">": (">=", above), ">=": (">=", above)}[op]

"""Contract aggregates over outcome events, compiled to SQL so they run inside the database, and
the same semantics in plain Python (the reference the SQL is tested against).

What an aggregate sees, as of a cutoff T and for a period [start, end]:
- events of batches learned on or before T and not retracted on or before T;
- for claim lines, only each claim's final version: a line whose claim another visible line
  replaces or voids (`adjusted_claim_id`) is left out, and so are the voids themselves;
- events that happened in the period: claim lines by `claim_start_date`; eligibility spans,
  attributions and other events with a start and an end by overlap; the rest by their date;
- with `population: attributed`, only people with a visible attribution overlapping the period;
- the `where` filter (comparisons of the event's fields with literals and parameters).
Measures: sum, count, count_distinct, average, min, max of a field, and member_months (months of
eligibility spans inside the period). `per_person_cap` truncates each person's sum at a money
parameter before adding (as MSSP truncates at the 99th percentile).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    case,
    exists,
    extract,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql import Select

from contracts.model import Aggregate
from outcomes.events import EVENT_TYPES, EventType
from outcomes.store import EVENT_TABLES, MONEY_SCALE, SCORE_SCALE, visible_batches
from rules.errors import Problem, RuleError
from rules.syntax import Binary, Boolean, Expr, MemberOf, Name, Number, Text, Unary
from rules.types import MONEY, SCORE
from rules.values import Value

SPANS = {  # event types that last from a start to an end: they count if they overlap the period
    "eligibility": ("enrollment_start_date", "enrollment_end_date"),
    "attribution": ("period_start", "period_end"),
    "quality_result": ("period_start", "period_end"),
    "risk_score": ("period_start", "period_end"),
    "episode": ("window_start", "window_end"),
}


@dataclass(frozen=True, slots=True)
class Window:
    """The period an aggregate covers, and the cutoff of what was known."""

    start: dt.date
    end: dt.date
    as_of: dt.datetime


def compute(
    engine: Engine, aggregate: Aggregate, window: Window, parameters: Mapping[str, Value]
) -> Decimal:
    """The aggregate's value, computed by the database."""
    query = compile_aggregate(aggregate, window, parameters)
    with engine.connect() as connection:
        value = connection.execute(query).scalar()
    return _result(aggregate, value)


def compile_aggregate(
    aggregate: Aggregate, window: Window, parameters: Mapping[str, Value]
) -> Select[Any]:
    """The SQL (SQLAlchemy Core) that computes the aggregate; one statement, one value."""
    _refuse_unsupported(aggregate)
    kind = EVENT_TYPES[aggregate.events]
    table = EVENT_TABLES[kind.name]
    conditions: list[ColumnElement[bool]] = [
        table.c.batch_id.in_(visible_batches(window.as_of)),
        _in_period(kind, table, window),
    ]
    if kind.name == "claim_line":
        conditions += _final_versions(table, window)
    if aggregate.population == "attributed":
        conditions.append(table.c.patient_id.in_(_attributed(window)))
    if aggregate.where is not None:
        conditions.append(_sql_condition(aggregate.where.expr, kind, table, parameters))
    where = and_(*conditions)
    measure = aggregate.measure
    if aggregate.per_person_cap is not None:
        cap = _scaled(MONEY, parameters[aggregate.per_person_cap])
        per_person = (
            select(func.sum(table.c[aggregate.field or ""]).label("total"))
            .where(where)
            .group_by(table.c.patient_id)
            .subquery()
        )
        capped = case((per_person.c.total > cap, cap), else_=per_person.c.total)
        return select(func.coalesce(func.sum(capped), 0))
    if measure == "member_months":
        return select(func.coalesce(func.sum(_months(kind, table, window)), 0)).where(where)
    if measure == "count":
        return select(func.count()).select_from(table).where(where)
    column = table.c[aggregate.field or ""]
    if measure == "count_distinct":
        return select(func.count(column.distinct())).where(where)
    functions: dict[str, Any] = {"sum": func.sum, "min": func.min, "max": func.max,
                                 "average": func.avg}  # fmt: skip
    value = functions[measure](column)
    return select(func.coalesce(value, 0) if measure == "sum" else value).where(where)


def _refuse_unsupported(aggregate: Aggregate) -> None:
    """Say so, rather than compute something else: grouped aggregates (rows per episode or per
    member) and weighted averages are declared and checked, but not computed yet."""
    if aggregate.group_by or aggregate.measure == "weighted_average":
        what = "group_by" if aggregate.group_by else "weighted_average"
        raise RuleError([Problem(f"aggregate {aggregate.events}.{aggregate.measure}",
                                 f"{what} is not computed from events yet; give this input as "
                                 "a value")])  # fmt: skip


def _result(aggregate: Aggregate, value: Any) -> Decimal:
    if value is None:
        raise RuleError([Problem(f"aggregate {aggregate.events}.{aggregate.measure}",
                                 "no events in the period: the value is undefined")])  # fmt: skip
    kind = EVENT_TYPES[aggregate.events]
    field = kind.column(aggregate.field) if aggregate.field else None
    number = Decimal(str(value)) if not isinstance(value, int | Decimal) else Decimal(value)
    if field is not None and aggregate.measure in ("sum", "min", "max", "average"):
        if field.type == MONEY:
            return number / MONEY_SCALE
        if field.type == SCORE:
            return number / SCORE_SCALE
    if aggregate.per_person_cap is not None:
        return number / MONEY_SCALE
    return number


def _in_period(kind: EventType, table: Any, window: Window) -> ColumnElement[bool]:
    if kind.name in SPANS:
        first, last = SPANS[kind.name]
        return and_(table.c[first] <= window.end, table.c[last] >= window.start)
    happened = table.c[kind.occurred]
    return and_(happened >= window.start, happened <= window.end)


def _final_versions(table: Any, window: Window) -> list[ColumnElement[bool]]:
    later = table.alias("adjusting")
    superseded = exists().where(
        later.c.adjusted_claim_id == table.c.claim_id,
        later.c.claim_status.in_(("replacement", "void")),
        later.c.batch_id.in_(visible_batches(window.as_of)),
    )
    is_void = table.c.claim_status == "void"
    return [~superseded, or_(table.c.claim_status.is_(None), not_(is_void))]


def _attributed(window: Window) -> Select[Any]:
    attribution = EVENT_TABLES["attribution"]
    return select(attribution.c.patient_id).where(
        attribution.c.batch_id.in_(visible_batches(window.as_of)),
        attribution.c.period_start <= window.end,
        attribution.c.period_end >= window.start,
    )


def _months(kind: EventType, table: Any, window: Window) -> ColumnElement[Any]:
    """Months of each span inside the period: (last month - first month + 1), both clipped."""
    first, last = SPANS[kind.name]
    start = case((table.c[first] > window.start, table.c[first]), else_=window.start)
    end = case((table.c[last] < window.end, table.c[last]), else_=window.end)
    return (
        (extract("year", end) * 12 + extract("month", end))
        - (extract("year", start) * 12 + extract("month", start))
        + 1
    )


def _scaled(kind: object, value: Any) -> Any:
    if kind == MONEY:
        return int(Decimal(value) * MONEY_SCALE)
    if kind == SCORE:
        return int(Decimal(value) * SCORE_SCALE)
    return value


def _sql_condition(
    expr: Expr, kind: EventType, table: Any, parameters: Mapping[str, Value]
) -> ColumnElement[bool]:
    """A `where` expression as SQL: comparisons of a field with literals or parameters, joined
    by and/or/not, and `in`. Money and score literals are scaled like the stored columns."""
    match expr:
        case Boolean(value=flag):
            return true() if flag else false()
        case Unary(op="not", operand=operand):
            return not_(_sql_condition(operand, kind, table, parameters))
        case Binary(op="and" | "or", left=left, right=right):
            join = and_ if expr.op == "and" else or_
            return join(_sql_condition(left, kind, table, parameters),
                        _sql_condition(right, kind, table, parameters))  # fmt: skip
        case Binary(op=op, left=Name(name=field), right=right) if kind.column(field):
            column = kind.column(field)
            assert column is not None
            value = _sql_value(right, column.type, parameters)
            compared: ColumnElement[bool] = _COMPARE[op](table.c[field], value)
            return compared
        case MemberOf(operand=Name(name=field), options=options) if kind.column(field):
            column = kind.column(field)
            assert column is not None
            listed: ColumnElement[bool] = table.c[field].in_(
                [_sql_value(o, column.type, parameters) for o in options]
            )
            return listed
    raise RuleError([Problem("where", _FILTER_SHAPE)])


def _sql_value(expr: Expr, kind: object, parameters: Mapping[str, Value]) -> Any:
    if isinstance(expr, Number):
        return literal(_scaled(kind, expr.value))
    if isinstance(expr, Text):
        return literal(expr.value)
    if isinstance(expr, Name) and expr.name in parameters:
        return literal(_scaled(kind, parameters[expr.name]))
    raise RuleError([Problem("where", "compare a field with a literal or a parameter")])


_FILTER_SHAPE = ("a filter compares an event field with literals or parameters (field == value, "
                 "field in (…)), joined by and/or/not")  # fmt: skip
_COMPARE = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}  # fmt: skip


# The reference: the same semantics over plain rows -------------------------------------------


@dataclass(frozen=True, slots=True)
class Known:
    """A batch as the reference sees it: its events, when it was learned and retracted."""

    event_type: str
    learned_at: dt.datetime
    retracted_at: dt.datetime | None
    rows: Sequence[Mapping[str, Any]]  # typed values (Decimal money, dates)


def reference(
    aggregate: Aggregate, window: Window, parameters: Mapping[str, Value], batches: Iterable[Known]
) -> Decimal:
    """What `compute` must return, computed without a database."""
    _refuse_unsupported(aggregate)
    batches = list(batches)
    visible = [b for b in batches if b.learned_at <= window.as_of
               and (b.retracted_at is None or b.retracted_at > window.as_of)]  # fmt: skip
    rows = [r for b in visible if b.event_type == aggregate.events for r in b.rows]
    kind = EVENT_TYPES[aggregate.events]
    rows = [r for r in rows if _happened_in(kind, r, window)]
    if kind.name == "claim_line":
        superseded = {r["adjusted_claim_id"] for r in rows_of(visible, "claim_line")
                      if r.get("claim_status") in ("replacement", "void")}  # fmt: skip
        rows = [r for r in rows if r["claim_id"] not in superseded
                and r.get("claim_status") != "void"]  # fmt: skip
    if aggregate.population == "attributed":
        people = {r["patient_id"] for r in rows_of(visible, "attribution")
                  if _happened_in(EVENT_TYPES["attribution"], r, window)}  # fmt: skip
        rows = [r for r in rows if r["patient_id"] in people]
    if aggregate.where is not None:
        rows = [r for r in rows if _holds(aggregate.where.expr, r, parameters)]
    field = aggregate.field
    if aggregate.per_person_cap is not None:
        cap = Decimal(parameters[aggregate.per_person_cap])  # type: ignore[arg-type]
        totals: dict[Any, Decimal] = defaultdict(Decimal)
        for r in rows:
            totals[r["patient_id"]] += r[field or ""] or 0
        return sum((min(t, cap) for t in totals.values()), Decimal(0))
    measure = aggregate.measure
    if measure == "member_months":
        return Decimal(sum(_span_months(kind, r, window) for r in rows))
    if measure == "count":
        return Decimal(len(rows))
    values = [r[field or ""] for r in rows if r.get(field or "") is not None]
    if measure == "count_distinct":
        return Decimal(len(set(values)))
    if measure == "sum":
        return sum((Decimal(v) for v in values), Decimal(0))
    if not values:
        raise RuleError([Problem(f"aggregate {aggregate.events}.{measure}",
                                 "no events in the period: the value is undefined")])  # fmt: skip
    if measure == "min":
        return Decimal(min(values))
    if measure == "max":
        return Decimal(max(values))
    return sum((Decimal(v) for v in values), Decimal(0)) / len(values)


def rows_of(batches: Iterable[Known], event_type: str) -> list[Mapping[str, Any]]:
    return [r for b in batches if b.event_type == event_type for r in b.rows]


def _happened_in(kind: EventType, row: Mapping[str, Any], window: Window) -> bool:
    if kind.name in SPANS:
        first, last = SPANS[kind.name]
        return bool(row[first] <= window.end and row[last] >= window.start)
    happened = row.get(kind.occurred)
    return happened is not None and window.start <= happened <= window.end


def _span_months(kind: EventType, row: Mapping[str, Any], window: Window) -> int:
    first, last = SPANS[kind.name]
    start: dt.date = max(row[first], window.start)
    end: dt.date = min(row[last], window.end)
    return (end.year * 12 + end.month) - (start.year * 12 + start.month) + 1


def _holds(expr: Expr, row: Mapping[str, Any], parameters: Mapping[str, Value]) -> bool:
    match expr:
        case Boolean(value=flag):
            return flag
        case Unary(op="not", operand=operand):
            return not _holds(operand, row, parameters)
        case Binary(op="and", left=left, right=right):
            return _holds(left, row, parameters) and _holds(right, row, parameters)
        case Binary(op="or", left=left, right=right):
            return _holds(left, row, parameters) or _holds(right, row, parameters)
        case Binary(op=op, left=Name(name=field), right=right):
            value = row.get(field)
            other = _plain(right, parameters)
            if value is None:
                return False  # SQL: a comparison with NULL is not true
            return bool(_COMPARE[op](value, other))
        case MemberOf(operand=Name(name=field), options=options):
            value = row.get(field)
            return value is not None and value in [_plain(o, parameters) for o in options]
    raise RuleError([Problem("where", "unsupported filter")])


def _plain(expr: Expr, parameters: Mapping[str, Value]) -> Any:
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, Text):
        return expr.value
    assert isinstance(expr, Name)
    return parameters[expr.name]

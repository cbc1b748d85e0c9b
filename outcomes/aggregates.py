"""Contract aggregates over outcome events, compiled to SQL so they run inside the database, and
the same semantics in plain Python (the reference the SQL is tested against).

What an aggregate sees, as of a cutoff T and for a period [start, end]:
- events of batches learned on or before T and not retracted on or before T;
- for claim lines, only each claim's final version: a line whose claim another visible line
  replaces or voids (`adjusted_claim_id`) is left out, and so are the voids themselves;
- events that happened in the period: claim lines by `claim_start_date`; eligibility spans,
  attributions, quality results and risk scores by overlap; episodes by the day they end
  (`window_end`, as CJR and BPCI Advanced reconcile the episodes ending in a year); the rest by
  their date;
- with `population: attributed`, only people with a visible attribution overlapping the period
  that names the contract settled, or no contract (one program's attributions);
- the `where` filter (comparisons of the event's fields with literals and parameters).

Measures: sum, count, count_distinct, average, min, max of a field; `value`, the field of the one
event that matches (a quality score lookup: none or several is an error); weighted_average of a
field weighted by another field or by each person's eligible months (`weight_by:
member_months`, within the event's own span and the period); and member_months (months of
eligibility spans inside the period). Averages are divided in Decimal, to 34 significant digits
(the evaluator's precision), never in the database's floating point.

`per_person_cap` truncates each person's sum at a money parameter before adding (as MSSP truncates
at the 99th percentile). `within: episode` sums the claim lines of each episode's person from its
window start to its window end (episodes with no claims count, at zero), each episode capped at
`per_episode_cap` if given. `group_by` gives rows instead of one number: one per distinct value of
the fields named (event fields; episode fields with `within: episode`), in order, each with the
measure in `value_column`; events whose group fields are empty are not in any row.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.sql import Select

from contracts.model import Aggregate
from outcomes.catalog import WEIGHT_BY_MEMBER_MONTHS
from outcomes.episodes import ANCHOR_FIELDS, EpisodeRule
from outcomes.events import EVENT_TYPES, EventType
from outcomes.filters import (
    OPERATORS,
    Comparison,
    FilterError,
    comparison,
    holds,
    literal_value,
    scaled_bounds,
)
from outcomes.store import EVENT_TABLES, MONEY_SCALE, SCORE_SCALE, from_database, visible_batches
from rules.errors import Problem, RuleError
from rules.syntax import Binary, Boolean, Expr, Unary
from rules.types import MONEY, SCORE
from rules.values import RowSet, Value

SPANS = {  # event types that last from a start to an end: they count if they overlap the period
    "eligibility": ("enrollment_start_date", "enrollment_end_date"),
    "attribution": ("period_start", "period_end"),
    "quality_result": ("period_start", "period_end"),
    "risk_score": ("period_start", "period_end"),
}
EPISODE_WINDOW = ("window_start", "window_end")  # claim lines of an episode: its person, inside
MAX_MONTHS = 1200  # a period of a century at most: member months join a calendar of its months
DIVISION = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN)  # the evaluator's precision


@dataclass(frozen=True, slots=True)
class Window:
    """The period an aggregate covers, and the cutoff of what was known."""

    start: dt.date
    end: dt.date
    as_of: dt.datetime
    contract_id: str | None = None  # attributed: attributions naming this contract, or none


def compute(
    engine: Engine, aggregate: Aggregate, window: Window, parameters: Mapping[str, Value]
) -> Value:
    """The aggregate's value, computed by the database: a number, or rows with `group_by`."""
    query = compile_aggregate(aggregate, window, parameters)
    try:
        with engine.connect() as connection:
            if aggregate.within == "episode":
                _repeated_episodes(connection, aggregate, window)
            found = connection.execute(query).all()
    except (DataError, OperationalError) as error:  # PostgreSQL: out of range; SQLite: overflow
        if "range" not in str(error) and "overflow" not in str(error):
            raise
        raise RuleError([Problem(f"aggregate {aggregate.events}.{aggregate.measure}",
                                 _TOO_LARGE)]) from None  # fmt: skip
    if any(isinstance(cell, float) for row in found for cell in row):  # SQLite left integers
        raise RuleError([Problem(f"aggregate {aggregate.events}.{aggregate.measure}",
                                 _TOO_LARGE)])  # fmt: skip
    if not aggregate.group_by:
        (row,) = found
        return _finished(aggregate, tuple(row))
    width = len(aggregate.group_by)
    groups = sorted(
        (tuple(_group_value(aggregate, name, v) for name, v in zip(aggregate.group_by, row[:width],
                                                                  strict=True)), tuple(row[width:]))
        for row in found
    )  # fmt: skip
    return _rows(aggregate, [(g, _finished(aggregate, parts)) for g, parts in groups])


def input_value(value: Value) -> Any:
    """An aggregate's value as an input is written in a document: numbers and dates as text,
    rows as a list of objects."""
    if isinstance(value, RowSet):
        return [{name: input_value(cell) for name, cell in row} for row in value.rows]
    if isinstance(value, dt.date):
        return value.isoformat()
    return format(value, "f") if isinstance(value, Decimal) else value


def compile_aggregate(
    aggregate: Aggregate, window: Window, parameters: Mapping[str, Value]
) -> Select[Any]:
    """The SQL (SQLAlchemy Core) that computes the aggregate: one row of the measure's parts, or
    one row per group (the group's fields, then the parts). Python divides and scales them."""
    if aggregate.within == "episode":
        return _within_episodes(aggregate, window, parameters)
    kind = EVENT_TYPES[aggregate.events]
    table = EVENT_TABLES[kind.name]
    where = _event_conditions(aggregate, kind, table, window, parameters)
    groups = [table.c[name] for name in aggregate.group_by]
    if aggregate.per_person_cap is not None:
        cap = _scaled_cap(aggregate, aggregate.per_person_cap, parameters)
        per_person = (
            select(func.sum(table.c[aggregate.field or ""]).label("total"))
            .where(where)
            .group_by(table.c.patient_id)
            .subquery()
        )
        capped = case((per_person.c.total > cap, cap), else_=per_person.c.total)
        return select(func.coalesce(func.sum(capped), 0))
    if aggregate.measure == "member_months":
        return _member_months(table, where, groups, window)
    parts = _parts(aggregate, kind, table, window)
    if not groups:
        return select(*parts).select_from(table).where(where)
    present = [g.is_not(None) for g in groups]
    return select(*groups, *parts).where(where, *present).group_by(*groups)


def _event_conditions(
    aggregate: Aggregate,
    kind: EventType,
    table: Any,
    window: Window,
    parameters: Mapping[str, Value],
    *,
    in_period: bool = True,
) -> ColumnElement[bool]:
    """Which events of `table` the aggregate sees: visible, final versions, in the period (unless
    an episode's window says instead), of the population, passing `where`."""
    conditions: list[ColumnElement[bool]] = [table.c.batch_id.in_(visible_batches(window.as_of))]
    if in_period:
        conditions.append(_in_period(kind, table, window))
    if kind.name == "claim_line":
        conditions += _final_versions(table, window)
    if aggregate.population == "attributed" and aggregate.within is None:
        conditions.append(table.c.patient_id.in_(_attributed(window)))
    if aggregate.where is not None:
        conditions.append(_sql_condition(aggregate.where.expr, kind, table, parameters))
    return and_(*conditions)


def _parts(aggregate: Aggregate, kind: EventType, table: Any, window: Window) -> list[Any]:
    """The sums and counts the measure is finished from, as SQL expressions."""
    measure = aggregate.measure
    if measure == "count":
        return [func.count()]
    column = table.c[aggregate.field or ""]
    if measure == "count_distinct":
        return [func.count(column.distinct())]
    if measure == "sum":
        return [func.coalesce(func.sum(column), 0)]
    if measure == "average":
        return [func.sum(column), func.count(column)]
    if measure == "weighted_average":
        weight = _weight(aggregate, kind, table, window)
        return [func.sum(column * weight), func.sum(case((column.is_not(None), weight)))]
    if measure == "value":
        return [func.count(column), func.min(column), func.max(column)]
    extreme = func.min if measure == "min" else func.max
    return [extreme(column)]


def _weight(aggregate: Aggregate, kind: EventType, table: Any, window: Window) -> Any:
    """Each event's weight: a field of its own, or the distinct months its person was eligible
    inside both the event's span and the period."""
    if aggregate.weight_by != WEIGHT_BY_MEMBER_MONTHS:
        return table.c[aggregate.weight_by or ""]
    first, last = SPANS[kind.name]
    spans = EVENT_TABLES["eligibility"].alias("eligible")
    calendar = _calendar(window).subquery("calendar")
    lo = _later(table.c[first], literal(window.start))
    hi = _earlier(table.c[last], literal(window.end))
    return (
        select(func.count(calendar.c.month_start.distinct()))
        .select_from(spans)
        .join(calendar, _eligible_in(spans, calendar, lo, hi))
        .where(
            spans.c.patient_id == table.c.patient_id,
            spans.c.batch_id.in_(visible_batches(window.as_of)),
        )
        .scalar_subquery()
    )


def _member_months(
    table: Any, where: ColumnElement[bool], groups: Sequence[Any], window: Window
) -> Select[Any]:
    """Tuva's member months: one per person, month, payer and plan with an eligibility span in
    that month (inside the period); overlapping spans count a month once."""
    calendar = _calendar(window).subquery("calendar")
    lo, hi = literal(window.start), literal(window.end)
    months = (
        select(*groups, table.c.patient_id, table.c.payer, table.c.plan, calendar.c.month_start)
        .distinct()
        .select_from(table)
        .join(calendar, _eligible_in(table, calendar, lo, hi))
        .where(where, *(g.is_not(None) for g in groups))
        .subquery("months")
    )
    outer_groups = [months.c[g.name] for g in groups]
    return select(*outer_groups, func.count()).select_from(months).group_by(*outer_groups)


def _eligible_in(spans: Any, calendar: Any, lo: Any, hi: Any) -> ColumnElement[bool]:
    """A calendar month in which an eligibility span is in force within [lo, hi]."""
    start = _later(spans.c.enrollment_start_date, lo)
    end = _earlier(spans.c.enrollment_end_date, hi)
    return and_(start <= end, calendar.c.month_start <= end, calendar.c.month_end >= start)


def _calendar(window: Window) -> Any:
    """The months the period touches, (first day, last day) each, as a small union of rows."""
    rows = [select(literal(first).label("month_start"), literal(last).label("month_end"))
            for first, last in months_between(window.start, window.end)]  # fmt: skip
    return rows[0] if len(rows) == 1 else union_all(*rows)


def months_between(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """The calendar months from `start`'s to `end`'s, each as its first and last day."""
    if (end.year - start.year) * 12 + end.month - start.month > MAX_MONTHS:
        raise RuleError([Problem("period", f"a period of more than {MAX_MONTHS} months")])
    months = []
    first = start.replace(day=1)
    while first <= end:
        following = (first.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        months.append((first, following - dt.timedelta(days=1)))
        first = following
    return months


def _within_episodes(
    aggregate: Aggregate, window: Window, parameters: Mapping[str, Value]
) -> Select[Any]:
    """Claim lines summed per episode (its person, inside its window; an episode without claims
    sums to zero), each episode capped, then added up, or per group of episode fields."""
    episodes = EVENT_TABLES["episode"]
    claims = EVENT_TABLES["claim_line"]
    first, last = EPISODE_WINDOW
    joined = and_(
        claims.c.patient_id == episodes.c.patient_id,
        claims.c.claim_start_date >= episodes.c[first],
        claims.c.claim_start_date <= episodes.c[last],
        _event_conditions(aggregate, EVENT_TYPES["claim_line"], claims, window, parameters,
                          in_period=False),
    )  # fmt: skip
    chosen = _episodes_chosen(aggregate, window)
    if aggregate.population == "attributed":
        chosen.append(episodes.c.patient_id.in_(_attributed(window)))
    groups = [episodes.c[name] for name in aggregate.group_by]
    chosen += [g.is_not(None) for g in groups]
    keys = [episodes.c.batch_id, episodes.c.episode_id]
    per_episode = (
        select(*groups, func.coalesce(func.sum(claims.c[aggregate.field or ""]), 0).label("total"))
        .select_from(episodes.outerjoin(claims, joined))
        .where(*chosen)
        .group_by(*keys, *groups)
        .subquery("per_episode")
    )
    total: Any = per_episode.c.total
    if aggregate.per_episode_cap is not None:
        cap = _scaled_cap(aggregate, aggregate.per_episode_cap, parameters)
        total = case((total > cap, cap), else_=total)
    outer_groups = [per_episode.c[name] for name in aggregate.group_by]
    query = select(*outer_groups, func.coalesce(func.sum(total), 0))
    return query.group_by(*outer_groups) if outer_groups else query


def _episodes_chosen(aggregate: Aggregate, window: Window) -> list[ColumnElement[bool]]:
    """The episodes an aggregate within episodes reconciles: visible, ending in the period, of
    its rule if it names one."""
    episodes = EVENT_TABLES["episode"]
    chosen = [episodes.c.batch_id.in_(visible_batches(window.as_of)),
              _in_period(EVENT_TYPES["episode"], episodes, window)]  # fmt: skip
    if aggregate.episode_rule is not None:
        chosen.append(episodes.c.rule == aggregate.episode_rule)
    return chosen


def _repeated_episodes(connection: Connection, aggregate: Aggregate, window: Window) -> None:
    """Refuse to count an episode twice: an id in two visible batches (loaded twice under other
    content, or rebuilt without superseding) must be resolved by retracting one."""
    episodes = EVENT_TABLES["episode"]
    repeated = connection.execute(
        select(episodes.c.episode_id, func.count())
        .where(*_episodes_chosen(aggregate, window))
        .group_by(episodes.c.episode_id)
        .having(func.count() > 1)
        .order_by(episodes.c.episode_id)
        .limit(5)
    ).all()
    if repeated:
        raise RuleError([_repeated_problem(aggregate, [(e, n) for e, n in repeated])])


def _repeated_problem(aggregate: Aggregate, repeated: Sequence[tuple[str, int]]) -> Problem:
    shown = ", ".join(f"{episode} ({count} batches)" for episode, count in repeated)
    why = f"episodes in more than one visible batch: {shown}; retract all but one"
    return Problem(f"aggregate {aggregate.events}.{aggregate.measure}", why)


def anchor_lines(engine: Engine, rule: EpisodeRule, as_of: dt.datetime) -> list[dict[str, Any]]:
    """The final versions, as of the cutoff, of the claim lines that may anchor the rule's
    episodes (the builder in outcomes.episodes applies the rest of the rule)."""
    table = EVENT_TABLES["claim_line"]
    window = Window(dt.date.min, dt.date.max, as_of)
    query = select(*(table.c[name] for name in ANCHOR_FIELDS)).where(
        table.c.batch_id.in_(visible_batches(as_of)),
        table.c.ms_drg_code.in_(sorted(rule.ms_drgs)),
        table.c.claim_type == "institutional",
        *_final_versions(table, window),
    )
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(query)]


def _finished(aggregate: Aggregate, parts: tuple[Any, ...]) -> Decimal:
    """The measure's value from its parts, scaled back from the stored integers."""
    measure = aggregate.measure
    label = f"aggregate {aggregate.events}.{measure}"
    scale = _field_scale(aggregate)
    if aggregate.per_person_cap is not None or aggregate.within is not None:
        return Decimal(parts[0]) / MONEY_SCALE
    if measure in ("count", "count_distinct", "member_months"):
        return Decimal(parts[0])
    if measure == "sum":
        return Decimal(parts[0]) / scale
    if measure == "value":
        count, low, high = parts
        if count != 1 or low != high:
            raise RuleError([Problem(label, _lookup_problem(aggregate, count))])
        return Decimal(low) / scale
    if measure in ("average", "weighted_average"):
        numerator, denominator = parts
        if numerator is None or not denominator:
            raise RuleError([Problem(label, _UNDEFINED)])
        return DIVISION.divide(Decimal(numerator) / scale, Decimal(denominator))
    if parts[0] is None:
        raise RuleError([Problem(label, _UNDEFINED)])
    return Decimal(parts[0]) / scale


_UNDEFINED = "no events in the period: the value is undefined"
_TOO_LARGE = "the sums are too large to compute exactly in 64-bit integers"


def _lookup_problem(aggregate: Aggregate, count: int) -> str:
    what = f"{aggregate.events} events" + (f" where {aggregate.where.source}" if aggregate.where
                                           else "")  # fmt: skip
    if count == 0:
        return f"no {what} with a {aggregate.field} in the period: a value lookup needs exactly one"
    return f"{count} {what} in the period: a value lookup needs exactly one"


def _field_scale(aggregate: Aggregate) -> Decimal:
    """What the measured field's stored integers are divided by (1 for counts)."""
    field = EVENT_TYPES[aggregate.events].column(aggregate.field or "")
    if field is None:
        return Decimal(1)
    scales = {MONEY: MONEY_SCALE, SCORE: SCORE_SCALE}
    return scales.get(field.type, Decimal(1))


def _group_value(aggregate: Aggregate, name: str, stored: Any) -> Value:
    kind = EVENT_TYPES["episode" if aggregate.within else aggregate.events]
    column = kind.column(name)
    assert column is not None
    value = from_database(column.type, stored)
    return Decimal(value) if isinstance(value, int) else value


def _rows(aggregate: Aggregate, groups: Sequence[tuple[tuple[Value, ...], Value]]) -> RowSet:
    names = (*aggregate.group_by, aggregate.value_column or "value")
    return RowSet(tuple(tuple(zip(names, (*g, v), strict=True)) for g, v in groups))


def _in_period(kind: EventType, table: Any, window: Window) -> ColumnElement[bool]:
    if kind.name in SPANS:
        first, last = SPANS[kind.name]
        return and_(table.c[first] <= window.end, table.c[last] >= window.start)
    happened = table.c[kind.occurred]
    return and_(happened >= window.start, happened <= window.end)


def _final_versions(table: Any, window: Window) -> list[ColumnElement[bool]]:
    # Correlated on purpose: SQLite answers it with one probe of ix_events_claim_line_adjusted_
    # claim_id a line (without that index, a scan of every visible line a line: quadratic), and
    # PostgreSQL plans it as a hash anti join. NOT IN would be as fast on SQLite, but PostgreSQL
    # runs it as a hashed subplan that every parallel worker builds again, and as a plain one
    # (quadratic) once the adjusted claims outgrow work_mem.
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
    query = select(attribution.c.patient_id).where(
        attribution.c.batch_id.in_(visible_batches(window.as_of)),
        attribution.c.period_start <= window.end,
        attribution.c.period_end >= window.start,
    )
    if window.contract_id is not None:
        named = attribution.c.contract_id
        query = query.where(or_(named.is_(None), named == window.contract_id))
    return query


def _later(a: Any, b: Any) -> Any:
    return case((a > b, a), else_=b)


def _earlier(a: Any, b: Any) -> Any:
    return case((a < b, a), else_=b)


def _scaled_cap(aggregate: Aggregate, name: str, parameters: Mapping[str, Value]) -> int:
    """A money cap in stored units; a cap finer than the stored unit is refused, not cut."""
    label = f"aggregate {aggregate.events}.{aggregate.measure}"
    if name not in parameters:
        raise RuleError([Problem(label, f"parameter '{name}' has no value in this period")])
    scaled = Decimal(parameters[name]) * MONEY_SCALE  # type: ignore[arg-type]
    if scaled != scaled.to_integral_value():
        why = f"the cap {name} = {parameters[name]} has more than 4 decimal places (as amounts)"
        raise RuleError([Problem(label, why)])
    return int(scaled)


def _sql_condition(
    expr: Expr, kind: EventType, table: Any, parameters: Mapping[str, Value]
) -> ColumnElement[bool]:
    """A `where` expression as SQL, two-valued: a missing field equals nothing (see
    outcomes.filters), so `not` means what it says. Money and score values are compared with
    the stored whole units exactly."""
    match expr:
        case Boolean(value=flag):
            return true() if flag else false()
        case Unary(op="not", operand=operand):
            return not_(_sql_condition(operand, kind, table, parameters))
        case Binary(op="and" | "or", left=left, right=right):
            join = and_ if expr.op == "and" else or_
            return join(_sql_condition(left, kind, table, parameters),
                        _sql_condition(right, kind, table, parameters))  # fmt: skip
    try:
        found = comparison(expr, kind.fields)
        assert found is not None
        return _sql_comparison(found, kind, table, parameters)
    except FilterError as error:
        raise RuleError([Problem("where", str(error))]) from None


def _sql_comparison(
    found: Comparison, kind: EventType, table: Any, parameters: Mapping[str, Value]
) -> ColumnElement[bool]:
    column = table.c[found.field]
    if found.other is not None:
        other = table.c[found.other]
        present = and_(column.is_not(None), other.is_not(None))
        compared = OPERATORS[found.op](column, other)
        return or_(~present, compared) if found.op == "!=" else and_(present, compared)
    scale = _scale_of(kind.fields[found.field])
    if found.op == "in":
        wanted = [literal_value(v, parameters) for v in found.values]
        if scale is not None:  # a value finer than the stored unit equals no stored value
            wanted = [int(w * scale) for w in wanted if w * scale == int(w * scale)]
        return and_(column.is_not(None), column.in_(wanted)) if wanted else false()
    assert found.value is not None
    op, bound = found.op, literal_value(found.value, parameters)
    if scale is not None:
        exact = scaled_bounds(found.op, Decimal(bound) * scale)
        if isinstance(exact, bool):  # no stored amount can equal a finer value
            return true() if exact else false()
        op, bound = exact
    compared = OPERATORS[op](column, literal(bound))
    return or_(column.is_(None), compared) if op == "!=" else and_(column.is_not(None), compared)


def _scale_of(kind: object) -> Decimal | None:
    if kind == MONEY:
        return MONEY_SCALE
    return SCORE_SCALE if kind == SCORE else None


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
) -> Value:
    """What `compute` must return, computed without a database."""
    batches = list(batches)
    visible = [b for b in batches if b.learned_at <= window.as_of
               and (b.retracted_at is None or b.retracted_at > window.as_of)]  # fmt: skip
    kind = EVENT_TYPES[aggregate.events]
    rows = rows_of(visible, aggregate.events)
    if aggregate.within is None:
        rows = [r for r in rows if _happened_in(kind, r, window)]
    if kind.name == "claim_line":
        superseded = {r["adjusted_claim_id"] for r in rows_of(visible, "claim_line")
                      if r.get("claim_status") in ("replacement", "void")}  # fmt: skip
        rows = [r for r in rows if r["claim_id"] not in superseded
                and r.get("claim_status") != "void"]  # fmt: skip
    people = {r["patient_id"] for r in rows_of(visible, "attribution")
              if _happened_in(EVENT_TYPES["attribution"], r, window)
              and (window.contract_id is None
                   or r.get("contract_id") in (None, window.contract_id))}  # fmt: skip
    if aggregate.population == "attributed" and aggregate.within is None:
        rows = [r for r in rows if r["patient_id"] in people]
    if aggregate.where is not None:
        rows = [r for r in rows if _holds(aggregate.where.expr, r, parameters)]
    if aggregate.within == "episode":
        return _reference_episodes(aggregate, window, parameters, visible, rows, people)
    if aggregate.per_person_cap is not None:
        _scaled_cap(aggregate, aggregate.per_person_cap, parameters)  # refused as the SQL does
        cap = Decimal(parameters[aggregate.per_person_cap])  # type: ignore[arg-type]
        totals: dict[Any, Decimal] = defaultdict(Decimal)
        for r in rows:
            totals[r["patient_id"]] += r[aggregate.field or ""] or 0
        return sum((min(t, cap) for t in totals.values()), Decimal(0))
    if not aggregate.group_by:
        return _reference_measure(aggregate, kind, window, visible, rows)
    grouped: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        key = tuple(r.get(name) for name in aggregate.group_by)
        if None not in key and "" not in key:
            grouped[key].append(r)
    return _rows(aggregate, [(tuple(_as_value(v) for v in key),
                              _reference_measure(aggregate, kind, window, visible, members))
                             for key, members in sorted(grouped.items())])  # fmt: skip


def _reference_measure(
    aggregate: Aggregate,
    kind: EventType,
    window: Window,
    visible: Sequence[Known],
    rows: Sequence[Mapping[str, Any]],
) -> Decimal:
    measure = aggregate.measure
    field = aggregate.field or ""
    label = f"aggregate {aggregate.events}.{measure}"
    if measure == "member_months":
        return Decimal(len({(r["patient_id"], r["payer"], r.get("plan"), month) for r in rows
                            for month in _span_months(r, window.start, window.end)}))  # fmt: skip
    if measure == "count":
        return Decimal(len(rows))
    values = [r[field] for r in rows if r.get(field) is not None]
    if measure == "count_distinct":
        return Decimal(len(set(values)))
    if measure == "sum":
        return sum((Decimal(v) for v in values), Decimal(0))
    if measure == "value":
        if len(values) != 1:
            raise RuleError([Problem(label, _lookup_problem(aggregate, len(values)))])
        return Decimal(values[0])
    if measure == "weighted_average":
        weighed = ((r, _reference_weight(aggregate, kind, r, window, visible)) for r in rows)
        pairs = [(Decimal(r[field]), w) for r, w in weighed
                 if r.get(field) is not None and w is not None]  # fmt: skip
        weights = sum((w for _, w in pairs), Decimal(0))
        if not pairs or not weights:
            raise RuleError([Problem(label, _UNDEFINED)])
        return DIVISION.divide(sum((v * w for v, w in pairs), Decimal(0)), weights)
    if not values:
        raise RuleError([Problem(label, _UNDEFINED)])
    if measure == "min":
        return Decimal(min(values))
    if measure == "max":
        return Decimal(max(values))
    return DIVISION.divide(sum((Decimal(v) for v in values), Decimal(0)), Decimal(len(values)))


def _reference_weight(
    aggregate: Aggregate,
    kind: EventType,
    row: Mapping[str, Any],
    window: Window,
    visible: Sequence[Known],
) -> Decimal | None:
    if aggregate.weight_by != WEIGHT_BY_MEMBER_MONTHS:
        weight = row.get(aggregate.weight_by or "")
        return None if weight is None else Decimal(weight)
    first, last = SPANS[kind.name]
    lo, hi = max(row[first], window.start), min(row[last], window.end)
    return Decimal(len({month for e in rows_of(visible, "eligibility")
                        if e["patient_id"] == row["patient_id"]
                        for month in _span_months(e, lo, hi)}))  # fmt: skip


def _reference_episodes(
    aggregate: Aggregate,
    window: Window,
    parameters: Mapping[str, Value],
    visible: Sequence[Known],
    lines: Sequence[Mapping[str, Any]],
    attributed: set[Any],
) -> Value:
    episodes = [e for e in rows_of(visible, "episode")
                if _happened_in(EVENT_TYPES["episode"], e, window)
                and aggregate.episode_rule in (None, e.get("rule"))
                and (aggregate.population != "attributed" or e["patient_id"] in attributed)
                and all(e.get(name) not in (None, "") for name in aggregate.group_by)]  # fmt: skip
    counted = Counter(e["episode_id"] for e in rows_of(visible, "episode")
                      if _happened_in(EVENT_TYPES["episode"], e, window)
                      and aggregate.episode_rule in (None, e.get("rule")))  # fmt: skip
    repeated = sorted((e, n) for e, n in counted.items() if n > 1)[:5]
    if repeated:
        raise RuleError([_repeated_problem(aggregate, repeated)])
    cap = parameters.get(aggregate.per_episode_cap or "")
    if aggregate.per_episode_cap is not None:
        _scaled_cap(aggregate, aggregate.per_episode_cap, parameters)  # refused as the SQL does
    totals: dict[tuple[Any, ...], Decimal] = defaultdict(Decimal)
    for episode in episodes:
        first, last = EPISODE_WINDOW
        spent = sum((Decimal(line[aggregate.field or ""] or 0) for line in lines
                     if line["patient_id"] == episode["patient_id"]
                     and line.get("claim_start_date") is not None
                     and episode[first] <= line["claim_start_date"] <= episode[last]),
                    Decimal(0))  # fmt: skip
        if isinstance(cap, Decimal):
            spent = min(spent, cap)
        totals[tuple(episode[name] for name in aggregate.group_by)] += spent
    if not aggregate.group_by:
        return totals.get((), Decimal(0))
    return _rows(aggregate, [(tuple(_as_value(v) for v in key), total)
                             for key, total in sorted(totals.items())])  # fmt: skip


def _as_value(value: Any) -> Value:
    return Decimal(value) if isinstance(value, int) else value


def rows_of(batches: Iterable[Known], event_type: str) -> list[Mapping[str, Any]]:
    return [r for b in batches if b.event_type == event_type for r in b.rows]


def _happened_in(kind: EventType, row: Mapping[str, Any], window: Window) -> bool:
    if kind.name in SPANS:
        first, last = SPANS[kind.name]
        return bool(row[first] <= window.end and row[last] >= window.start)
    happened = row.get(kind.occurred)
    return happened is not None and window.start <= happened <= window.end


def _span_months(span: Mapping[str, Any], start: dt.date, end: dt.date) -> list[dt.date]:
    """The first days of the months in which an eligibility span is in force within [start, end]."""
    lo, hi = max(span["enrollment_start_date"], start), min(span["enrollment_end_date"], end)
    return [first for first, _ in months_between(lo, hi)] if lo <= hi else []


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
    found = comparison(expr, list(row))
    assert found is not None
    value = row.get(found.field)
    if found.op == "in":
        return value is not None and value in [literal_value(v, parameters) for v in found.values]
    if found.other is not None:
        return holds(found.op, value, row.get(found.other))
    assert found.value is not None
    return holds(found.op, value, literal_value(found.value, parameters))

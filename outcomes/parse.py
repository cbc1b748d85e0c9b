"""Typing one raw row of an outcome event: each cell read strictly by its column's type.

Pure. A problem names the file, row, column, value and reason; nothing is guessed (no `1e3`, no
`12.345.6`, no thousands separators, no dates out of range) and nothing is dropped: columns the
event type does not name are kept, as text, in the row's `extra`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from outcomes.events import EventType
from rules.errors import Problem
from rules.types import COUNT, DATE, MONEY, SCORE, TEXT

MAX_TEXT = 200
FIRST_DATE, LAST_DATE = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
_MONEY = re.compile(r"^-?[0-9]{1,15}(\.[0-9]{1,4})?$")
_COUNT = re.compile(r"^[0-9]{1,9}$")
_SCORE = re.compile(r"^-?[0-9]{1,9}(\.[0-9]{1,9})?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")

Cell = str | Decimal | int | dt.date | None


@dataclass(frozen=True, slots=True)
class TypedRow:
    """One event's typed values by column, and the columns the event type does not name."""

    number: int
    values: Mapping[str, Cell]
    extra: Mapping[str, str]


def row_problem(where: str, number: int, column: str | None, value: Any, reason: str) -> Problem:
    """`file:row: column 'x' = 'value': reason` (value cut short)."""
    place = f"{where}:{number}" if number else where
    if column is None:
        return Problem(place, reason)
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:60] + "…"
    return Problem(place, f"column {column} = {shown}: {reason}")


def type_row(
    event_type: EventType, raw: Mapping[str, Any], *, where: str, number: int
) -> tuple[TypedRow | None, list[Problem]]:
    """The row typed by `event_type`, or None and every problem in it."""
    problems: list[Problem] = []
    values: dict[str, Cell] = {}
    for column in event_type.columns:
        text = raw.get(column.name)
        text = None if text is None else str(text).strip()
        if not text:
            if column.required:
                problems.append(row_problem(where, number, column.name, raw.get(column.name),
                                            "is required"))  # fmt: skip
            values[column.name] = None
            continue
        try:
            values[column.name] = _cell(column.type, text, column.allowed)
        except ValueError as error:
            problems.append(row_problem(where, number, column.name, text, str(error)))
    extra = {
        k: str(v) for k, v in raw.items() if event_type.column(k) is None and v not in ("", None)
    }
    if problems:
        return None, problems
    return TypedRow(number, values, extra), []


def _cell(kind: object, text: str, allowed: tuple[str, ...]) -> Cell:
    if kind == MONEY:
        if not _MONEY.match(text):
            raise ValueError("not an amount: digits with at most 4 decimals, no exponent or "
                             "thousands separator")  # fmt: skip
        return Decimal(text)
    if kind == COUNT:
        if not _COUNT.match(text):
            raise ValueError("not a count: a whole number, zero or more")
        return int(text)
    if kind == SCORE:
        if not _SCORE.match(text):
            raise ValueError("not a score: a decimal number")
        return Decimal(text)
    if kind == DATE:
        return _date(text)
    assert kind == TEXT
    if len(text) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    if allowed and text not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return text


def _date(text: str) -> dt.date:
    if not _DATE.match(text):
        raise ValueError("not a date YYYY-MM-DD")
    try:
        date = dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError("not a calendar date") from None
    if not FIRST_DATE <= date <= LAST_DATE:
        raise ValueError(f"outside {FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()}")
    return date

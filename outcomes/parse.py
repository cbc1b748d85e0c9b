"""Typing one raw row of an outcome event: each cell read strictly by its column's type.

Pure. A problem names the file, row, column, value and reason; nothing is guessed (no `1e3`, no
`12.345.6`, no thousands separators, no dates out of range) and nothing is dropped: columns the
event type does not name are kept, as text, in the row's `extra`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache, partial
from itertools import compress
from operator import itemgetter
from typing import Any

from outcomes.events import Column, EventType
from rules.errors import Problem
from rules.types import COUNT, DATE, MONEY, SCORE, TEXT

MAX_TEXT = 200
FIRST_DATE, LAST_DATE = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
# Digits before the point: money and scores are stored as 64-bit integers of their smallest unit
# (ten-thousandths, billionths), so 14 and 9 digits at most (2**63 is about 9.2 * 10**18).
MONEY_DIGITS, SCORE_DIGITS = 14, 9
_MONEY = re.compile(rf"^-?[0-9]{{1,{MONEY_DIGITS}}}(\.[0-9]{{1,4}})?$")
_SCORE = re.compile(rf"^-?[0-9]{{1,{SCORE_DIGITS}}}(\.[0-9]{{1,9}})?$")
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
    cells = tuple(None if value is None else str(value) for value in raw.values())
    return RowTyper(event_type, where=where).type(number, tuple(raw), cells)


class RowTyper:
    """Types the rows of one file. A row comes as its column names and its cells, each text or
    None (what every reader gives); which cell feeds which column is worked out once per tuple of
    names, so the rows of a CSV, which share one, are typed without a dict built per row."""

    def __init__(self, event_type: EventType, *, where: str) -> None:
        self.event_type, self.where = event_type, where
        self._plans: dict[tuple[str, ...], _Plan] = {}

    def type(
        self, number: int, names: tuple[str, ...], cells: Sequence[str | None]
    ) -> tuple[TypedRow | None, list[Problem]]:
        plan = self._plans.get(names) or self._plan(names)
        problems: list[Problem] = []
        values = plan.blank.copy()
        for name, index, required, convert in plan.columns:
            cell = None if index is None else cells[index]
            text = cell.strip() if cell else cell
            if not text:
                if required:
                    problems.append(row_problem(self.where, number, name, cell, "is required"))
                continue
            if convert is _text and len(text) <= MAX_TEXT:  # the commonest cell, without a call
                values[name] = text
                continue
            try:
                values[name] = convert(text)
            except ValueError as error:
                problems.append(row_problem(self.where, number, name, text, str(error)))
        if problems:
            return None, problems
        return TypedRow(number, values, plan.extra(cells)), []

    def _plan(self, names: tuple[str, ...]) -> _Plan:
        if len(self._plans) >= 64:  # rows of JSON each bring their keys: keep the cache small
            self._plans.clear()
        plan = self._plans[names] = _Plan.of(self.event_type, names)
        return plan


@dataclass(frozen=True, slots=True)
class _Plan:
    """For one tuple of column names: each event column's cell index (None: no such column) and
    converter, and where the cells of the columns the event type does not name are. An optional
    column the names lack is left out: it is None in every row and can hold no problem."""

    columns: tuple[tuple[str, int | None, bool, Callable[[str], Cell]], ...]
    blank: dict[str, Cell]  # every event column, None: copied for each row
    extra_names: tuple[str, ...]
    extra_cells: Callable[[Sequence[str | None]], tuple[str | None, ...]]

    @classmethod
    def of(cls, event_type: EventType, names: tuple[str, ...]) -> _Plan:
        index = {name: i for i, name in enumerate(names)}  # a name repeated: the last, as a dict
        columns = tuple((c.name, index.get(c.name), c.required, _converter(c))
                        for c in event_type.columns if c.required or c.name in index)  # fmt: skip
        blank = dict.fromkeys(c.name for c in event_type.columns)
        extra = [i for name, i in index.items() if event_type.column(name) is None]
        return cls(columns, blank, tuple(names[i] for i in extra), _getter(extra))

    def extra(self, cells: Sequence[str | None]) -> dict[str, str]:
        """{column: text} of the cells outside the event type that are neither empty nor None.
        In C calls, not a loop: most cells of a wide file's row are there, and blank."""
        found = self.extra_cells(cells)
        return dict(zip(compress(self.extra_names, found), filter(None, found), strict=True))


def _getter(indices: Sequence[int]) -> Callable[[Sequence[str | None]], tuple[str | None, ...]]:
    """The cells at `indices`, always as a tuple (itemgetter of one index gives the bare cell)."""
    if len(indices) >= 2:
        return itemgetter(*indices)
    return lambda cells: tuple(cells[i] for i in indices)


def _converter(column: Column) -> Callable[[str], Cell]:
    kind = column.type
    if kind == MONEY:
        return _money
    if kind == COUNT:
        return _count
    if kind == SCORE:
        return _score
    if kind == DATE:
        return _date
    assert kind == TEXT
    if column.allowed:
        return partial(_text, allowed=column.allowed)
    return _text


def _text(text: str, allowed: tuple[str, ...] = ()) -> str:
    if len(text) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    if allowed and text not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return text


def _money(text: str) -> Decimal:
    if not _MONEY.match(text):
        raise ValueError(f"not an amount: at most {MONEY_DIGITS} digits and 4 decimals, no "
                         "exponent or thousands separator")  # fmt: skip
    return Decimal(text)


def _count(text: str) -> int:
    # ^[0-9]{1,9}$ without a regex: an ASCII string is all digits 0-9 exactly when isdigit().
    if not (len(text) <= 9 and text.isascii() and text.isdigit()):
        raise ValueError("not a count: a whole number, zero or more")
    return int(text)


def _score(text: str) -> Decimal:
    if not _SCORE.match(text):
        raise ValueError(f"not a score: a decimal number, at most {SCORE_DIGITS} digits and 9 "
                         "decimals")  # fmt: skip
    return Decimal(text)


@lru_cache(maxsize=4096)  # a claims file repeats a few thousand dates; a refused one is not kept
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

"""Typing a chunk of rows a column at a time, straight into the values an events table stores.

Pure, and only a fast path: it vouches for a whole chunk or for none of it. A chunk holding any
cell it cannot vouch for (a problem, or a shape it does not know quickly) gets None, and is typed
row by row by `outcomes.parse`, which words every problem; what it does vouch for it types to
exactly what that path would give. Each check runs over a column at once (one regex over the
column joined, one `map` in C), not a Python call per cell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import compress
from operator import add
from typing import Any

from outcomes.events import Column as EventColumn
from outcomes.events import EventType
from outcomes.parse import MAX_TEXT, _date, _getter
from rules.types import COUNT, DATE, TEXT, Scalar

Cells = Sequence[str | None]
Column = list[Any]  # one column of a chunk, as stored: None where the cell is empty
ColumnTyper = Callable[[list[Any]], Column | None]  # None: a cell it does not vouch for

# An amount of at most 15 digits, times 10**places, is an integer N below 10**15 < 2**50. float()
# of the text is within one part in 2**53 of it, and the product within another, so the product
# is within 0.25 of N and round() gives N exactly. Longer amounts are left to the Decimal path.
_SIGNIFICANT = 15
_COUNT_CELL = "[0-9]{1,9}"
_DATE_CELL = "[0-9]{4}-[0-9]{2}-[0-9]{2}"


def _scaled_cell(places: int) -> str:
    return rf"-?[0-9]{{1,{_SIGNIFICANT - places}}}(?:\.[0-9]{{1,{places}}})?"


def _column_pattern(cell: str, *, required: bool) -> re.Pattern[str]:
    """A whole column joined by newlines: cells of the shape, empty ones too where allowed."""
    one = cell if required else f"(?:{cell})?"
    return re.compile(f"{one}(?:\n{one})*")


def _matches(pattern: re.Pattern[str], cells: list[Any]) -> bool:
    if None in cells:
        return False  # a JSON null: the row typer's
    joined = "\n".join(cells)
    # A cell holding a newline would pass as two cells: the count rules that out.
    return pattern.fullmatch(joined) is not None and joined.count("\n") == len(cells) - 1


def _blank_as_none(cells: list[Any]) -> Column:
    return [cell or None for cell in cells] if "" in cells else cells


def _text(cells: list[Any], *, required: bool, allowed: frozenset[str]) -> Column | None:
    # Already stripped (strip returns the very same string), short enough, of the allowed values.
    if None in cells or max(map(len, cells)) > MAX_TEXT or list(map(str.strip, cells)) != cells:
        return None
    if (required and "" in cells) or (allowed and not set(cells) <= allowed | {""}):
        return None
    return _blank_as_none(cells)


def _scaled(cells: list[Any], *, pattern: re.Pattern[str], scale: float) -> Column | None:
    if not _matches(pattern, cells):
        return None
    if "" in cells:
        return [round(float(cell) * scale) if cell else None for cell in cells]
    return list(map(round, map(scale.__mul__, map(float, cells))))


def _count(cells: list[Any], *, pattern: re.Pattern[str]) -> Column | None:
    if not _matches(pattern, cells):
        return None
    if "" in cells:
        return [int(cell) if cell else None for cell in cells]
    return list(map(int, cells))


def _dates(cells: list[Any], *, pattern: re.Pattern[str]) -> Column | None:
    """Dates stay ISO text (what both databases take), once each distinct one is checked."""
    if not _matches(pattern, cells):
        return None
    try:
        for text in set(cells) - {""}:
            _date(text)
    except ValueError:
        return None
    return _blank_as_none(cells)


class ChunkTyper:
    """Types the chunks of rows that share one tuple of column names, into stored values: each
    event column (money and scores as integers of their `places`, dates as ISO text) and the
    JSON text of the cells outside the event type, as `outcomes.parse` and the store make them."""

    def __init__(
        self, event_type: EventType, names: tuple[str, ...], *, places: Mapping[Scalar, int]
    ) -> None:
        """`places`: the decimal places a type is stored to, as an integer (money, scores)."""
        index = {name: i for i, name in enumerate(names)}
        self.usable = all(c.name in index for c in event_type.columns if c.required)
        present = [c for c in event_type.columns if c.name in index]
        # Every present column's cells of a row in one call, a chunk turned into columns by zip.
        self._cells = _getter([index[c.name] for c in present])
        self._typers: list[ColumnTyper | None] = [
            _typer(c, places) if c.name in index else None for c in event_type.columns
        ]
        extra = sorted(name for name in index if event_type.column(name) is None)
        self._extra_count = len(extra)
        self._extra_names = tuple(extra)
        self._extra_cells = _getter([index[name] for name in extra])
        self._prefixes = tuple(f'{name}":"' for name in extra)
        # Names JSON would escape are encoded, whatever `plain` says.
        self._plain_names = all(json.dumps(name, ensure_ascii=False) == f'"{name}"'
                                and name.isprintable() for name in extra)  # fmt: skip

    def columns(self, rows: Sequence[Cells]) -> list[Column] | None:
        """Every event column of the rows, in the event type's order, or None."""
        if not self.usable:
            return None
        typed: list[Column] = []
        cells = iter(zip(*map(self._cells, rows), strict=True))
        for typer in self._typers:
            if typer is None:
                typed.append([None] * len(rows))  # a column the file does not have
                continue
            stored = typer(list(next(cells)))
            if stored is None:
                return None
            typed.append(stored)
        return typed

    def extras(self, rows: Sequence[Cells], *, plain: bool) -> list[str | None]:
        """Each row's `extra` (see `extra_text`). `plain`: no cell holds a character JSON would
        escape (a quote, a backslash, a control character), so each object is put together as
        text, its keys already in order; else each is encoded."""
        if not self._extra_count:
            return [None] * len(rows)
        found = map(self._extra_cells, rows)
        if not (plain and self._plain_names):
            names = self._extra_names
            return [extra_text(dict(zip(compress(names, cells), filter(None, cells), strict=True)))
                    for cells in found]  # fmt: skip
        prefixes = self._prefixes
        texts: list[str | None] = [
            '{"' + '","'.join(map(add, compress(prefixes, cells), filter(None, cells))) + '"}'
            for cells in found
        ]  # fmt: skip
        blank = '{""}'  # a row without any such cell
        return [None if text == blank else text for text in texts] if blank in texts else texts


# One encoder for every row: json.dumps with options builds a new one per call.
_EXTRA_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def extra_text(extra: Mapping[str, str]) -> str | None:
    """The text of a row's `extra`: compact JSON, keys sorted; None for no cells."""
    if not extra:
        return None
    return _EXTRA_JSON.encode(extra)


def _typer(column: EventColumn, places: Mapping[Scalar, int]) -> ColumnTyper:
    kind, required = column.type, column.required
    if kind in places:
        digits = places[kind]
        pattern = _column_pattern(_scaled_cell(digits), required=required)
        return partial(_scaled, pattern=pattern, scale=float(10**digits))
    if kind == COUNT:
        return partial(_count, pattern=_column_pattern(_COUNT_CELL, required=required))
    if kind == DATE:
        return partial(_dates, pattern=_column_pattern(_DATE_CELL, required=required))
    assert kind == TEXT
    return partial(_text, required=required, allowed=frozenset(column.allowed))

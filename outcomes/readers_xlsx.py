"""Reading outcome events from an Excel workbook (.xlsx), streaming: one sheet, its first row the
header (Tuva column names, or a mapping), each row as text like every reader.

Nothing here guesses. Excel keeps every number as a binary fraction (an IEEE double), so a number
cell is taken only where one decimal reading is certain (see `_number_text`); amounts typed as
text reach `outcomes.parse` exactly as written.
"""

from __future__ import annotations

import datetime as dt
import math
import zipfile
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.cell.cell import ERROR_CODES
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from outcomes.events import EventType
from outcomes.parse import row_problem
from rules.errors import Problem, RuleError
from rules.types import SCORE

MAX_PROBLEMS = 100  # per file: past this, reading stops and these are reported
SIGNIFICANT_DIGITS = 15  # what a double holds faithfully, and what Excel keeps of a typed number
DECIMAL_PLACES = 4  # a number cell's decimals at most, as parse allows an amount
DECIMAL_PLACES_OF = {SCORE: 9}  # as parse allows a score


class _Unreadable(ValueError):
    """A cell whose value cannot be read as text without guessing."""


def read_xlsx(
    path: Path, event_type: EventType, mapping: Mapping[str, str]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of the sheet named like the event type (any case), else of the first sheet,
    numbered as Excel numbers them; empty rows are skipped."""
    # Imported here: outcomes.readers imports this module to register it.
    from outcomes.readers import _checked_header

    where = str(path)
    try:
        # data_only: a formula cell gives the value Excel last saved for it, not the formula.
        workbook = load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except (InvalidFileException, zipfile.BadZipFile, KeyError) as error:
        raise RuleError([Problem(where, f"not an Excel workbook (.xlsx): {error}")]) from None
    try:
        own = [s for s in workbook.worksheets if s.title.strip().lower() == event_type.name]
        sheets = own or workbook.worksheets
        if not sheets:
            raise RuleError([Problem(where, "the workbook has no worksheet")])
        rows = sheets[0].iter_rows(min_row=1, values_only=True)
        header = [_header_name(value) for value in next(rows, ())]
        while header and not header[-1]:
            header.pop()  # columns Excel keeps for formatting only
        if not header:
            raise RuleError([row_problem(where, 1, None, None, "the header row is empty")])
        named = [name for name in header if name]
        columns = _checked_header(where, named, event_type, mapping)
        yield from _rows(where, event_type, header, columns, rows)
    finally:
        workbook.close()  # read_only keeps the file open until then


def _rows(
    where: str,
    event_type: EventType,
    header: list[str],
    columns: Mapping[str, str],
    rows: Iterator[tuple[Any, ...]],
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each row as {event column: text}. Cells that cannot be read are problems, raised together
    once the sheet is read (or MAX_PROBLEMS are found), so the batch fails whole."""
    problems: list[Problem] = []
    for number, values in enumerate(rows, start=2):
        if all(value is None or value == "" for value in values):
            continue
        row: dict[str, Any] = {}
        found = len(problems)
        for index, value in enumerate(values):
            name = header[index] if index < len(header) else ""
            column = columns.get(name, name)
            try:
                if name:
                    row[column] = _text(value, _places(event_type, column))
                elif value is not None and value != "":
                    raise _Unreadable("has a value but no header")
            except _Unreadable as error:
                shown = column if name else f"column {get_column_letter(index + 1)}"
                problems.append(row_problem(where, number, None, None, f"{shown} {error}"))
        if len(problems) >= MAX_PROBLEMS:
            stopped = Problem(where, f"stopped reading after {MAX_PROBLEMS} problems")
            raise RuleError([*problems[:MAX_PROBLEMS], stopped])
        if len(problems) == found:
            yield number, row
    if problems:
        raise RuleError(problems)


def _header_name(value: object) -> str:
    return "" if value is None else str(value).strip()


def _places(event_type: EventType, column: str) -> int:
    spec = event_type.column(column)
    return DECIMAL_PLACES_OF.get(spec.type, DECIMAL_PLACES) if spec else DECIMAL_PLACES


def _text(value: object, places: int) -> str:
    """A cell's value as the text a CSV file would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        if value in ERROR_CODES:  # a formula's error as Excel saved it, or typed: no value
            raise _Unreadable(f"holds {value}, an Excel error, not a value")
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value, places)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat()  # parse refuses it in a date column: nothing is cut off
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _number_text(value: float, places: int) -> str:
    """A number cell as a decimal, only when there is no doubt which decimal it is.

    Excel stores 0.1 as the double nearest to 0.1. `repr` gives the shortest decimal that reads
    back as exactly that double; with at most 15 significant digits (what a double, and Excel,
    keep faithfully) it is the only such decimal, so it is the number that was typed. It is taken
    when it has at most `places` decimals. Anything else, such as 1/3 or 0.1 + 0.2 =
    0.30000000000000004, is the residue of binary arithmetic: refused, never rounded.
    """
    if value == 0:
        return "0"  # and -0.0
    if not math.isfinite(value):
        raise _Unreadable(f"holds {value!r}, not a number")
    decimal = Decimal(repr(value)).normalize()
    _, digits, exponent = decimal.as_tuple()
    assert isinstance(exponent, int)  # finite
    if len(digits) > SIGNIFICANT_DIGITS or -exponent > places:
        raise _Unreadable(
            f"holds the number {value!r}, not exactly a decimal with at most {places} decimals "
            f"and {SIGNIFICANT_DIGITS} digits (Excel stores numbers in binary): round it in the "
            "sheet (=ROUND(…, 2)) or store the amount as text"
        )
    return format(decimal, "f")

"""Reading outcome event files as raw rows, streaming: CSV (Tuva column names, or a mapping file
for other layouts) and JSON Lines. Memory stays flat whatever the file's size.

Rows come out as (row number, {event column: text}), or for speed as (row number, column names,
cells) with one tuple of names shared by a CSV's rows; typing them is `outcomes.parse`. A problem
with the file itself (encoding, header, a truncated or oversized row) is reported at its row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import Any

from contracts.document import read_file as read_document
from outcomes.events import EventType
from outcomes.parse import row_problem
from rules.errors import Problem, RuleError

MAX_LINE = 1_000_000  # characters in one row
Reader = Callable[[Path, EventType, Mapping[str, str]], Iterator[tuple[int, dict[str, Any]]]]
EXTRA_READERS: dict[str, Reader] = {}  # more formats register here (FHIR, XLSX)
FORMATS = ("csv", "jsonl")
# Rows read at once: (row numbers, each row's column names, each row's cells).
Chunk = tuple[list[int], list[tuple[str, ...]], Sequence[Sequence[str | None]]]


def format_of(path: Path) -> str:
    if path.name.lower().endswith(".fhir.ndjson"):
        return "fhir.ndjson"
    suffix = path.suffix.lower().lstrip(".")
    return {"ndjson": "jsonl", "tsv": "csv"}.get(suffix, suffix)


def read_mapping(path: str | Path) -> dict[str, str]:
    """A column mapping file (YAML or JSON): {event column: the file's column}."""
    document = read_document(path)
    if not isinstance(document, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in document.items()
    ):
        raise RuleError([Problem(str(path), "a mapping maps event columns to file columns, "
                                 "both as text")])  # fmt: skip
    return dict(document)


# The bytes JSON escapes in a string: a quote, a backslash, the control characters. In UTF-8 they
# stand for those characters alone; line ends are left out, since a CSV's rows end with them.
_ESCAPED = bytes(range(0x20)).replace(b"\n", b"").replace(b"\r", b"") + b'"\\'


def scan(path: Path) -> tuple[str, bool]:
    """The file's SHA-256, and whether it is plain: no byte JSON would escape, but for a CSV's
    delimiter (the cells of such a CSV make JSON text as they are, and no quoting)."""
    digest, plain = hashlib.sha256(), True
    escaped = _ESCAPED.replace(delimiter_of(path).encode(), b"")
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            plain = plain and len(block.translate(None, escaped)) == len(block)
    return digest.hexdigest(), plain


def read_rows(
    path: Path, event_type: EventType, *, mapping: Mapping[str, str] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The file's rows, numbered as a person counts them (the CSV header is row 1)."""
    for chunk in read_chunks(path, event_type, mapping=mapping):
        for number, names, cells in zip(*chunk, strict=True):
            yield number, dict(zip(names, cells, strict=True))


def read_chunks(
    path: Path, event_type: EventType, *, mapping: Mapping[str, str] | None = None, size: int = 500
) -> Iterator[Chunk]:
    """The rows, up to `size` at a time, as (row numbers, each row's column names, each row's
    cells in that order, text or None): what `read_rows` gives, without a dict per row. The rows
    of a CSV share one tuple of names, and are read a chunk at a time by the csv module."""
    kind = format_of(path)
    if kind == "csv":
        yield from _csv_chunks(path, event_type, mapping or {}, size)
        return
    if kind == "jsonl":
        rows = _jsonl_rows(path, mapping or {})
    elif kind in EXTRA_READERS:
        rows = EXTRA_READERS[kind](path, event_type, mapping or {})
    else:
        known = ", ".join(f".{f}" for f in (*FORMATS, *EXTRA_READERS))
        message = f"unknown file format '.{kind}'; Settle reads {known}"
        raise RuleError([Problem(str(path), message)])
    # Text or None already; str() holds any reader to it.
    cells = ((n, tuple(row), tuple(None if v is None else str(v) for v in row.values()))
             for n, row in rows)  # fmt: skip
    while some := list(islice(cells, size)):
        numbers, names, values = zip(*some, strict=True)
        yield list(numbers), list(names), list(values)


def _csv_chunks(
    path: Path, event_type: EventType, mapping: Mapping[str, str], size: int
) -> Iterator[Chunk]:
    """Each chunk is read by the csv module in C, its rows numbered from the header's 1 (a blank
    line counts, as in an editor); a problem reading it is named by `_first_fault`."""
    where = str(path)
    csv.field_size_limit(MAX_LINE)
    with path.open("rb") as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")
        reader = csv.reader(text, strict=True, delimiter=delimiter_of(path))
        try:
            header = next(reader, None)
            if header is None:
                raise _fault(where, 0, "the file is empty")
            names = _event_names(where, header, event_type, mapping)
            width, first = len(header), 2
            while rows := list(islice(reader, size)):
                numbers, first = list(range(first, first + len(rows))), first + len(rows)
                if not min(map(len, rows)) == max(map(len, rows)) == width:
                    numbers, rows = _whole_rows(where, width, numbers, rows)
                yield numbers, [names] * len(rows), rows
        except (UnicodeDecodeError, csv.Error) as error:
            raise _first_fault(path, error) from None


def checked_names(
    path: Path, event_type: EventType, mapping: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The CSV header's column names as the event type knows them (mapped), once checked: every
    required column there, none repeated. A problem reading it is an exception, unworded."""
    with path.open("r", encoding="utf-8-sig", errors="strict", newline="") as text:
        csv.field_size_limit(MAX_LINE)
        header = next(csv.reader(text, strict=True, delimiter=delimiter_of(path)), None)
    if header is None:
        raise _fault(str(path), 0, "the file is empty")
    return _event_names(str(path), header, event_type, mapping or {})


def _event_names(
    where: str, header: list[str], event_type: EventType, mapping: Mapping[str, str]
) -> tuple[str, ...]:
    columns = _checked_header(where, header, event_type, mapping)
    return tuple(columns.get(name, name) for name in header)


def delimiter_of(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _first_fault(path: Path, error: UnicodeDecodeError | csv.Error) -> RuleError:
    """The file's first problem, at its row. The csv module reads ahead (a chunk at a time, the
    text decoded a block at a time), so `error` may come from a row past an earlier problem, and
    a decoding error does not say its row: read again from the start, keeping bytes that are not
    UTF-8 as lone surrogates, to the first row that is not UTF-8, not CSV, or of another width."""
    where, number, width = str(path), 0, None
    with path.open("rb") as binary:
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            reader = csv.reader(text, strict=True, delimiter=delimiter_of(path))
            for number, cells in enumerate(reader, start=1):
                for cell in cells:
                    if found := _UNDECODED.search(cell):
                        byte = ord(found.group()) - 0xDC00
                        return _fault(where, number, f"not UTF-8: byte {byte:#04x}")
                if width is None:
                    width = len(cells)
                elif cells and len(cells) != width:
                    return _fault(where, number, _width_reason(len(cells), width))
        except csv.Error as csv_error:
            return _fault(where, number + 1, f"not readable as CSV: {csv_error}")
    return _fault(where, number, f"not readable: {error}")  # pragma: no cover (read alike twice)


def _width_reason(fields: int, width: int) -> str:
    return f"has {fields} fields, the header has {width} (a truncated or misquoted row?)"


_UNDECODED = re.compile("[\\udc80-\\udcff]")


def _whole_rows(
    where: str, width: int, numbers: Sequence[int], rows: Sequence[list[str]]
) -> tuple[list[int], list[list[str]]]:
    """The rows with as many fields as the header, blank lines left out; a row with another
    number of fields is an error."""
    kept: tuple[list[int], list[list[str]]] = ([], [])
    for number, cells in zip(numbers, rows, strict=True):
        if len(cells) != width:
            if not cells:
                continue  # a blank line (a line of empty fields is a row, and the wrong width)
            raise _fault(where, number, _width_reason(len(cells), width))
        kept[0].append(number)
        kept[1].append(cells)
    return kept


def _checked_header(
    where: str, header: list[str], event_type: EventType, mapping: Mapping[str, str]
) -> dict[str, str]:
    """{file column: event column}; every required column must be there (named or mapped)."""
    unknown = [event for event in mapping if event_type.column(event) is None]
    if unknown:
        raise _fault(
            where,
            1,
            f"the mapping names columns {', '.join(unknown)} that {event_type.name} does not have",
        )
    renamed = {source: event for event, source in mapping.items()}
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise _fault(where, 1, f"the header repeats {', '.join(duplicated)}")
    present = {renamed.get(name, name) for name in header}
    missing = [c.name for c in event_type.columns if c.required and c.name not in present]
    if missing:
        hint = "" if mapping else " (columns named otherwise? give a --mapping file)"
        raise _fault(
            where,
            1,
            f"the header lacks the required "
            f"column(s) {', '.join(missing)} of {event_type.name}{hint}",
        )
    return renamed


def _jsonl_rows(path: Path, mapping: Mapping[str, str]) -> Iterator[tuple[int, dict[str, Any]]]:
    where = str(path)
    renamed = {source: event for event, source in mapping.items()}
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if len(line) > MAX_LINE:
                raise _fault(where, number, f"the line is longer than {MAX_LINE:,} bytes")
            if not line.strip():
                continue
            try:
                document = json.loads(line.decode("utf-8"), parse_float=Decimal)
            except (UnicodeDecodeError, ValueError) as error:
                raise _fault(where, number, f"not a JSON line: {error}") from None
            if not isinstance(document, dict):
                raise _fault(where, number, "a line is one JSON object")
            yield number, {str(renamed.get(k, k)): _text(v) for k, v in document.items()}


def _fault(where: str, number: int, reason: str) -> RuleError:
    """A problem with the file at a row, which stops the batch (nothing of it is stored)."""
    return RuleError([row_problem(where, number, None, None, reason)])


def _text(value: Any) -> Any:
    if isinstance(value, float):  # parse_float=Decimal leaves none; kept for safety
        raise RuleError([Problem("JSON", f"a float {value!r} cannot hold an amount exactly")])
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# The formats read with a third-party package, each in its own module, register last. A
# `.fhir.ndjson` file reaches its reader once `format_of` tells it from plain `.ndjson`.
from outcomes.readers_fhir import read_fhir_bundle, read_fhir_ndjson  # noqa: E402
from outcomes.readers_xlsx import read_xlsx  # noqa: E402

EXTRA_READERS.update({"json": read_fhir_bundle, "fhir.ndjson": read_fhir_ndjson, "xlsx": read_xlsx})

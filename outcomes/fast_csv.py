"""Reading and typing a whole CSV file in compiled code (pyarrow), for the load's fast path.

It knows no database, and is only a fast path, as `outcomes.columns` is: it vouches for a whole
file or for none of it. A file holding anything it cannot vouch for raises `Unvouched`, and is
loaded by the row-by-row path, which words every problem; what it does vouch for it types to
exactly the values that path stores (tests hold the two to the same rows). It vouches only for
plain files: no quote, backslash or control character anywhere (so no quoting rules to tell apart,
and each cell is its JSON text as it is), each cell already in the shape its column takes.

pyarrow reads the file 1.5 MB of whole lines at a time with its C++ CSV reader, and checks and
converts each column with its compute kernels: a regex over a column, a cast, a join of strings;
no Python call per cell. Two threads type blocks side by side (the kernels run without the GIL),
while the caller writes the block before them; what the block's bytes rule out at a glance (a
cell padded with spaces, an over-long line, bytes that are not ASCII) no column is checked for.
Memory stays flat: a few blocks in hand, each a few megabytes once typed.
"""

from __future__ import annotations

import codecs
import copy
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from outcomes.events import Column, EventType
from outcomes.parse import FIRST_DATE, LAST_DATE, MAX_TEXT, MONEY_DIGITS, SCORE_DIGITS
from outcomes.readers import MAX_LINE, checked_names, delimiter_of
from rules.types import COUNT, DATE, MONEY, SCORE, TEXT, Scalar

BLOCK = 3 << 19  # bytes of the file read and typed at once
WORKERS = 2  # threads typing blocks
T = TypeVar("T")
# Python's str.strip() takes these off a cell; a cell starting or ending with one is the row
# path's to judge (it strips it; this path does not).
_SPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
_UNSTRIPPED = "^[{0}]|[{0}]$".format("".join(f"\\x{{{ord(c):x}}}" for c in _SPACE))
_COUNT = "^[0-9]{1,9}$"
_DATE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_FIRST, _LAST = pa.scalar(FIRST_DATE, pa.date32()), pa.scalar(LAST_DATE, pa.date32())
# Every constant a kernel is given is an Arrow scalar made once: given a Python value, pyarrow
# converts it on each call, trying imports (dateutil) that cost more than the kernel.
_MAX_TEXT, _MAX_LINE = pa.scalar(MAX_TEXT, pa.int32()), pa.scalar(MAX_LINE, pa.int32())
_NOTHING, _ROW_END, _TAB, _NEWLINE = (pa.scalar(text) for text in ("", '"}', "\t", "\n"))
_TRUE, _ZERO = pa.scalar(True), pa.array([0], pa.int32())
_NULL_TEXT = pa.scalar(None, pa.string())


class Unvouched(Exception):
    """The file holds something only the row-by-row path can judge, or word as a problem."""


@dataclass(frozen=True, slots=True)
class Block:
    """Rows of the file as their events table stores them: `row_number`, each event column in
    the event type's order (money and scores as integers of their places, dates as ISO text,
    None where empty) and `extra` (the JSON text of the cells outside the event type)."""

    table: pa.Table

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    def copy_text(self, batch_id: str | None) -> memoryview:
        """The rows in the text format of PostgreSQL's COPY with NULL '' (a line a row, its cells
        separated by tabs, an empty cell NULL), led by `batch_id` unless None. No cell holds a
        tab, line end or backslash (the file is plain, its lines cut at their ends), so none
        needs an escape; nor is any non-null cell empty. A quarter of the server's work on the
        same rows as CSV, whose quoting doubles each quote of the JSON in `extra`."""
        columns = [c if pa.types.is_string(c.type) else pc.cast(c, pa.string())
                   for c in self.table.columns]  # fmt: skip
        if batch_id is not None:
            columns.insert(0, pa.scalar(batch_id))
        cells = pc.binary_join_element_wise(*columns, _TAB, null_handling="replace",
                                            null_replacement="")  # fmt: skip
        lines = pc.binary_join_element_wise(cells, _NEWLINE, _NOTHING).combine_chunks()
        offsets = memoryview(lines.buffers()[1]).cast("i")
        start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
        return memoryview(lines.buffers()[2])[start:end]  # the characters, not copied

    def adjusting(
        self, statuses: frozenset[str], *, status: str, target: str
    ) -> tuple[pa.Array, pa.Array]:
        """(row numbers, targets) of the rows whose `status` column is one of `statuses`, each
        naming in `target` the event it adjusts; `Unvouched` if one names none."""
        chosen = pc.is_in(self.table[status], value_set=pa.array(sorted(statuses)))
        numbers = pc.filter(self.table["row_number"], chosen)
        targets = pc.filter(self.table[target], chosen)
        if targets.null_count:
            raise Unvouched
        return numbers.combine_chunks(), targets.combine_chunks()

    def columns(self) -> list[list[object]]:
        """Each column as a Python list, in the table's order."""
        return [column.to_pylist() for column in self.table.columns]


def typed_blocks(
    path: Path,
    event_type: EventType,
    *,
    mapping: Mapping[str, str],
    places: Mapping[Scalar, int],
    plain: bool,
) -> Generator[Block, None, None]:
    """The file's rows, typed a block at a time; `Unvouched` as soon as a cell is not vouched
    for (before, or between, blocks). `places`: the decimal places money and scores are stored
    to. `plain`: the file has no byte JSON or CSV quoting would treat specially (as
    `outcomes.readers.scan` says)."""
    if not plain:
        raise Unvouched
    try:
        names = checked_names(path, event_type, mapping)
    except Exception:
        raise Unvouched from None  # the row path reads the header again, and says what is wrong
    if len(set(names)) != len(names) or not all(_plain_name(name) for name in names):
        raise Unvouched
    typer = _BlockTyper(event_type, names, places)
    read = pa_csv.ReadOptions(use_threads=False, block_size=8 * BLOCK,
                              column_names=[f"c{i}" for i in range(len(names))])  # fmt: skip
    parse = pa_csv.ParseOptions(delimiter=delimiter_of(path), quote_char=False,
                                ignore_empty_lines=False)  # fmt: skip
    convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(read.column_names, pa.string()),
                                    strings_can_be_null=True, null_values=[""])  # fmt: skip
    ascii_convert = copy.copy(convert)
    ascii_convert.check_utf8 = False  # ASCII is UTF-8

    def typed(lines: bytes) -> list[pa.Table]:
        seen = _Seen.of(lines, parse.delimiter)
        try:
            rows = pa_csv.read_csv(
                pa.py_buffer(lines),
                read_options=read,
                parse_options=parse,
                convert_options=ascii_convert if seen.ascii else convert,
            )
            return [typer.typed(batch, seen) for batch in rows.to_batches()]
        except pa.ArrowException:
            # not UTF-8, a row of another width, a block too large for Arrow's 32-bit offsets:
            # the row path reads it, and says where anything is wrong
            raise Unvouched from None

    first = 2  # the header is row 1
    for tables in _in_order(typed, _line_blocks(path)):
        for table in tables:
            numbers = pa.array(range(first, first + table.num_rows), pa.int64())
            yield Block(table.add_column(0, "row_number", numbers))
            first += table.num_rows


def _in_order(work: Callable[[bytes], T], blocks: Iterator[bytes]) -> Iterator[T]:
    """`work` done on each block by WORKERS threads (pyarrow's kernels run without the GIL), the
    results given in the blocks' order; at most WORKERS blocks are worked on ahead of the one
    given. An exception (`Unvouched`) is raised where its block's result would be."""
    pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="settle-typing")
    pending: deque[Future[T]] = deque()
    try:
        for block in blocks:
            pending.append(pool.submit(work, block))
            if len(pending) > WORKERS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _line_blocks(path: Path) -> Iterator[bytes]:
    """The file after its header, about BLOCK bytes at a time, each ending at the end of a line:
    in a plain file (no quoting) every line is one row. pyarrow's own streaming reader reads far
    ahead of its consumer (hundreds of megabytes); this keeps one block in hand."""
    with path.open("rb") as handle:
        rest = _after_header(handle)
        while block := handle.read(BLOCK):
            block = rest + block
            end = block.rfind(b"\n") + 1
            if end == 0:
                _vouch_for_length(block)
                rest = block
                continue
            rest = block[end:]
            yield _whole_rows(block[:end])
        if rest:
            yield _whole_rows(rest)


def _after_header(handle: BinaryIO) -> bytes:
    """What the file holds after its header line, as far as read. The header ends at its first
    line end, as the csv module reads it; a lone carriage return ending it is left to the row
    path (which ends the header there, where a line read up to a newline would not)."""
    head = b""
    while (end := head.find(b"\n")) < 0:
        more = handle.read(BLOCK)
        if not more:
            end = len(head)
            break
        head += more
        _vouch_for_length(head)
    if b"\r" in head[:end].removesuffix(b"\r"):
        raise Unvouched
    return head[end + 1 :]


def _vouch_for_length(unended: bytes) -> None:
    """Megabytes without a newline (lines ended by a lone carriage return?): the row path's."""
    if len(unended) > 4 * BLOCK:
        raise Unvouched


def _whole_rows(lines: bytes) -> bytes:
    """pyarrow drops a byte-order mark that starts what it reads; the row path keeps one that
    starts a row (it is a character of that row's first cell), so such a row is its to judge."""
    if lines.startswith(codecs.BOM_UTF8):
        raise Unvouched
    return lines


@dataclass(frozen=True, slots=True)
class _Seen:
    """What a look at a block's bytes, all at once, could not rule out (the columns are then
    checked for it one by one): a cell starting or ending with whitespace, a line longer than
    MAX_LINE bytes (and so maybe a cell; the row path refuses a cell that long). And whether
    every byte is ASCII (then no cell need be checked to be UTF-8)."""

    padded: bool
    long: bool
    ascii: bool

    @classmethod
    def of(cls, lines: bytes, delimiter: str) -> _Seen:
        ascii = lines.isascii()
        return cls(padded=not (ascii and _unpadded(lines, delimiter)), long=not _short(lines),
                   ascii=ascii)  # fmt: skip


def _short(lines: bytes) -> bool:
    """Whether every line is under MAX_LINE bytes: each half of that, from the start, holds a
    line end (a few finds, each stopping at the first line end)."""
    half = MAX_LINE // 2
    return all(lines.find(b"\n", start, start + half) >= 0
               for start in range(0, len(lines) - half, half))  # fmt: skip


def _unpadded(lines: bytes, delimiter: str) -> bool:
    """Whether no cell of these ASCII lines starts or ends with whitespace, seen from the bytes
    at once (a tenth of checking each text column): the only whitespace ASCII in a plain file
    can be is the space (the tab being its delimiter, if anything), and no space is next to a
    delimiter or a line end. False leaves it to the columns' own checks."""
    if b" " not in lines:
        return True
    edge, space = f"[\\x{ord(delimiter):02x}\\r\\n]", "\\x20"
    padding = f"(?:\\A|{edge}){space}|{space}(?:{edge}|\\z)"
    found = pc.match_substring_regex(pa.array([lines], pa.large_binary()), padding)
    return not found[0].as_py()


def _plain_name(name: str) -> bool:
    """A column name that is its own JSON text (the key of a cell kept in `extra`)."""
    return name.isprintable() and '"' not in name and "\\" not in name


class _BlockTyper:
    def __init__(self, event_type: EventType, names: tuple[str, ...], places: Mapping[Scalar, int]):
        index = {name: i for i, name in enumerate(names)}
        self.event_type, self.places = event_type, places
        self.columns = [(c, index.get(c.name)) for c in event_type.columns]
        extra = sorted(name for name in names if event_type.column(name) is None)
        self.extra = [(pa.scalar(f'","{name}":"'), index[name]) for name in extra]

    def typed(self, batch: pa.RecordBatch, seen: _Seen) -> pa.Table:
        """The rows as their events table stores them, but for their row numbers."""
        rows = batch.num_rows
        arrays = []
        for column, index in self.columns:
            if index is None:
                arrays.append(pa.nulls(rows, _stored_type(column.type, self.places)))
            else:
                arrays.append(self._column(column, batch.column(index), seen))
        arrays.append(self._extra(batch, seen))
        names = [*(c.name for c in self.event_type.columns), "extra"]
        return pa.Table.from_arrays(arrays, names=names)

    def _column(self, column: Column, cells: pa.Array, seen: _Seen) -> pa.Array:
        if column.required and cells.null_count:
            raise Unvouched
        kind = column.type
        if kind == TEXT:
            _vouch(pc.less_equal(pc.utf8_length(cells), _MAX_TEXT))
            if seen.padded:
                _vouch(pc.invert(pc.match_substring_regex(cells, _UNSTRIPPED)))
            if column.allowed:
                allowed = pc.is_in(cells, value_set=pa.array(column.allowed))  # null: False
                _vouch(pc.or_(allowed, pc.is_null(cells)))
            return cells
        if kind in self.places:
            return _scaled(cells, self.places[kind], integer_digits=_INTEGER_DIGITS[kind])
        if kind == COUNT:
            _vouch(pc.match_substring_regex(cells, _COUNT))
            return pc.cast(cells, pa.int64())
        assert kind == DATE
        _vouch(pc.match_substring_regex(cells, _DATE))
        try:
            dates = pc.cast(cells, pa.date32())  # a calendar date, or an error
        except pa.ArrowInvalid:
            raise Unvouched from None
        _vouch(pc.and_(pc.greater_equal(dates, _FIRST), pc.less_equal(dates, _LAST)))
        return cells  # the ISO text, as the row path stores a date

    def _extra(self, batch: pa.RecordBatch, seen: _Seen) -> pa.Array:
        """Each row's cells outside the event type, non-empty, as compact JSON with sorted keys
        (`outcomes.columns.extra_text`); null for a row without any. The file is plain, so a
        cell is its own JSON string text.

        Built from the non-empty cells alone (a few a row, of a hundred columns or more): each
        column's as pieces `","name":"cell` with their rows, then every row's `"}`; the pieces
        put in row order (a stable sort, so each row's keep their columns' order) and joined
        row by row; a row's first `",` made `{`, and a row that is `"}` alone made null."""
        rows = batch.num_rows
        at, pieces = [], []
        for head, index in self.extra:
            cells = batch.column(index)
            if cells.null_count == rows:
                continue
            if seen.long:
                _vouch(pc.less_equal(pc.binary_length(cells), _MAX_LINE))
            at.append(pc.indices_nonzero(pc.is_valid(cells)))
            pieces.append(pc.binary_join_element_wise(head, pc.drop_null(cells), _NOTHING))
        if not pieces:
            return pa.nulls(rows, pa.string())
        at.append(pc.indices_nonzero(pa.repeat(_TRUE, rows)))  # 0, 1, … rows - 1
        pieces.append(pa.repeat(_ROW_END, rows))
        rows_at = pa.concat_arrays(at)
        order = pc.sort_indices(rows_at)
        ends = pc.run_end_encode(pc.take(rows_at, order)).run_ends  # one a row
        listed = pa.ListArray.from_arrays(pa.concat_arrays([_ZERO, ends]),
                                          pc.take(pa.concat_arrays(pieces), order))  # fmt: skip
        joined = pc.binary_join(listed, _NOTHING)
        text = pc.binary_replace_slice(joined, 0, 2, "{")
        return pc.if_else(pc.equal(joined, _ROW_END), _NULL_TEXT, text)


_INTEGER_DIGITS = {MONEY: MONEY_DIGITS, SCORE: SCORE_DIGITS}


def _scaled(cells: pa.Array, places: int, *, integer_digits: int) -> pa.Array:
    """Amounts of at most `integer_digits` digits and `places` decimals, as integers of their
    smallest unit, exactly (a decimal cast, not a float)."""
    shape = rf"^-?[0-9]{{1,{integer_digits}}}(\.[0-9]{{1,{places}}})?$"
    _vouch(pc.match_substring_regex(cells, shape))
    precision = integer_digits + places
    try:
        exact = pc.cast(cells, pa.decimal128(precision, places))
        unit = pa.scalar(10**places, pa.decimal128(places + 1, 0))
        return pc.cast(pc.multiply(exact, unit), pa.int64())  # safe: refuses what overflows
    except pa.ArrowInvalid:
        raise Unvouched from None


def _stored_type(kind: Scalar, places: Mapping[Scalar, int]) -> pa.DataType:
    return pa.int64() if kind in places or kind == COUNT else pa.string()


def _vouch(checks: pa.Array) -> None:
    """Every non-empty cell passed (an empty one is null, and vouched for by its column)."""
    if not pc.all(checks, min_count=0).as_py():
        raise Unvouched

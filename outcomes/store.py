"""The outcome events store: batches loaded whole or not at all, bitemporal reads, retractions.

A batch is named by the SHA-256 of its file: loading the same file again is a no-op returning the
batch already there. Every event keeps when it happened (its own dates) and when Settle learned
it (its batch's `learned_at`); reading "as of T" sees exactly the batches learned by T and not
retracted by T. Money is stored as integer ten-thousandths and scores as integer billionths, so
sums are exact on SQLite and PostgreSQL alike; this module converts both ways.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import repeat
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ARRAY,
    CHAR,
    BigInteger,
    Column,
    Connection,
    Date,
    Engine,
    ForeignKey,
    Index,
    MetaData,
    Select,
    String,
    Table,
    Text,
    and_,
    bindparam,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.exc import IntegrityError

from api.database import UtcDateTime, utc_now
from outcomes.columns import ChunkTyper, extra_text
from outcomes.episodes import EPISODE_COLUMNS, Built, cell_text
from outcomes.events import EVENT_TYPES, EventType
from outcomes.events import Column as EventColumn
from outcomes.fast_csv import Block, Unvouched, typed_blocks
from outcomes.parse import RowTyper, TypedRow, row_problem
from outcomes.readers import format_of, read_chunks, scan
from rules.check import suggest
from rules.errors import Problem, RuleError, SettleError
from rules.types import COUNT, DATE, MONEY, SCORE

MONEY_SCALE = Decimal(10) ** 4
SCORE_SCALE = Decimal(10) ** 9
CHUNK = 5_000  # rows checked (their keys, the claims they adjust) and written at once
# Rows read and typed at once. Fewer than a chunk: a read row (a list of every cell) is costly for
# the garbage collector to walk, and it walks the rows held each time it runs; typed, a chunk is a
# few dozen lists of values. A tenth of the collector's work, and the rows stay in the CPU caches.
TYPED = 500
MAX_PROBLEMS = 100
# Claims named by replacements and voids kept by the fast path before it checks them (and so
# closes its COPY): a few megabytes at most, however many a file holds.
NAMED_AT_ONCE = 100_000
# PostgreSQL: a plain CSV file of this size or more (about 70,000 lines of Tuva's 137 columns) is
# loaded into a partition of its own, indexed once its rows are in (migration 0006); smaller ones,
# and every file loaded row by row, into the shared partition.
OWN_PARTITION_BYTES = 32 << 20
PARTITION_NUMBERS = "outcome_partition_numbers"  # a sequence, made by migration 0006
# Required of files since 0004, nullable in tables made by 0003 (rows stored before may lack it).
NULLABLE_STORED = frozenset({"claim_start_date"})
ADJUSTING = frozenset({"replacement", "void"})  # the claim statuses that name another claim

metadata = MetaData()
batches_table = Table(
    "outcome_batches", metadata,
    Column("batch_id", CHAR(64), primary_key=True),
    Column("event_type", String(40), nullable=False),
    Column("source", String(500), nullable=False),
    Column("learned_at", UtcDateTime(), nullable=False),
    Column("source_as_of", UtcDateTime(), nullable=True),
    Column("rows", BigInteger, nullable=True),  # counted as loaded; given each batch by 0005
    Index("ix_outcome_batches_learned_at", "learned_at"),
)  # fmt: skip
retractions_table = Table(
    "outcome_retractions", metadata,
    Column("batch_id", CHAR(64), ForeignKey("outcome_batches.batch_id"), primary_key=True),
    Column("retracted_at", UtcDateTime(), nullable=False),
    Column("reason", String(500), nullable=False),
)  # fmt: skip


def _sql_type(kind: object) -> Any:
    if kind in (MONEY, SCORE, COUNT):
        return BigInteger()
    if kind == DATE:
        return Date()
    return String(200)


def _event_table(event_type: EventType) -> Table:
    """One full index, the unique (key, batch): it finds a key repeated in a batch, and a claim
    by its id (claim lines also have the partial adjusted_claim_id index). No primary key nor
    foreign key to the batch, whose upkeep was half a load's cost in the database (migration
    0005): a batch's rows are written in the transaction writing its batch row, numbered by the
    loader, and never changed.

    On PostgreSQL the table is partitioned by a partition number no query reads (migration 0006):
    the indexes declared here are its shared partition's, and a batch in a partition of its own
    (`_OwnPartition`) has the same indexes, its unique key without the batch."""
    name = f"events_{event_type.name}"
    table = Table(
        name, metadata,
        Column("batch_id", CHAR(64), nullable=False),
        Column("row_number", BigInteger, nullable=False),
        *(Column(c.name, _sql_type(c.type), nullable=not c.required or c.name in NULLABLE_STORED)
          for c in event_type.columns),
        Column("extra", Text, nullable=True),
    )  # fmt: skip
    Index(f"uq_{name}_key", *_unique_key(table, event_type), table.c.batch_id, unique=True)
    return table


def _unique_key(table: Table, event_type: EventType) -> list[Any]:
    """The key as its unique index holds it: a key cell left empty (an eligibility span's plan)
    counts as '', for an index holds NULLs distinct and would let a key repeat."""
    required = {c.name for c in event_type.columns if c.required}
    return [table.c[k] if k in required else func.coalesce(table.c[k], "") for k in event_type.key]


EVENT_TABLES: Mapping[str, Table] = {name: _event_table(t) for name, t in EVENT_TYPES.items()}
# An aggregate keeps a claim line only if no visible line adjusts its claim: one probe a line.
# Few lines adjust a claim, so the index holds only those (migration 0004).
_adjusted = EVENT_TABLES["claim_line"].c.adjusted_claim_id
Index("ix_events_claim_line_adjusted_claim_id", _adjusted,
      sqlite_where=_adjusted.is_not(None), postgresql_where=_adjusted.is_not(None))  # fmt: skip


@dataclass(frozen=True, slots=True)
class EpisodeRebuild:
    """What rebuilding a rule's episodes did: nothing (the current batch holds them), or loaded a
    batch (none if there are no episodes) and retracted the rule's earlier ones."""

    unchanged: Batch | None = None
    loaded: Batch | None = None
    retracted: tuple[Batch, ...] = ()


class EventStoreError(SettleError):
    """A load or retraction the store refuses as a whole (not a problem in one row)."""


@dataclass(frozen=True, slots=True)
class Batch:
    batch_id: str
    event_type: str
    source: str
    learned_at: dt.datetime
    source_as_of: dt.datetime | None
    rows: int
    retracted_at: dt.datetime | None = None
    retraction_reason: str = ""


@dataclass(frozen=True, slots=True)
class LoadResult:
    batch: Batch
    loaded: bool  # False: the same file was already loaded, and nothing changed


def file_hash(path: Path) -> str:
    return scan(path)[0]


def to_database(kind: object, value: Any) -> Any:
    """A typed value as stored: money and scores as scaled integers."""
    scale = _scale(kind)
    return value if value is None or scale is None else int(value * scale)


def _scale(kind: object) -> Decimal | None:
    """What a value of this kind is multiplied by to be stored as an integer (None: as it is)."""
    return MONEY_SCALE if kind == MONEY else SCORE_SCALE if kind == SCORE else None


_PLACES = {MONEY: 4, SCORE: 9}  # MONEY_SCALE and SCORE_SCALE, as decimal places


def from_database(kind: object, value: Any) -> Any:
    if value is None:
        return None
    if kind == MONEY:
        return Decimal(int(value)) / MONEY_SCALE
    if kind == SCORE:
        return Decimal(int(value)) / SCORE_SCALE
    return value


def event_type_named(name: str) -> EventType:
    found = EVENT_TYPES.get(name)
    if found is None:
        raise EventStoreError(f"unknown event type '{name}'{suggest(name, EVENT_TYPES)}; the "
                              f"types are: {', '.join(EVENT_TYPES)}")  # fmt: skip
    return found


class EventStore:
    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        fast_csv: bool = True,
        own_partition_bytes: int = OWN_PARTITION_BYTES,
    ) -> None:
        """`fast_csv`: load a plain CSV typed by pyarrow where it vouches for the whole file
        (`outcomes.fast_csv`); False loads every file row by row (the tests compare the two).
        `own_partition_bytes`: on PostgreSQL, such a file this large or larger is a partition of
        its own (`_OwnPartition`)."""
        self.engine = engine
        self._clock = clock
        self._fast_csv = fast_csv
        self._own_partition_bytes = own_partition_bytes

    # Loading ---------------------------------------------------------------------------------

    def load(
        self,
        path: str | Path,
        event_type: str,
        *,
        mapping: Mapping[str, str] | None = None,
        source_as_of: dt.datetime | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> LoadResult:
        """Load a file as one batch: every row lands, or none does and every problem (up to
        MAX_PROBLEMS) is raised together, each naming file, row, column, value and reason."""
        path = Path(path)
        kind = event_type_named(event_type)
        batch_id, plain = scan(path)
        existing = self._loaded_before(path, kind, batch_id)
        if existing is not None:
            return existing
        batch = {"batch_id": batch_id, "event_type": kind.name, "source": path.name[:500],
                 "learned_at": self._clock(), "source_as_of": source_as_of}  # fmt: skip
        load = _Load(path, kind, batch, mapping or {}, on_progress, plain)
        try:
            if not self._loaded_fast(load):
                self._load_batch(load, probing=False)
        except (_KeyRepeated, _AlreadyLoaded, IntegrityError) as error:
            # Loaded meanwhile by another process (whose rows the unique index met, or whose
            # batch row): that batch is the answer. Else a key repeated across chunks, which
            # the index refused: load again, probing each chunk's keys, to say which rows.
            existing = self._loaded_before(path, kind, batch_id)
            if existing is not None:
                return existing
            if not isinstance(error, _KeyRepeated):
                raise
            self._load_batch(replace(load, on_progress=None), probing=True)
        result = self._batch_or_none(batch_id)
        assert result is not None
        return LoadResult(result, loaded=True)

    def _loaded_before(self, path: Path, kind: EventType, batch_id: str) -> LoadResult | None:
        existing = self._batch_or_none(batch_id)
        if existing is None:
            return None
        if existing.event_type != kind.name:
            raise EventStoreError(f"{path} was loaded as {existing.event_type} (batch "
                                  f"{batch_id[:12]}…), not {kind.name}")  # fmt: skip
        return LoadResult(existing, loaded=False)

    def _load_batch(self, load: _Load, *, probing: bool) -> None:
        """One transaction: the events, then the batch row with their count; or an exception
        and nothing."""
        with _collector_paused(), self.engine.begin() as connection:
            _wait_for_other_loads_of(connection, load.batch_id)
            loading = _Loading(connection, load.kind, load.batch_id, str(load.path),
                               plain=load.plain, probing=probing)  # fmt: skip
            with loading:
                shown = 0
                chunks = read_chunks(load.path, load.kind, mapping=load.mapping,
                                     size=min(TYPED, CHUNK))  # fmt: skip
                for chunk in chunks:
                    loading.add(*chunk)
                    if chunk[0] and chunk[0][-1] // 10_000 > shown:
                        shown = chunk[0][-1] // 10_000
                        load.progress(loading.count)
                loading.finish()
            connection.execute(insert(batches_table).values(load.batch_row(loading.count)))

    def _loaded_fast(self, load: _Load) -> bool:
        """Load a plain CSV typed by pyarrow, in one transaction as `_load_batch` does: True if
        it landed; False, having written nothing, if the file holds anything that path does not
        vouch for (the row-by-row path then loads it, or words every problem)."""
        if not (self._fast_csv and load.plain and format_of(load.path) == "csv"):
            return False
        blocks = typed_blocks(load.path, load.kind, mapping=load.mapping, places=_PLACES,
                              plain=load.plain)  # fmt: skip
        try:
            # closing: a load given up on stops its typing threads before the row path starts
            with closing(blocks), _collector_paused(), self.engine.begin() as connection:
                _wait_for_other_loads_of(connection, load.batch_id)
                own = (connection.dialect.name == "postgresql"
                       and load.path.stat().st_size >= self._own_partition_bytes
                       and _OwnPartition.allowed(connection, load.kind))  # fmt: skip
                with _BlockWriter(connection, load.kind, load.batch_id, own) as writer:
                    for block in blocks:
                        writer.write(block)
                        load.progress(writer.count)
                    writer.finish()
                if writer.count == 0:
                    raise Unvouched  # the row path says the file has no rows
                connection.execute(insert(batches_table).values(load.batch_row(writer.count)))
        except Unvouched:
            return False
        return True

    # Batches ---------------------------------------------------------------------------------

    def batches(self) -> tuple[Batch, ...]:
        with self.engine.connect() as connection:
            rows = connection.execute(self._batch_query().order_by(batches_table.c.learned_at))
            return tuple(self._batch_of(row) for row in rows)

    def batch(self, prefix: str) -> Batch:
        """The batch whose id starts with `prefix` (at least 8 hex characters)."""
        if len(prefix) < 8:
            raise EventStoreError("give at least 8 characters of the batch id")
        with self.engine.connect() as connection:
            rows = connection.execute(
                self._batch_query().where(batches_table.c.batch_id.startswith(prefix))
            ).all()
            if len(rows) != 1:
                what = "no batch" if not rows else f"{len(rows)} batches"
                raise EventStoreError(f"{what} with an id starting {prefix}")
            return self._batch_of(rows[0])

    def retract(self, prefix: str, *, reason: str) -> Batch:
        """Withdraw a whole batch from reads as of now: a retraction record, nothing deleted."""
        batch = self.batch(prefix)
        if batch.retracted_at is not None:
            raise EventStoreError(f"batch {batch.batch_id[:12]}… was retracted on "
                                  f"{batch.retracted_at.isoformat()}")  # fmt: skip
        if not reason.strip():
            raise EventStoreError("say why the batch is retracted")
        record = {"batch_id": batch.batch_id, "retracted_at": self._clock(), "reason": reason[:500]}
        with self.engine.begin() as connection:
            connection.execute(insert(retractions_table).values(record))
        return self.batch(batch.batch_id)

    def _batch_or_none(self, batch_id: str) -> Batch | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                self._batch_query().where(batches_table.c.batch_id == batch_id)
            ).one_or_none()
            return None if row is None else self._batch_of(row)

    @staticmethod
    def _batch_query() -> Select[Any]:
        return select(
            batches_table, retractions_table.c.retracted_at, retractions_table.c.reason
        ).outerjoin(retractions_table)

    @staticmethod
    def _batch_of(row: Any) -> Batch:
        if row.rows is None:  # the loader and migration 0005 write it; nothing else may omit it
            raise EventStoreError(f"batch {row.batch_id[:12]}… has no row count")
        return Batch(row.batch_id, row.event_type, row.source, row.learned_at, row.source_as_of,
                     row.rows, row.retracted_at, row.reason or "")  # fmt: skip

    def rebuild_episodes(self, built: Built, claims_as_of: dt.datetime) -> EpisodeRebuild:
        """Make `built` the current batch of its rule: nothing if the rule's current batch holds
        exactly these episodes; else load them (the claims' cutoff is in the content, so it never
        collides with a retracted batch) and retract the rule's earlier batches, saying why.
        A rebuild from claims older than the current batch's is refused."""
        rule = built.rule.name
        current = self.live_episodes(rule)
        if list(current.values()) == [built.rows()]:
            return EpisodeRebuild(unchanged=self.batch(next(iter(current))))
        for batch_id in current:
            built_as_of = self.batch(batch_id).source_as_of
            if built_as_of is not None and built_as_of > claims_as_of:
                raise EventStoreError(
                    f"the rule's current batch {batch_id[:16]}… was built from the claims as of "
                    f"{built_as_of.isoformat()}, later than {claims_as_of.isoformat()}: a rebuild "
                    "from earlier claims would replace newer episodes"
                )
        loaded = None
        if built.episodes:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"episodes-{rule}-as-of-{claims_as_of:%Y%m%dT%H%M%SZ}.csv"
                path.write_bytes(built.csv_bytes(claims_as_of=claims_as_of))
                loaded = self.load(path, "episode", source_as_of=claims_as_of).batch
            if loaded.retracted_at is not None:  # built from this cutoff once, since retracted
                raise EventStoreError(
                    f"these episodes, built from the claims as of {claims_as_of.isoformat()}, "
                    f"were loaded as batch {loaded.batch_id[:16]}… and retracted "
                    f"({loaded.retraction_reason}); build them as of a later time"
                )
        what = f"superseded by episodes batch {loaded.batch_id[:16]}…" if loaded else "no episodes"
        why = f"{what} (rebuilt from the claims as of {claims_as_of.isoformat()})"
        retracted = tuple(self.retract(batch_id, reason=why) for batch_id in sorted(current)
                          if loaded is None or batch_id != loaded.batch_id)  # fmt: skip
        return EpisodeRebuild(loaded=loaded, retracted=retracted)

    def live_episodes(self, rule: str) -> dict[str, frozenset[tuple[str, ...]]]:
        """The never-retracted batches holding episodes of `rule`, each with its episodes as text
        tuples of the episode columns (outcomes.episodes.EPISODE_COLUMNS)."""
        table = EVENT_TABLES["episode"]
        columns = [table.c[name] for name in EPISODE_COLUMNS]
        found: dict[str, set[tuple[str, ...]]] = {}
        query = select(table.c.batch_id, *columns).where(
            table.c.batch_id.in_(live_batches()), table.c.rule == rule
        )
        with self.engine.connect() as connection:
            for batch_id, *values in connection.execute(query):
                found.setdefault(batch_id, set()).add(tuple(cell_text(v) for v in values))
        return {batch_id: frozenset(rows) for batch_id, rows in found.items()}

    # Reading ---------------------------------------------------------------------------------

    def events(self, event_type: str, *, as_of: dt.datetime) -> Iterator[dict[str, Any]]:
        """Every event of a type known as of `as_of` (learned by then, not retracted by then)."""
        kind = event_type_named(event_type)
        table = EVENT_TABLES[kind.name]
        query = select(table).where(table.c.batch_id.in_(visible_batches(as_of)))
        with self.engine.connect() as connection:
            for row in connection.execute(query.order_by(table.c.batch_id, table.c.row_number)):
                yield {c.name: from_database(c.type, getattr(row, c.name)) for c in kind.columns}


@dataclass(frozen=True, slots=True)
class _Load:
    """One file to load as a batch: its event type, its batch row (less the count), how its
    columns are mapped, whom to tell of progress, and whether it is plain (readers.scan)."""

    path: Path
    kind: EventType
    batch: Mapping[str, Any]
    mapping: Mapping[str, str]
    on_progress: Callable[[int], None] | None
    plain: bool

    @property
    def batch_id(self) -> str:
        return str(self.batch["batch_id"])

    def batch_row(self, rows: int) -> dict[str, Any]:
        return {**self.batch, "rows": rows}

    def progress(self, rows: int) -> None:
        if self.on_progress is not None:
            self.on_progress(rows)


class _AlreadyLoaded(Exception):
    """Another process loaded the same content while this one waited for it."""


def _wait_for_other_loads_of(connection: Connection, batch_id: str) -> None:
    """PostgreSQL: the same content loading in another process is waited for (a transaction
    lock on its id), and if it landed, this load stops before reading a row. SQLite has one
    writer at a time already; a load that meets the other's rows or batch row finds it then."""
    if connection.dialect.name != "postgresql":
        return
    connection.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(batch_id, 0))))
    landed = select(batches_table.c.batch_id).where(batches_table.c.batch_id == batch_id)
    if connection.execute(landed).first() is not None:
        raise _AlreadyLoaded


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a load runs. A load makes no cycles (its rows are lists
    of strings, freed as each chunk is written), but holding a few hundred rows of a hundred cells
    makes the collector run every few rows and walk them: a fifth of the time reading a wide CSV
    (1.36 s against 1.1 s for 300,000 rows of 137 cells)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def live_batches() -> Select[Any]:
    """The ids of the batches never retracted."""
    retracted = exists().where(retractions_table.c.batch_id == batches_table.c.batch_id)
    return select(batches_table.c.batch_id).where(~retracted)


def visible_batches(as_of: dt.datetime) -> Select[Any]:
    """The ids of the batches known as of `as_of`: learned by then and not retracted by then."""
    retracted = exists().where(
        retractions_table.c.batch_id == batches_table.c.batch_id,
        retractions_table.c.retracted_at <= as_of,
    )
    return select(batches_table.c.batch_id).where(batches_table.c.learned_at <= as_of, ~retracted)


class _KeyRepeated(Exception):
    """The unique (key, batch) index refused a row of a load not probing: load again, probing."""


def _repeats_a_key(error: Exception) -> bool:
    """A unique index refused a row, or could not be built for two (PostgreSQL's
    unique_violation, from psycopg or through SQLAlchemy; or SQLite's)."""
    driver_error = getattr(error, "orig", error)
    return getattr(driver_error, "sqlstate", None) == "23505" or "UNIQUE constraint" in str(error)


class _Writes:
    """Rows into an events table (or a batch's own partition), in the load's transaction.
    PostgreSQL: a COPY, opened at the first write and left open while the loader types the next
    rows (the server takes them in, and keeps up any index, on the other core); closed before any
    query reads what was written, and opened again at the next write. SQLite: executemany.
    Every row is of `batch_id`. A row the unique (key, batch) index refuses is `_KeyRepeated`,
    unless `probing` (the loader then names the rows itself, and the error passes)."""

    def __init__(
        self, connection: Connection, table: Table, batch_id: str, *, text: bool, probing: bool
    ) -> None:
        self.connection, self.batch_id, self.probing = connection, batch_id, probing
        self.postgres = connection.dialect.name == "postgresql"
        quote = connection.dialect.identifier_preparer.quote
        names = ", ".join(quote(column.name) for column in table.columns)
        shape = " (FORMAT text, NULL '', ENCODING 'UTF8')" if text else ""  # the bytes are UTF-8
        self._copy_statement = f"COPY {quote(table.name)} ({names}) FROM STDIN{shape}"
        self._insert_statement = str(insert(table).compile(dialect=connection.dialect))
        self._copying = ExitStack()
        self._copy: Any = None

    def __enter__(self) -> _Writes:
        return self

    def __exit__(self, *raised: Any) -> None:
        self._copying.__exit__(*raised)  # an error aborts an open COPY, and so the transaction

    def columns(self, columns: Sequence[Sequence[Any]]) -> None:
        """Rows given a column at a time: each column after the batch id, in the table's order."""
        rows = zip(repeat(self.batch_id), *columns)
        with self.keys_refused():
            if self.postgres:
                write = self._stream().write_row  # psycopg formats each row in C
                for row in rows:
                    write(row)
                return
            cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(self._insert_statement, rows)
            finally:
                cursor.close()

    def text(self, lines: bytes | memoryview) -> None:
        """Rows in COPY's text format with NULL '' (`fast_csv.Block.copy_text`), in UTF-8
        whatever the connection's encoding (PostgreSQL: a COPY opened with `text`)."""
        with self.keys_refused():
            self._stream().write(lines)

    def close(self) -> None:
        """Ends the open COPY, if any: the server has then taken every row written so far (and
        says here if its unique index refused one)."""
        if self._copy is None:
            return
        self._copy = None
        with self.keys_refused():
            self._copying.close()

    def _stream(self) -> Any:
        if self._copy is None:
            driver = self.connection.connection.driver_connection  # psycopg's own
            assert driver is not None
            cursor = self._copying.enter_context(driver.cursor())
            self._copy = self._copying.enter_context(cursor.copy(self._copy_statement))
        return self._copy

    @contextmanager
    def keys_refused(self) -> Iterator[None]:
        """A unique index refusing a row (or not built, for two) is `_KeyRepeated`, unless
        probing."""
        try:
            yield
        except Exception as error:
            if _repeats_a_key(error) and not self.probing:
                raise _KeyRepeated from error
            raise


class _BlockWriter:
    """Writes the blocks typed by `outcomes.fast_csv`: on PostgreSQL in COPY's text format, through
    a COPY left open while pyarrow types the next blocks (the server takes them in meanwhile);
    on SQLite by executemany. A repeated key is left to the unique (key, batch) index, whose refusal
    is `_KeyRepeated`. A claim line that replaces or voids a claim must name one loaded before
    it, in this file or a batch not retracted: checked once the rows are in, every
    NAMED_AT_ONCE such claims (the COPY closed for the check; the next block opens another).

    `own` (PostgreSQL): the rows go into a partition of the batch's own, without an index until
    they are all in; the index then refuses a repeated key, and the claims named (if any) are
    checked once, by one query, before the partition is attached."""

    def __init__(
        self, connection: Connection, kind: EventType, batch_id: str, own: bool = False
    ) -> None:
        self.connection, self.kind, self.batch_id = connection, kind, batch_id
        self.table = EVENT_TABLES[kind.name]
        self.count = 0
        self._adjusting: list[tuple[Any, Any]] = []  # (row numbers, targets) not yet checked
        self._named = 0  # how many claims they name (with `own`: every block's)
        self._own = _OwnPartition(connection, kind, batch_id) if own else None
        written = self.table if self._own is None else self._own.table
        self._writes = _Writes(connection, written, batch_id, text=True, probing=False)

    def __enter__(self) -> _BlockWriter:
        return self

    def __exit__(self, *raised: Any) -> None:
        self._writes.__exit__(*raised)

    def write(self, block: Block) -> None:
        self.count += block.rows
        if self._writes.postgres:
            self._writes.text(block.copy_text(None if self._own else self.batch_id))
        else:
            self._writes.columns(block.columns())
        if self.kind.name == "claim_line":
            numbers, targets = block.adjusting(ADJUSTING, status="claim_status",
                                               target="adjusted_claim_id")  # fmt: skip
            self._named += len(numbers)
            if self._own is not None:
                return  # checked in the database, once the partition is indexed
            self._adjusting.append((numbers, targets))
            if self._named >= NAMED_AT_ONCE:
                self._check_named()

    def finish(self) -> None:
        """Close the COPY (its unique index may refuse a row then), and check the claims named;
        or index the batch's own partition, check its claims named, and attach it."""
        if self._own is None:
            self._check_named()
            return
        self._writes.close()
        with self._writes.keys_refused():
            self._own.index()
        if self._named and not self._own.names_only_known_claims():
            raise Unvouched  # the row path says which rows
        self._own.attach()

    def _check_named(self) -> None:
        """The claims named so far are each of an earlier row or a batch not retracted: checked
        once every row written so far is in (the COPY closed; the next write opens another)."""
        self._writes.close()
        for numbers, targets in self._adjusting:
            for start in range(0, len(numbers), CHUNK):
                pairs = zip(numbers[start:start + CHUNK].to_pylist(),
                            targets[start:start + CHUNK].to_pylist(), strict=True)  # fmt: skip
                if not self._all_named_before(list(pairs)):
                    raise Unvouched  # the row path says which rows
        self._adjusting, self._named = [], 0

    def _all_named_before(self, pairs: list[tuple[int, str]]) -> bool:
        """Whether each (row, claim) names a claim of an earlier row of this batch, or of a batch
        not retracted."""
        return self.connection.execute(self._named_unknown(pairs)).first() is None

    def _named_unknown(self, pairs: list[tuple[int, str]]) -> Select[Any]:
        """The first row of `pairs` naming a claim neither of an earlier row of this batch nor of
        a batch not retracted: one probe of the unique (claim, line, batch) index a pair."""
        table = self.table
        number: Any
        claim: Any
        wanted: Any
        if self._writes.postgres:
            numbers = bindparam("numbers", [n for n, _ in pairs], type_=ARRAY(BigInteger()))
            claims = bindparam("claims", [c for _, c in pairs], type_=ARRAY(Text()))
            wanted = func.unnest(numbers, claims).table_valued("number", "claim").render_derived()
            number, claim = wanted.c.number, wanted.c.claim
        else:
            wanted = func.json_each(bindparam("wanted", json.dumps(pairs), type_=Text())
                                    ).table_valued("value")  # fmt: skip
            number = func.json_extract(wanted.c.value, "$[0]")
            claim = func.json_extract(wanted.c.value, "$[1]")
        known = or_(and_(table.c.batch_id == self.batch_id, table.c.row_number < number),
                    table.c.batch_id.in_(live_batches()))  # fmt: skip
        probe = select(table.c.row_number).where(table.c.claim_id == claim, known)
        if self._writes.postgres:  # see _probed: a lateral its LIMIT keeps from being flattened
            found = probe.limit(1).lateral("found")
            return (select(number).select_from(wanted.outerjoin(found, true()))
                    .where(found.c.row_number.is_(None)).limit(1))  # fmt: skip
        return select(number).select_from(wanted).where(~probe.exists()).limit(1)


class _OwnPartition:
    """PostgreSQL: a batch's partition of its own (migration 0006), in the load's transaction.

    Its table is made like the events table's, numbered from the sequence outcome_partition_numbers
    (a number a rolled-back load took is not used again), with a CHECK of that number so that
    attaching it reads no row. The rows go in with no index to keep up; `index` then builds the
    unique key index (the key alone: one batch a partition) and, for claim lines, the partial
    adjusted_claim_id index, as the shared partition has them. `attach` gives it the TRUNCATE
    guard and makes it a partition: from then its rows are the events table's (and refused
    UPDATE and DELETE as every row of it)."""

    def __init__(self, connection: Connection, kind: EventType, batch_id: str) -> None:
        if not (len(batch_id) == 64 and all(c in "0123456789abcdef" for c in batch_id)):
            raise EventStoreError(f"not a batch id (a SHA-256 in hex): {batch_id!r}")
        self.connection, self.kind = connection, kind
        self.events = EVENT_TABLES[kind.name]
        self.number: int = connection.execute(select(func.nextval(PARTITION_NUMBERS))).scalar_one()
        self.name = f"{self.events.name}_p{self.number}"
        # Its rows are written without the batch id, its default here (65 bytes less a row).
        self.table = Table(self.name, MetaData(),
                           *(Column(c.name, c.type) for c in self.events.columns
                             if c.name != "batch_id"))  # fmt: skip
        self._run(
            f"CREATE TABLE {self.name} (LIKE {self.events.name} INCLUDING DEFAULTS)",
            f"ALTER TABLE {self.name} ALTER COLUMN partition_number SET DEFAULT {self.number}",
            f"ALTER TABLE {self.name} ALTER COLUMN batch_id SET DEFAULT '{batch_id}'",
            f"ALTER TABLE {self.name} ADD CONSTRAINT {self.name}_number "
            f"CHECK (partition_number = {self.number})",
        )

    @staticmethod
    def allowed(connection: Connection, kind: EventType) -> bool:
        """Whether the connection's role may: create the table in the schema, take its number,
        and attach it (a right of the events table's owner). A role that may only read and
        insert loads every batch into the shared partition."""
        may = text(
            "SELECT has_schema_privilege(current_schema(), 'CREATE') "
            "AND has_sequence_privilege(:sequence, 'USAGE') "
            "AND pg_has_role((SELECT relowner FROM pg_class "
            "WHERE oid = CAST(:events AS regclass)), 'USAGE')"
        )
        events = EVENT_TABLES[kind.name].name
        return bool(connection.scalar(may, {"sequence": PARTITION_NUMBERS, "events": events}))

    def index(self) -> None:
        """The partition's indexes, built from its rows (a repeated key is refused here)."""
        Index(f"{self.name}_key", *_unique_key(self.table, self.kind), unique=True
              ).create(self.connection)  # fmt: skip
        if self.kind.name == "claim_line":
            adjusted = self.table.c.adjusted_claim_id
            Index(f"{self.name}_adjusted", adjusted, postgresql_where=adjusted.is_not(None)
                  ).create(self.connection)  # fmt: skip

    def names_only_known_claims(self) -> bool:
        """Whether every replacement and void names a claim of an earlier row of the batch, or
        of a batch not retracted (planned on the partition's statistics, gathered first). One
        naming none never gets here: `Block.adjusting` gave the file up to the row path."""
        self._run(f"ANALYZE {self.name}")
        line, earlier, events = self.table.alias("line"), self.table.alias("earlier"), self.events
        target = line.c.adjusted_claim_id
        named_earlier = select(earlier.c.row_number).where(
            earlier.c.claim_id == target, earlier.c.row_number < line.c.row_number
        )
        named_live = select(events.c.row_number).where(
            events.c.claim_id == target, events.c.batch_id.in_(live_batches())
        )
        # PostgreSQL plans each NOT EXISTS as an anti-join, merging with the lines in the order
        # of the partial adjusted_claim_id index (which `IS NOT NULL` lets it use): 1.7 s for a
        # million lines replacing an earlier batch's, against 3.0 s by nested loops without it.
        naming_unknown = select(line.c.row_number).where(
            line.c.claim_status.in_(sorted(ADJUSTING)), target.is_not(None),
            ~named_earlier.exists(), ~named_live.exists(),
        )  # fmt: skip
        return self.connection.execute(naming_unknown.limit(1)).first() is None

    def attach(self) -> None:
        self._run(
            f"CREATE TRIGGER {self.name}_no_truncate BEFORE TRUNCATE ON {self.name} "
            "FOR EACH STATEMENT EXECUTE FUNCTION settle_append_only()",
            f"ALTER TABLE {self.events.name} ATTACH PARTITION {self.name} "
            f"FOR VALUES IN ({self.number})",
        )

    def _run(self, *statements: str) -> None:
        for statement in statements:
            self.connection.exec_driver_sql(statement)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """The rows of a chunk that typed without a problem, as their table stores them."""

    numbers: list[int]
    columns: list[list[Any]]  # each event column, in the event type's order
    extras: list[str | None]

    def extend(self, more: _Chunk) -> None:
        self.numbers.extend(more.numbers)
        for column, added in zip(self.columns, more.columns, strict=True):
            column.extend(added)
        self.extras.extend(more.extras)


class _Loading:
    """One batch being loaded: rows typed and checked chunk by chunk, written while no problem
    has been found, and every problem (up to a cap) gathered for one report.

    Rows are typed a column at a time where `outcomes.columns` vouches for them, else row by row.
    While every row so far is written, a repeated key is left to the unique (key, batch) index;
    if it refuses one, the load is run again `probing`: each chunk's keys compared among
    themselves and looked up among the rows written, to name the rows. Once a problem is found
    nothing more is written and every later chunk is probed so, either way, the report is the
    same.

    On PostgreSQL the rows go through one COPY, left open while Python types the next chunks:
    the server takes them in (indexes and all, most of its work) on the other core. It is closed
    before any query asks what was written. It runs on the connection's own transaction, so the
    batch stays all or nothing. SQLite: executemany."""

    def __init__(
        self,
        connection: Connection,
        kind: EventType,
        batch_id: str,
        where: str,
        *,
        plain: bool,
        probing: bool,
    ) -> None:
        self.connection, self.kind, self.batch_id, self.where = connection, kind, batch_id, where
        self.plain, self.probing = plain, probing
        self.table = EVENT_TABLES[kind.name]
        self.typer = RowTyper(kind, where=where)
        self._chunk_typers: dict[tuple[str, ...], ChunkTyper] = {}
        self.problems: list[Problem] = []  # the first MAX_PROBLEMS, to report
        self.found = 0  # every problem found
        self.count = 0  # rows typed without a problem
        self._chunk: _Chunk | None = None  # typed, to be checked and written
        self._writes = _Writes(connection, self.table, batch_id, text=False, probing=probing)
        # Worked out once, not per row: where each column and the row's key are in a chunk.
        self._position = {c.name: i for i, c in enumerate(kind.columns)}
        self._key = [self._position[name] for name in kind.key]
        self._key_dates = [kind.fields[name] == DATE for name in kind.key]

    def __enter__(self) -> _Loading:
        return self

    def __exit__(self, *raised: Any) -> None:
        self._writes.__exit__(*raised)  # an error aborts an open COPY, and so the transaction

    def add(
        self,
        numbers: Sequence[int],
        names: Sequence[tuple[str, ...]],
        cells: Sequence[Sequence[str | None]],
    ) -> None:
        """Type some rows (their numbers, column names and cells) into the chunk; a full chunk
        is checked and written."""
        if not numbers:
            return
        typed = self._typed(numbers, names, cells)
        self.count += len(typed.numbers)
        if self._chunk is None:
            self._chunk = typed
        else:
            self._chunk.extend(typed)
        if len(self._chunk.numbers) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        """Check the chunk, and write it while no problem has been found."""
        chunk, self._chunk = self._chunk, None
        if chunk is None or not chunk.numbers:
            return
        self._report(self._duplicate_keys(chunk))
        if self.kind.name == "claim_line":
            self._report(self._unknown_adjusted_claims(chunk))
        if not self.problems:  # else keep checking the rest of the file, write nothing more
            self._write(chunk)

    def finish(self) -> None:
        self._flush()
        self._writes.close()
        if self.count == 0 and not self.problems:
            self._report([row_problem(self.where, 0, None, None, "the file has no rows")])
        if self.problems:
            shown = f" (the first {MAX_PROBLEMS} are shown)" if self.found > MAX_PROBLEMS else ""
            message = f"nothing was loaded: {self.found} problem(s){shown}"
            raise RuleError([Problem(self.where, message), *self.problems])

    def _report(self, problems: Sequence[Problem]) -> None:
        self.found += len(problems)
        room = MAX_PROBLEMS - len(self.problems)
        self.problems.extend(problems[: max(room, 0)])

    def _typed(
        self,
        numbers: Sequence[int],
        names: Sequence[tuple[str, ...]],
        rows: Sequence[Sequence[str | None]],
    ) -> _Chunk:
        """The chunk typed a column at a time when its rows share their names (a CSV's do) and
        every cell is of a shape vouched for; else row by row, reporting each problem."""
        first = names[0]
        if names.count(first) == len(names):
            typer = self._chunk_typers.get(first)
            if typer is None:
                if len(self._chunk_typers) >= 64:
                    self._chunk_typers.clear()
                typer = self._chunk_typers[first] = ChunkTyper(self.kind, first, places=_PLACES)
            columns = typer.columns(rows)
            if columns is not None:
                return _Chunk(list(numbers), columns, typer.extras(rows, plain=self.plain))
        good: list[TypedRow] = []
        for number, name, cells in zip(numbers, names, rows, strict=True):
            typed, problems = self.typer.type(number, name, cells)
            if typed is None:
                self._report(problems)
            else:
                good.append(typed)
        columns = [[self._stored(c, row.values[c.name]) for row in good] for c in self.kind.columns]
        extras = [extra_text(row.extra) for row in good]
        return _Chunk([row.number for row in good], columns, extras)

    @staticmethod
    def _stored(column: EventColumn, value: Any) -> Any:
        """A typed value as the chunk typer stores it: scaled integers, dates as ISO text."""
        if value is None:
            return None
        if column.type == DATE:
            return value.isoformat()
        return to_database(column.type, value)

    def _write(self, chunk: _Chunk) -> None:
        self._writes.columns([chunk.numbers, *chunk.columns, chunk.extras])

    def _duplicate_keys(self, chunk: _Chunk) -> list[Problem]:
        """Keys repeated within the chunk, or of rows of this batch already written. Left to the
        unique index while every row so far is written; looked for here (and probed for among
        the rows written) once a problem is found, or when loading again to name the rows."""
        if not (self.probing or self.problems):
            return []
        problems = []
        first: dict[tuple[Any, ...], int] = {}
        keys = zip(*(chunk.columns[i] for i in self._key), strict=True)
        for number, key in zip(chunk.numbers, keys, strict=True):
            if key in first:
                problems.append(self._repeat(number, first[key], key))
            first.setdefault(key, number)
        for number, *values in self._written(list({key[0] for key in first})):
            key = tuple(v.isoformat() if isinstance(v, dt.date) else v for v in values)
            if key in first:
                problems.append(self._repeat(first[key], number, key))
        return problems

    def _written(self, firsts: list[Any]) -> Iterable[Sequence[Any]]:
        """(row number, *key) of the rows of this batch already written whose key starts with
        one of `firsts`: one probe of the unique (key, batch) index per value (it reads the
        other batches' rows of that value too: on the path that names repeated keys only)."""
        self._writes.close()  # the probe must see every row written so far
        table, key = self.table, [self.table.c[name] for name in self.kind.key]
        if self._writes.postgres:
            wanted = _each(key[0], firsts)
            probe = select(table.c.row_number, *key).where(
                table.c.batch_id == self.batch_id, key[0] == wanted.c.value
            )
            return self.connection.execute(_probed(wanted, probe.offset(0)))
        # SQLite answers a scalar IN on the key's first column from that index; a row-value IN of
        # thousands of tuples it does not (minutes at 200k rows).
        return self.connection.execute(
            select(table.c.row_number, *key).where(table.c.batch_id == self.batch_id,
                                                  key[0].in_(_json_each(firsts)))
        )  # fmt: skip

    def _known_claims(self, named: set[Any]) -> set[Any]:
        """Which of the claims `named` are in this batch or one not retracted: one probe of the
        unique (claim, line, batch) index a claim, however many batches there are."""
        self._writes.close()
        table = self.table
        known = or_(table.c.batch_id == self.batch_id, table.c.batch_id.in_(live_batches()))
        if self._writes.postgres:
            wanted = _each(table.c.claim_id, list(named))
            probe = select(table.c.claim_id).where(table.c.claim_id == wanted.c.value, known)
            return set(self.connection.scalars(_probed(wanted, probe.limit(1))))
        return set(self.connection.scalars(
            select(table.c.claim_id).distinct().where(
                table.c.claim_id.in_(_json_each(list(named))), known
            )
        ))  # fmt: skip

    def _repeat(self, number: int, first: int, values: tuple[Any, ...]) -> Problem:
        shown = (dt.date.fromisoformat(v) if is_date and v is not None else v
                 for v, is_date in zip(values, self._key_dates, strict=True))  # fmt: skip
        named = ", ".join(f"{k} {v!r}" for k, v in zip(self.kind.key, shown, strict=True))
        reason = f"repeats the key of row {first} ({named}) in the same batch"
        return row_problem(self.where, number, None, None, reason)

    def _unknown_adjusted_claims(self, chunk: _Chunk) -> list[Problem]:
        problems: list[Problem] = []
        statuses = chunk.columns[self._position["claim_status"]]
        if not ADJUSTING.intersection(statuses):
            return problems  # only a replacement or a void can name a claim wrongly
        targets = chunk.columns[self._position["adjusted_claim_id"]]
        claims = chunk.columns[self._position["claim_id"]]
        named = {t for s, t in zip(statuses, targets, strict=True) if s in ADJUSTING and t}
        known = self._known_claims(named) if named else set()
        seen_in_chunk: set[Any] = set()
        for number, status, target, claim in zip(
            chunk.numbers, statuses, targets, claims, strict=True
        ):
            why = None
            if status in ADJUSTING and not target:
                why = "a replacement or void names the claim it adjusts"
            elif status in ADJUSTING and target not in known and target not in seen_in_chunk:
                why = "adjusts a claim that was never loaded"
            if why is not None:
                problems.append(row_problem(self.where, number, "adjusted_claim_id", target, why))
            seen_in_chunk.add(claim)
        return problems


# PostgreSQL keeps no statistics on the rows a transaction is writing, nor yet on a batch just
# loaded. Asked `batch_id = b AND claim_id = ANY(...)` it may read every row of the batch and
# filter them: each chunk of a large load then reads all the rows before it, which is quadratic.
# One probe per value, a lateral subquery kept from being flattened into a join by its LIMIT or
# OFFSET, leaves it only the indexes that answer a value at a time.


def _each(column: Any, values: list[Any]) -> Any:
    """The values, one row each, as `wanted.value`."""
    array = bindparam("wanted", values, type_=ARRAY(column.type))
    return func.unnest(array).table_valued("value").render_derived(name="wanted")


def _json_each(values: list[Any]) -> Select[Any]:
    """SQLite: the values as one JSON array parameter, so that the statement (and its entry in
    the driver's statement cache) is the same whatever the number of values."""
    array = bindparam("wanted", json.dumps(values), type_=Text())
    return select(func.json_each(array).table_valued("value").c.value)


def _probed(wanted: Any, probe: Select[Any]) -> Select[Any]:
    """The rows `probe` finds for each wanted value."""
    found = probe.lateral("found")
    return select(found).select_from(wanted).join(found, true())

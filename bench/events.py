"""Outcome event ingest, measured side by side in one run (`make bench-events`):

1. PostgreSQL: `EventStore.load` of N claim lines against the floor, a bare COPY of the same CSV
   into an unindexed table of text columns;
2. SQLite: `EventStore.load` against the floor, `executemany` of the same rows (read by the csv
   module, the same columns, cells as text) in one transaction into an unindexed table;
3. the peak memory of each load, which runs in a child process of its own (ru_maxrss).

For reference, each database's own cost of the events table with no Python at all: PostgreSQL
inserting the copied rows, cast, into a partition of the events table made, indexed and attached
as the load makes one (INSERT … SELECT), SQLite the same executemany into the events table.

The file is the Tuva synthetic medical claims repeated and re-keyed (claim_id prefixed per copy):
by default the full file in ../shared (137 columns, 110 of them kept as extras), else the
repository's copy; `--source fixtures/tuva/medical_claim.csv` takes the repository's copy, cut
to the 27 columns Settle reads.

Where PostgreSQL's load goes. The file is plain, so pyarrow reads and types it
(outcomes/fast_csv.py) on two threads while the server takes the COPY in: the two cores are
busy, and the load is as fast as the CPU time it spends. Until now the load was 2.15-2.57x a bare
COPY at 3,000,000 lines (target 2x), now 1.38-1.53x. What took it there (at 1,000,000 lines):
- the unique (key, batch) index kept up row by row cost the server about as much as the bare
  COPY. A file this large is a partition of its own (migration 0006), indexed once its rows are
  in: 0.5 s, 1.8-2.3 s at 3,000,000 lines;
- the rows go to COPY in its text format, not as CSV (whose quoting doubled each quote of the
  JSON of the other cells), and a partition's rows without their batch id (its column default,
  64 characters a row): the server's COPY of the same rows, 2.8 s as CSV, 1.9 s;
- the JSON of the 110 other cells is built from the non-empty ones alone, 3.9 a row: 10 ms a
  block of 8,000 lines, now 4 ms;
- no text column is checked for a cell padded with spaces, nor any cell for its length, where
  the block's bytes rule it out at a glance (no space next to a delimiter; a line end every half
  megabyte); a block of ASCII is not checked to be UTF-8: the column checks, 1.1 s, now 0.7 s;
- two threads type blocks side by side: pyarrow's side alone, 4.45 s on one, 1.7 s now.
With only Settle's 27 columns (--source fixtures/tuva/medical_claim.csv) a bare COPY is cheap
(1.1 s) and the load is 2.17x it (4.17x before), 0.68x the table's own cost: the index build is
half the bare COPY on its own.
Tried and dropped: COPY FREEZE into the new partition (no faster to load; the first read after it
0.07 s faster); more memory for the index build (maintenance_work_mem 256 MB: no faster); the
index in the "C" collation (1.75 s, 1.28 s at 3,000,000 lines: it would take every text column
of the events tables into that collation, for 4% of the load); blocks of 4 MB (no faster, 30 MB
more at the peak).

Files pyarrow does not vouch for (quoted, or with a cell only the row path judges) are typed in
Python, into the shared partition: 3.75-3.86x on PostgreSQL at 3,000,000 lines before this
change, the csv module reading 137 cells a row 0.8x on its own, typing the 27 event columns
1.0x, the other cells' JSON 0.7x, handing rows to COPY 0.7x. Tried there and dropped: typing in
a helper process (chunks pickled through a pipe: slower, SQLite 37.6 s against 26.5 s for
1,000,000 lines); building COPY text column-wise (no faster); typing in SQL after a COPY into a
staging table (5.1x).

SQLite has no other core to give the server: its load is the floor's work plus typing, now on
two threads, 1.18-1.19x (1.49-1.60x before, on one). pyarrow's own streaming reader reads
hundreds of megabytes ahead of its consumer; the fast path hands it 1.5 MB of whole lines at a
time, two blocks at once, which keeps the load's peak near 255 MB.

Usage: python bench/events.py [--lines 3000000] [--source CSV] [--postgres URL]
"""

from __future__ import annotations

import argparse
import csv
import resource
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from api.database import engine_from_url  # noqa: E402
from api.schema import upgrade_to_head  # noqa: E402
from outcomes.events import CLAIM_LINE  # noqa: E402
from outcomes.store import EVENT_TABLES, EventStore, _OwnPartition  # noqa: E402
from rules.types import COUNT, DATE, MONEY  # noqa: E402

TUVA = ROOT.parent / "shared" / "data" / "tuva-synthetic" / "medical_claim.csv"
FIXTURE = ROOT / "fixtures" / "tuva" / "medical_claim.csv"  # the default where ../shared is absent
TARGET_RATIO = 2.0
TARGET_PEAK_MB = 300
BLOCK = 1 << 20
BATCH_ID = "f" * 64  # the floors' rows, in a batch of their own, rolled back
BATCH_ROW = ("INSERT INTO outcome_batches (batch_id, event_type, source, learned_at) "
             "VALUES (%s, 'claim_line', 'floor', CURRENT_TIMESTAMP)")  # fmt: skip


def fresh_schema(server: str) -> tuple[str, str]:
    """A new PostgreSQL schema of its own for one run, and the URL that works in it."""
    schema = f"settle_bench_{secrets.token_hex(6)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in server else "?"
    return schema, f"{server}{separator}options={quote(f'-csearch_path={schema}')}"


def drop_schema(server: str, schema: str) -> None:
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def build_claims(path: Path, lines: int, source: Path = TUVA) -> None:
    """`lines` claim lines: the Tuva file over and over, claim_id prefixed `b<copy>-` each time."""
    header, *body = source.read_text(encoding="utf-8").splitlines()
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(header + "\n")
        written, copy = 0, 0
        while written < lines:
            for line in body[: lines - written]:
                handle.write(f"b{copy}-{line}\n")  # claim_id is the first column
            written += min(len(body), lines - written)
            copy += 1


def timed_load(url: str, path: str) -> tuple[float, int, float, float]:
    """In a fresh child process: (seconds, rows, MB before the load, peak MB)."""
    engine = engine_from_url(url)
    store = EventStore(engine)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    result = store.load(path, "claim_line")
    seconds = time.perf_counter() - began
    engine.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return seconds, result.batch.rows, before, peak


def load_in_child(url: str, path: Path) -> tuple[float, int, float, float]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as child:
        return child.submit(timed_load, url, str(path)).result()


def postgres_floors(url: str, path: Path) -> tuple[float, float]:
    """(a bare COPY of the whole CSV, streamed as it is, into an unindexed table of text; then
    PostgreSQL's own INSERT … SELECT of those rows, cast, into a partition of the events table
    made, indexed and attached as the load makes one, rolled back). The second is what the table
    costs with no Python at all; extras are left out."""
    with path.open("r", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    table = sql.Identifier(f"bench_copy_{secrets.token_hex(4)}")
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in header)
    with psycopg.connect(url) as connection:
        connection.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns))
        connection.commit()
        began = time.perf_counter()
        with connection.transaction(), connection.cursor() as cursor:
            copy = sql.SQL("COPY {} FROM STDIN WITH (FORMAT csv, HEADER true)").format(table)
            with cursor.copy(copy) as stream, path.open("rb") as source:
                for block in iter(lambda: source.read(BLOCK), b""):
                    stream.write(block)
        bare = time.perf_counter() - began
        indexed = _into_a_partition(url, table, set(header))
        connection.execute(sql.SQL("DROP TABLE {}").format(table))
        connection.commit()
    return bare, indexed


def _into_a_partition(url: str, source: sql.Identifier, present: set[str]) -> float:
    engine = engine_from_url(url)
    try:
        with engine.connect() as connection:
            driver = connection.connection.driver_connection
            began = time.perf_counter()
            with connection.begin() as transaction:
                driver.execute(BATCH_ROW, (BATCH_ID,))
                partition = _OwnPartition(connection, CLAIM_LINE, BATCH_ID)
                driver.execute(_insert_select(source, present, partition.name))
                partition.index()
                partition.attach()
                seconds = time.perf_counter() - began
                transaction.rollback()
        return seconds
    finally:
        engine.dispose()


def _insert_select(source: sql.Identifier, present: set[str], target: str) -> sql.Composed:
    """The rows of `source`, cast, into `target` (a partition: its batch id is its default)."""
    names, values = [], []
    for column in CLAIM_LINE.columns:
        names.append(sql.Identifier(column.name))
        cell = sql.SQL("nullif({}, '')").format(sql.Identifier(column.name))
        if column.name not in present:
            values.append(sql.NULL)
        elif column.type == MONEY:
            values.append(sql.SQL("({}::numeric * 10000)::bigint").format(cell))
        elif column.type == COUNT:
            values.append(sql.SQL("{}::bigint").format(cell))
        elif column.type == DATE:
            values.append(sql.SQL("{}::date").format(cell))
        else:
            values.append(cell)
    return sql.SQL(
        "INSERT INTO {} (row_number, {}) SELECT row_number() OVER (), {} FROM {}"
    ).format(sql.Identifier(target), sql.SQL(", ").join(names),
             sql.SQL(", ").join(values), source)  # fmt: skip


def sqlite_floor(database: str, path: Path, *, table: str) -> float:
    """executemany of the rows the store keeps (the event columns, cells as read, empty ones as
    NULL) in one transaction, on a connection configured as the store's are."""
    names = [column.name for column in EVENT_TABLES["claim_line"].columns]  # batch_id … extra
    engine = engine_from_url(database)
    connection = engine.raw_connection()
    cursor = connection.cursor()
    if table == "floor":
        cursor.execute(f"CREATE TABLE floor ({', '.join(names)})")
    connection.commit()
    began = time.perf_counter()
    if table != "floor":
        cursor.execute(BATCH_ROW.replace("%s", "?"), (BATCH_ID,))
    with path.open("r", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        where = {name: index for index, name in enumerate(header)}
        picked = [where.get(name) for name in names[2:-1]]  # None: a column the file lacks

        def rows() -> Iterator[tuple[object, ...]]:
            for number, cells in enumerate(reader, start=2):
                kept = (cells[i] or None if i is not None else None for i in picked)
                yield (BATCH_ID, number, *kept, None)

        placeholders = ", ".join("?" * len(names))
        cursor.executemany(f"INSERT INTO {table} VALUES ({placeholders})", rows())
    if table == "floor":
        connection.commit()  # a transaction's cost includes its commit, as the load's does
        seconds = time.perf_counter() - began
    else:
        seconds = time.perf_counter() - began  # for reference only: rolled back
        connection.rollback()
    connection.close()
    engine.dispose()
    return seconds


def report(
    backend: str, lines: int, load: tuple[float, int, float, float], floors: dict[str, float]
) -> None:
    """The load, each floor, and the load's ratio to each: the first floor is the target's."""
    seconds, rows, before, peak = load
    assert rows == lines, f"loaded {rows:,} rows, expected {lines:,}"
    print(f"{backend}:")
    print(f"  EventStore.load                 {seconds:8.2f} s {rows / seconds:10,.0f} rows/s")
    for number, (name, floor) in enumerate(floors.items()):
        print(f"  {name:31} {floor:8.2f} s {rows / floor:10,.0f} rows/s  load is "
              f"{seconds / floor:5.2f}x", end="")  # fmt: skip
        if number == 0:
            missed = "" if seconds / floor <= TARGET_RATIO else "  MISSED"
            print(f" (target: within {TARGET_RATIO:g}x){missed}")
        else:
            print(" (for reference: the events table's own cost)")
    missed = "" if peak < TARGET_PEAK_MB else "  MISSED"
    print(f"  peak memory of the load         {peak:8.0f} MB ({before:.0f} MB before it; target: "
          f"under {TARGET_PEAK_MB} MB){missed}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--source", type=Path, default=TUVA if TUVA.is_file() else FIXTURE)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    arguments = parser.parse_args()
    lines, source = arguments.lines, arguments.source
    if not source.is_file():
        parser.error(f"no {source}: give --source fixtures/tuva/medical_claim.csv")

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        claims = folder / "claims.csv"
        began = time.perf_counter()
        build_claims(claims, lines, source)
        size = claims.stat().st_size / 1e6
        with source.open(encoding="utf-8") as handle:
            columns = len(next(csv.reader(handle)))
        print(f"{lines:,} claim lines from {source} ({columns} columns), {size:,.0f} MB, written "
              f"in {time.perf_counter() - began:.1f} s")  # fmt: skip

        schema, url = fresh_schema(arguments.postgres)
        try:
            engine = engine_from_url(url)
            upgrade_to_head(engine)
            engine.dispose()
            bare, indexed = postgres_floors(url, claims)
            load = load_in_child(url, claims)
            floors = {"bare COPY, unindexed, text": bare, "INSERT … SELECT, events table": indexed}
            report("PostgreSQL", lines, load, floors)
        finally:
            drop_schema(arguments.postgres, schema)

        database = f"sqlite:///{folder / 'settle.db'}"
        engine = engine_from_url(database)
        upgrade_to_head(engine)
        engine.dispose()
        bare = sqlite_floor(f"sqlite:///{folder / 'floor.db'}", claims, table="floor")
        indexed = sqlite_floor(database, claims, table="events_claim_line")
        load = load_in_child(database, claims)
        floors = {"executemany, unindexed": bare, "executemany, events table": indexed}
        report("SQLite", lines, load, floors)


if __name__ == "__main__":
    main()

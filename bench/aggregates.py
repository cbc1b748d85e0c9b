"""Contract aggregates over N claim lines, measured side by side in one run
(`make bench-aggregates`):

1. on PostgreSQL and on SQLite, `outcomes.aggregates.compute` of the MSSP template's
   `expenditure` (the sum of paid_amount over attributed people's claim lines), and the same
   with a per-person cap at the 99th percentile, against the fastest of several hand-written SQL
   queries for the same number on the same database (target: within 1.2x);
2. DuckDB computing the same number straight from the same CSV files, for reference;
3. the plan of the compiled query: EXPLAIN ANALYZE on PostgreSQL, EXPLAIN QUERY PLAN on SQLite.
Every number must be the same, to the cent; each time is the median of several runs after one
to warm up.

The claims are bench/events.py's: the Tuva synthetic claims repeated and re-keyed, claim_id
prefixed per copy, and here patient_id too (each copy a population of its own, so N lines have
about N / 70 people, as many lines a person as Medicare's average). Around them, the history an
aggregate must read through: a batch of adjustments (about 1% of claims replaced, a tenth of
those replaced again or voided, 0.5% voided), an attribution batch (most people attributed for
2018, some for part of it, some only for 2017, some twice, some not at all), a batch sent in
error and retracted, and a batch learned after the cutoff.
Usage: python bench/aggregates.py [--lines 3000000] [--runs 5] [--source CSV] [--postgres URL]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import sqlite3
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402
from sqlalchemy import Date, Engine, bindparam, event, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from api.database import UtcDateTime, engine_from_url, utc_now  # noqa: E402
from api.schema import upgrade_to_head  # noqa: E402
from bench.events import FIXTURE, TUVA, build_claims, drop_schema, fresh_schema  # noqa: E402
from contracts.model import Aggregate  # noqa: E402
from contracts.validate import load_contract_file  # noqa: E402
from outcomes.aggregates import Window, compile_aggregate, compute  # noqa: E402
from outcomes.events import CLAIM_LINE  # noqa: E402
from outcomes.store import MONEY_SCALE, EventStore  # noqa: E402

TEMPLATE = ROOT / "contracts" / "templates" / "mssp.yaml"
TARGET_RATIO = 1.2
START, END = dt.date(2018, 1, 1), dt.date(2018, 12, 31)  # the Tuva claims' year
CAP = "expenditure_cap"  # the per-person cap's parameter, set to the 99th percentile


# The history: files, loaded as batches ------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class History:
    claims: Path
    adjustments: Path  # replacements and voids
    attribution: Path
    retracted: Path  # voids and duplicates sent in error, retracted after loading
    late: Path  # voids learned after the cutoff

    def loads(self) -> list[tuple[Path, str]]:
        return [(self.claims, "claim_line"), (self.adjustments, "claim_line"),
                (self.attribution, "attribution"), (self.retracted, "claim_line")]  # fmt: skip


def build_history(folder: Path, lines: int, source: Path) -> History:
    """The claims (bench/events.py's file, people re-keyed per copy) and the batches around them.
    A claim's fate is drawn from a hash of its id, so the same --lines give the same history."""
    repeated = folder / "repeated.csv"
    build_claims(repeated, lines, source)
    history = History(*(folder / f"{name}.csv" for name in
                        ("claims", "adjustments", "attribution", "retracted", "late")))  # fmt: skip
    adjusted: dict[str, list[dict[str, str]]] = {"adjustments": [], "retracted": [], "late": []}
    people: set[str] = set()
    with repeated.open(encoding="utf-8") as lines_in, history.claims.open("w") as claims:
        header = next(lines_in)
        names = next(csv.reader([header]))
        assert names[:4] == ["claim_id", "claim_line_number", "claim_type", "patient_id"], names
        claims.write(header)
        for line in lines_in:
            claim_id, number, claim_type, patient, rest = line.split(",", 4)
            person = claim_id[: claim_id.index("-") + 1] + patient  # `b<copy>-` + patient_id
            people.add(person)
            claims.write(f"{claim_id},{number},{claim_type},{person},{rest}")
            fate = _draw(claim_id, 1000)
            if fate < 30:
                row = dict(zip(names, next(csv.reader([line])), strict=True))
                row["patient_id"] = person
                batch = "adjustments" if fate < 15 else "retracted" if fate < 25 else "late"
                adjusted[batch].append(row)
    repeated.unlink()
    _write_claim_lines(history.adjustments, _adjustments(adjusted["adjustments"]))
    _write_claim_lines(history.retracted, _sent_in_error(adjusted["retracted"]))
    _write_claim_lines(history.late, _voids(adjusted["late"], "l"))
    _write_attribution(history.attribution, sorted(people))
    return history


def _draw(key: str, sides: int) -> int:
    return zlib.crc32(key.encode()) % sides


def _adjustments(lines: list[dict[str, str]]) -> Iterator[dict[str, str]]:
    """Of the claims drawn (1.5%): two in three replaced, at 90% of their paid amount (and of
    those, one in ten replaced again, one in ten voided after replacement); one in three voided."""
    replaced = [line for line in lines if _draw(line["claim_id"], 1000) < 10]
    yield from _replacements(replaced, "r1", Decimal("0.9"))
    again = [line for line in replaced if _draw(line["claim_id"], 100) < 10]
    yield from _replacements(_replacements(again, "r1", Decimal("0.9")), "r2", Decimal("0.8"))
    voided_after = [line for line in replaced if 10 <= _draw(line["claim_id"], 100) < 20]
    yield from _voids(list(_replacements(voided_after, "r1", Decimal("0.9"))), "v")
    yield from _voids([line for line in lines if _draw(line["claim_id"], 1000) >= 10], "v")


def _replacements(
    lines: Iterator[dict[str, str]] | list[dict[str, str]], prefix: str, share: Decimal
) -> Iterator[dict[str, str]]:
    for line in lines:
        paid = (Decimal(line["paid_amount"]) * share).quantize(Decimal("0.01"))
        yield {**line, "claim_id": f"{prefix}-{line['claim_id']}", "paid_amount": str(paid),
               "claim_status": "replacement", "adjusted_claim_id": line["claim_id"]}  # fmt: skip


def _voids(lines: list[dict[str, str]], prefix: str) -> Iterator[dict[str, str]]:
    """One void line a claim, its paid amount the negative of the claim's first line."""
    seen: set[str] = set()
    for line in lines:
        if line["claim_id"] not in seen:
            seen.add(line["claim_id"])
            yield {**line, "claim_id": f"{prefix}-{line['claim_id']}", "claim_line_number": "1",
                   "paid_amount": str(-Decimal(line["paid_amount"])), "claim_status": "void",
                   "adjusted_claim_id": line["claim_id"]}  # fmt: skip


def _sent_in_error(lines: list[dict[str, str]]) -> Iterator[dict[str, str]]:
    """Voids of half the claims drawn, and the other half's lines twice under new ids."""
    yield from _voids([line for line in lines if _draw(line["claim_id"], 2) == 0], "x")
    for line in lines:
        if _draw(line["claim_id"], 2) == 1:
            yield {**line, "claim_id": f"d-{line['claim_id']}"}


def _write_claim_lines(path: Path, lines: Iterator[dict[str, str]]) -> None:
    names = [column.name for column in CLAIM_LINE.columns]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, names, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(lines)


def _write_attribution(path: Path, people: list[str]) -> None:
    """88% attributed for 2018, 4% for its second half, 3% only for 2017, 5% never; 5% of the
    attributed a second time, to another provider (a person counts once)."""
    periods = [("2018-01-01", "2018-12-31")] * 88 + [("2018-07-01", "2018-12-31")] * 4
    periods += [("2017-01-01", "2017-12-31")] * 3
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patient_id", "provider_id", "period_start", "period_end"])
        for person in people:
            fate = _draw(person, 100)
            if fate < len(periods):
                writer.writerow([person, "aco-1", *periods[fate]])
                if _draw(person + "#", 100) < 5:
                    writer.writerow([person, "aco-2", *periods[fate]])


def load_history(url: str, history: History) -> dt.datetime:
    """Load every batch, retract the one sent in error, and return the cutoff: after all that,
    before the late batch is learned."""
    engine = engine_from_url(url)
    try:
        upgrade_to_head(engine)
        store = EventStore(engine)
        for path, event_type in history.loads():
            result = store.load(path, event_type)
        store.retract(result.batch.batch_id, reason="sent in error")
        as_of = utc_now()
        time.sleep(0.01)
        store.load(history.late, "claim_line")
        if engine.dialect.name == "postgresql":
            with engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")
        return as_of
    finally:
        engine.dispose()


# What is measured ----------------------------------------------------------------------------


def expenditure_aggregates() -> dict[str, Aggregate]:
    """The MSSP template's `expenditure`, as declared, and the same truncated per person."""
    contract = load_contract_file(str(TEMPLATE)).contract
    declared = {i.name: i.aggregate for i in contract.inputs if i.aggregate is not None}
    expenditure = declared["expenditure"]
    truncated = dataclasses.replace(expenditure, per_person_cap=CAP)
    return {"expenditure": expenditure, "expenditure, capped per person": truncated}


def contract_parameters() -> dict[str, Any]:
    contract = load_contract_file(str(TEMPLATE)).contract
    return {p.name: found.value for p in contract.parameters
            if (found := p.in_force(START)) is not None}  # fmt: skip


# The hand-written queries: the same semantics, each written for its database. The visible
# batches: learned by the cutoff and not retracted by it; a claim's final version: no visible
# replacement or void names it; voids are left out; attributed: a visible attribution overlapping
# the period. {total} is the sum, or the per-person sums to be capped.

VISIBLE = """SELECT b.batch_id FROM outcome_batches b WHERE b.learned_at <= :as_of
  AND NOT EXISTS (SELECT 1 FROM outcome_retractions r
                  WHERE r.batch_id = b.batch_id AND r.retracted_at <= :as_of)"""
ATTRIBUTED = """SELECT t.patient_id FROM events_attribution t
  WHERE t.batch_id IN (SELECT batch_id FROM visible)
    AND t.period_start <= :end AND t.period_end >= :start"""
ADJUSTED = """SELECT a.adjusted_claim_id FROM events_claim_line a
  WHERE a.claim_status IN ('replacement', 'void') AND a.adjusted_claim_id IS NOT NULL
    AND a.batch_id IN (SELECT batch_id FROM visible)"""
LINES = """c.batch_id IN (SELECT batch_id FROM visible)
  AND c.claim_start_date BETWEEN :start AND :end
  AND (c.claim_status IS NULL OR c.claim_status <> 'void')"""
NOT_EXISTS = f"""
WITH visible AS ({VISIBLE})
SELECT {{total}} FROM events_claim_line c
WHERE {LINES}
  AND NOT EXISTS (SELECT 1 FROM events_claim_line a
                  WHERE a.adjusted_claim_id = c.claim_id
                    AND a.claim_status IN ('replacement', 'void')
                    AND a.batch_id IN (SELECT batch_id FROM visible))
  AND c.patient_id IN ({ATTRIBUTED})"""
NOT_IN = f"""
WITH visible AS ({VISIBLE})
SELECT {{total}} FROM events_claim_line c
WHERE {LINES}
  AND c.claim_id NOT IN ({ADJUSTED})
  AND c.patient_id IN ({ATTRIBUTED})"""
JOINS = f"""
WITH visible AS ({VISIBLE}),
  adjusted AS (SELECT DISTINCT adjusted_claim_id FROM ({ADJUSTED}) a),
  attributed AS (SELECT DISTINCT patient_id FROM ({ATTRIBUTED}) t)
SELECT {{total}} FROM events_claim_line c
  JOIN attributed ON attributed.patient_id = c.patient_id
  LEFT JOIN adjusted ON adjusted.adjusted_claim_id = c.claim_id
WHERE {LINES} AND adjusted.adjusted_claim_id IS NULL"""
EXCEPT = f"""
WITH visible AS ({VISIBLE}),
  final AS (SELECT claim_id FROM events_claim_line c WHERE {LINES} EXCEPT {ADJUSTED})
SELECT {{total}} FROM events_claim_line c
WHERE {LINES} AND c.claim_id IN (SELECT claim_id FROM final)
  AND c.patient_id IN ({ATTRIBUTED})"""
# SQLite: the correlated NOT EXISTS probes the adjusting lines of every visible batch for each
# line (no index leads from adjusted_claim_id), so it is left out; `+c.patient_id` keeps SQLite
# from reading the lines person by person through the patient_id index, and so scans them.
HAND_WRITTEN = {
    "postgresql": {"not exists": NOT_EXISTS, "not in": NOT_IN, "joins on sets": JOINS,
                   "except": EXCEPT},
    "sqlite": {"not in": NOT_IN, "not in, scanned": NOT_IN.replace("AND c.patient_id", "AND "
                                                                     "+c.patient_id"),
               "joins on sets": JOINS, "joins on sets, scanned": JOINS.replace(
                   "= c.patient_id", "= +c.patient_id").replace("c\n  JOIN", "c\n  CROSS JOIN"),
               "except": EXCEPT},
}  # fmt: skip
SUM = "coalesce(sum(c.paid_amount), 0)"
CAPPED = "coalesce(sum(CASE WHEN total > :cap THEN :cap ELSE total END), 0)"


def hand_written(query: str, capped: bool) -> Any:
    if capped:
        per_person = query.format(total="c.patient_id, sum(c.paid_amount) AS total")
        statement = f"SELECT {CAPPED} FROM ({per_person}\nGROUP BY c.patient_id) people"
    else:
        statement = query.format(total=SUM)
    return text(statement).bindparams(
        bindparam("as_of", type_=UtcDateTime()),
        bindparam("start", type_=Date()),
        bindparam("end", type_=Date()),
    )


def duckdb_total(history: History, finish: str) -> Decimal:
    """The same number from the CSV files (the claims, the adjustments, the attribution: what is
    visible at the cutoff), read afresh each time by DuckDB's read_csv; `finish` is the select
    over the lines kept (paid_amount, patient_id)."""
    types = "'claim_id': 'VARCHAR', 'patient_id': 'VARCHAR', 'claim_start_date': 'DATE', " \
            "'paid_amount': 'DECIMAL(18, 2)'"  # fmt: skip
    statuses = "'claim_status': 'VARCHAR', 'adjusted_claim_id': 'VARCHAR'"
    query = f"""
WITH lines AS (
  SELECT claim_id, patient_id, claim_start_date, paid_amount,
         NULL::VARCHAR AS claim_status, NULL::VARCHAR AS adjusted_claim_id
  FROM read_csv('{history.claims}', header = true, types = {{{types}}})
  UNION ALL
  SELECT claim_id, patient_id, claim_start_date, paid_amount, claim_status, adjusted_claim_id
  FROM read_csv('{history.adjustments}', header = true, types = {{{types}, {statuses}}})),
adjusted AS (SELECT adjusted_claim_id FROM lines
             WHERE claim_status IN ('replacement', 'void') AND adjusted_claim_id IS NOT NULL),
attributed AS (
  SELECT patient_id FROM read_csv('{history.attribution}', header = true,
    types = {{'patient_id': 'VARCHAR', 'period_start': 'DATE', 'period_end': 'DATE'}})
  WHERE period_start <= DATE '{END}' AND period_end >= DATE '{START}'),
kept AS (
  SELECT patient_id, paid_amount FROM lines
  WHERE claim_start_date BETWEEN DATE '{START}' AND DATE '{END}'
    AND claim_status IS DISTINCT FROM 'void'
    AND claim_id NOT IN (SELECT adjusted_claim_id FROM adjusted)
    AND patient_id IN (SELECT patient_id FROM attributed))
{finish}"""
    with duckdb.connect() as connection:
        row = connection.execute(query).fetchone()
    assert row is not None
    return Decimal(row[0])


def duckdb_finish(cap: Decimal | None) -> str:
    if cap is None:
        return "SELECT coalesce(sum(paid_amount), 0) FROM kept"
    return (f"SELECT coalesce(sum(least(total, {cap})), 0) FROM "
            "(SELECT sum(paid_amount) AS total FROM kept GROUP BY patient_id)")  # fmt: skip


PERCENTILE_99 = ("SELECT quantile_disc(total, 0.99) FROM "
                 "(SELECT sum(paid_amount) AS total FROM kept GROUP BY patient_id)")  # fmt: skip


def median_seconds(run: Callable[[], Decimal], runs: int) -> tuple[float | None, Decimal | None]:
    """(the median of `runs` timed runs after one to warm up, the value every run gave); (None,
    None) when the warm-up ran past the deadline and was stopped."""
    try:
        value = run()
    except OperationalError:
        return None, None
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        again = run()
        seconds.append(time.perf_counter() - began)
        assert again == value, f"{again} after {value}"
    return statistics.median(seconds), value


class Deadline:
    """Stops any statement running longer than `seconds`: PostgreSQL's statement_timeout, and on
    SQLite a progress handler (SQLite has no timeout of its own)."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self.seconds, self.started = seconds, time.perf_counter()
        event.listen(engine, "connect", self._configure)
        event.listen(engine, "before_cursor_execute", self._start)

    def _configure(self, dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_progress_handler(self._expired, 100_000)
        else:
            milliseconds = int(self.seconds * 1000)
            dbapi_connection.execute(f"SET statement_timeout = {milliseconds}")
            dbapi_connection.commit()

    def _start(self, *_: Any) -> None:
        self.started = time.perf_counter()

    def _expired(self) -> int:
        return int(time.perf_counter() - self.started > self.seconds)


# The run -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Measured:
    database: str
    aggregate: str
    value: Decimal | None  # None: the compiled query was stopped
    compiled: float | None
    hand: dict[str, float]  # each formulation's median

    @property
    def best(self) -> tuple[str, float]:
        return min(self.hand.items(), key=lambda item: item[1])


def measure(
    database: str, url: str, window: Window, parameters: dict[str, Any], runs: int, give_up: float
) -> tuple[list[Measured], list[str]]:
    """Each aggregate, compiled and hand-written (each formulation), on one database, every value
    checked equal; and the compiled queries' plans."""
    engine = engine_from_url(url)
    Deadline(engine, give_up)
    results, plans = [], []
    binds = {"as_of": window.as_of, "start": window.start, "end": window.end,
             "cap": int(Decimal(parameters[CAP]) * MONEY_SCALE)}  # fmt: skip
    try:
        for name, aggregate in expenditure_aggregates().items():
            compiled, value = median_seconds(
                lambda aggregate=aggregate: compute(engine, aggregate, window, parameters), runs
            )
            hand = {}
            for formulation, query in HAND_WRITTEN[engine.dialect.name].items():
                statement = hand_written(query, aggregate.per_person_cap is not None)

                def run(statement: Any = statement) -> Decimal:
                    with engine.connect() as connection:
                        total = connection.execute(statement, binds).scalar_one()
                    return Decimal(total) / MONEY_SCALE

                seconds, given = median_seconds(run, runs)
                assert seconds is not None, f"{database}, {name}, {formulation}: stopped"
                assert value is None or given == value, (
                    f"{database}, {name}, {formulation}: {given}, compiled {value}"
                )
                value, hand[formulation] = given, seconds
            results.append(Measured(database, name, value, compiled, hand))
            plan = explain(engine, aggregate, window, parameters, analyze=compiled is not None)
            plans.append(f"{database}, {name}, the compiled query:\n{plan}")
    finally:
        engine.dispose()
    return results, plans


def explain(
    engine: Engine, aggregate: Aggregate, window: Window, parameters: Any, *, analyze: bool
) -> str:
    """The compiled query's plan: as run on PostgreSQL (unless it was stopped), as planned on
    SQLite."""
    query = compile_aggregate(aggregate, window, parameters)
    literal = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            how = "ANALYZE, BUFFERS" if analyze else "COSTS"
            rows = connection.exec_driver_sql(f"EXPLAIN ({how}) {literal}").all()
            return "\n".join("  " + row[0] for row in rows)
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {literal}").all()
        return "\n".join(f"  {row[3]}" for row in rows)


def report(results: list[Measured], duckdb_seconds: dict[str, float], give_up: float) -> None:
    print(f"{'aggregate':32} {'database':11} {'compiled':>10} {'best hand-written SQL':>32} "
          f"{'ratio':>7} {'DuckDB, CSV':>12}")  # fmt: skip
    for result in results:
        formulation, best = result.best
        if result.compiled is None:
            compiled, ratio = f"> {give_up:.0f} s", f"> {give_up / best:.0f}x"
        else:
            compiled, ratio = f"{result.compiled:8.3f} s", f"{result.compiled / best:6.2f}x"
        print(f"{result.aggregate:32} {result.database:11} {compiled:>10} "
              f"{f'{best:.3f} s ({formulation})':>32} {ratio:>7} "
              f"{duckdb_seconds[result.aggregate]:10.3f} s")  # fmt: skip
    print("every hand-written formulation (median seconds):")
    for result in results:
        tried = ", ".join(f"{name} {seconds:.3f}" for name, seconds in result.hand.items())
        print(f"  {result.database}, {result.aggregate}: {tried}")
    for result in results:
        _, best = result.best
        met = result.compiled is not None and result.compiled / best <= TARGET_RATIO
        print(f"target, compiled within {TARGET_RATIO:g}x of the best hand-written SQL, "
              f"{result.database}, {result.aggregate}: {'met' if met else 'MISSED'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs after one to warm up")
    parser.add_argument("--give-up", type=float, default=120, help="stop a query after (s)")
    parser.add_argument("--source", type=Path, default=TUVA if TUVA.is_file() else FIXTURE)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    arguments = parser.parse_args()
    lines, source, runs = arguments.lines, arguments.source, arguments.runs
    give_up = arguments.give_up
    if not source.is_file():
        parser.error(f"no {source}: give --source fixtures/tuva/medical_claim.csv")

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        began = time.perf_counter()
        history = build_history(folder, lines, source)
        counts = {path.stem: _rows(path) for path in (history.claims, history.adjustments,
                  history.attribution, history.retracted, history.late)}  # fmt: skip
        print(f"{lines:,} claim lines from {source}, and the batches around them, written in "
              f"{time.perf_counter() - began:.1f} s: "
              + ", ".join(f"{stem} {count:,}" for stem, count in counts.items()))  # fmt: skip

        began = time.perf_counter()
        finish_cap = PERCENTILE_99
        cap = duckdb_total(history, finish_cap).quantize(Decimal("0.01"))
        parameters = {**contract_parameters(), CAP: cap}
        duckdb_seconds, duckdb_values = {}, {}
        for aggregate in expenditure_aggregates():
            finish = duckdb_finish(cap if "capped" in aggregate else None)
            seconds, value = median_seconds(lambda f=finish: duckdb_total(history, f), runs)
            assert seconds is not None and value is not None
            duckdb_seconds[aggregate], duckdb_values[aggregate] = seconds, value
        print(f"per-person cap: {cap} (the 99th percentile of attributed people's expenditure); "
              f"DuckDB measured in {time.perf_counter() - began:.0f} s")  # fmt: skip

        results, plans = [], []
        schema, url = fresh_schema(arguments.postgres)
        try:
            sqlite = f"sqlite:///{folder / 'settle.db'}"
            for database, where in (("PostgreSQL", url), ("SQLite", sqlite)):
                began = time.perf_counter()
                as_of = load_history(where, history)
                print(f"{database}: loaded in {time.perf_counter() - began:.0f} s, cutoff "
                      f"{as_of.isoformat()}", flush=True)  # fmt: skip
                measured, explained = measure(
                    database, where, Window(START, END, as_of), parameters, runs, give_up
                )
                results += measured
                plans += explained
        finally:
            drop_schema(arguments.postgres, schema)

    for result in results:
        assert result.value is None or result.value == duckdb_values[result.aggregate], (
            f"{result.database}, {result.aggregate}: {result.value}, DuckDB "
            f"{duckdb_values[result.aggregate]}"
        )
    print()
    report(results, duckdb_seconds, give_up)
    print("values, the same on every database and in DuckDB: "
          + ", ".join(f"{name} {value}" for name, value in duckdb_values.items()))  # fmt: skip
    print()
    print("\n\n".join(plans))


def _rows(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1


if __name__ == "__main__":
    main()

"""Aggregates compiled to SQL give exactly what the pure-Python reference gives, on SQLite and
PostgreSQL, for random events with replacements, voids, retractions and cutoffs."""

from __future__ import annotations

import csv
import datetime as dt
import secrets
import tempfile
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from api.database import engine_from_url
from api.schema import upgrade_to_head
from contracts.model import Aggregate, Clause
from outcomes.aggregates import Known, Window, compute, reference
from outcomes.events import EVENT_TYPES
from outcomes.parse import type_row
from outcomes.store import EventStore
from rules.syntax import parse

PEOPLE = ("p1", "p2", "p3", "p4")
CLAIMS = tuple(f"c{i}" for i in range(8))
START = dt.date(2018, 1, 1)


def aggregate(measure, events="claim_line", field="paid_amount", where=None, cap=None,
              population=None):  # fmt: skip
    clause = None if where is None else Clause("where", where, parse(where))
    return Aggregate(events, measure, field, clause, (), None, None, cap, population)


AGGREGATES = {
    "expenditure": aggregate("sum"),
    "expenditure of attributed members, truncated": aggregate("sum", cap="cap",
                                                              population="attributed"),
    "professional lines over 100": aggregate(
        "count", where='claim_type == "professional" and paid_amount > 100'),
    "people with claims": aggregate("count_distinct", field="patient_id"),
    "assigned beneficiaries": aggregate("count_distinct", events="attribution", field="patient_id"),
    "member months": aggregate("member_months", events="eligibility", field=None),
}  # fmt: skip

dates = st.dates(min_value=START, max_value=dt.date(2019, 6, 30))


@st.composite
def claim_batch(draw, known: list[str]):
    rows = []
    for claim in draw(st.lists(st.sampled_from(CLAIMS), min_size=1, max_size=5, unique=True)):
        status = "original"
        adjusted = ""
        if known and draw(st.booleans()):
            status = draw(st.sampled_from(("replacement", "void")))
            adjusted = draw(st.sampled_from(known))
        amount = draw(st.decimals(min_value=0, max_value=500, places=2))
        rows.append({"claim_id": f"{claim}-{draw(st.integers(0, 999))}", "claim_line_number": "1",
                     "claim_type": draw(st.sampled_from(("professional", "institutional"))),
                     "patient_id": draw(st.sampled_from(PEOPLE)),
                     "claim_start_date": draw(dates).isoformat(), "paid_amount": str(amount),
                     "claim_status": status, "adjusted_claim_id": adjusted})  # fmt: skip
    known.extend(r["claim_id"] for r in rows)
    return "claim_line", rows


@st.composite
def span_batch(draw, kind: str):
    rows = []
    for person in draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=3, unique=True)):
        first = draw(dates)
        last = first + dt.timedelta(days=draw(st.integers(0, 400)))
        if kind == "attribution":
            period = {"period_start": first.isoformat(), "period_end": last.isoformat()}
            rows.append({"patient_id": person, "provider_id": "aco", **period})
        else:
            rows.append({"patient_id": person, "payer": "medicare", "plan": "ffs",
                         "enrollment_start_date": first.isoformat(),
                         "enrollment_end_date": last.isoformat()})  # fmt: skip
    return kind, rows


@st.composite
def histories(draw):
    known: list[str] = []
    batches = []
    for _ in range(draw(st.integers(1, 5))):
        choice = draw(st.sampled_from(("claim_line", "claim_line", "attribution", "eligibility")))
        batches.append(
            draw(claim_batch(known)) if choice == "claim_line" else draw(span_batch(choice))
        )
    retract = draw(st.lists(st.integers(0, len(batches) - 1), max_size=2, unique=True))
    start = draw(dates)
    window_end = start + dt.timedelta(days=draw(st.integers(0, 365)))
    cutoff = draw(st.integers(0, 2 * len(batches) + 1))
    cap = draw(st.decimals(min_value=50, max_value=800, places=2))
    return batches, retract, (start, window_end), cutoff, cap


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(minutes=1)
        return self.now


def fresh_database(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / f'{secrets.token_hex(4)}.db'}"
    schema = f"settle_agg_{secrets.token_hex(5)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    return f"postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"


def drop(url: str) -> None:
    if "search_path" in url:
        schema = url.rsplit("%3D", 1)[1]
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories())
def test_the_sql_aggregates_equal_the_reference(backend, history, postgres_schema):
    batches, retract, (start, end), cutoff, cap = history
    with tempfile.TemporaryDirectory() as folder:
        url = fresh_database(backend, Path(folder))
        engine = engine_from_url(url)
        try:
            upgrade_to_head(engine)
            clock = Clock()
            store = EventStore(engine, clock=clock)
            known, loaded = [], []
            for number, (kind, rows) in enumerate(batches):
                path = Path(folder) / f"b{number}.csv"
                with path.open("w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
                loaded.append((kind, rows, store.load(path, kind).batch))
            for index in retract:
                store.retract(loaded[index][2].batch_id, reason="test")
            seen = set()
            for kind, rows, batch in loaded:
                if batch.batch_id in seen:
                    continue  # the same content loaded again is the same batch, once
                seen.add(batch.batch_id)
                batch = store.batch(batch.batch_id)
                typed = [type_row(EVENT_TYPES[kind], r, where="t", number=i)[0].values
                         for i, r in enumerate(rows)]  # fmt: skip
                known.append(Known(kind, batch.learned_at, batch.retracted_at, typed))
            window = Window(start, end, dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
                            + dt.timedelta(minutes=cutoff, seconds=30))  # fmt: skip
            parameters = {"cap": cap}
            for name, spec in AGGREGATES.items():
                assert compute(engine, spec, window, parameters) == reference(
                    spec, window, parameters, known
                ), name
        finally:
            engine.dispose()
            drop(url)

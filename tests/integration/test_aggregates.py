"""Aggregates compiled to SQL give exactly what the pure-Python reference gives, on SQLite and
PostgreSQL, for random events with replacements, voids, retractions and cutoffs."""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.database import engine_from_url
from api.schema import upgrade_to_head
from contracts.model import Aggregate, Clause
from outcomes.aggregates import Known, Window, compute, reference
from outcomes.events import EVENT_TYPES
from outcomes.parse import type_row
from outcomes.store import EventStore
from rules.errors import RuleError
from rules.syntax import parse

EXAMPLES = int(os.environ.get("SETTLE_AGGREGATE_EXAMPLES", "30"))  # more: a longer, deeper run
PEOPLE = ("p1", "p2", "p3")
CLAIMS = tuple(f"c{i}" for i in range(8))
START = dt.date(2018, 1, 1)


def aggregate(measure, events="claim_line", field="paid_amount", where=None, cap=None,
              population=None, group_by=(), value_column=None, weight_by=None, within=None,
              episode_cap=None, episode_rule=None):  # fmt: skip
    clause = None if where is None else Clause("where", where, parse(where))
    return Aggregate(events, measure, field, clause, tuple(group_by), value_column, weight_by, cap,
                     population, within, episode_cap, episode_rule)  # fmt: skip


AGGREGATES = {
    "expenditure": aggregate("sum"),
    "expenditure of attributed members, truncated": aggregate("sum", cap="cap",
                                                              population="attributed"),
    "professional lines over 100": aggregate(
        "count", where='claim_type == "professional" and paid_amount > 100'),
    "people with claims": aggregate("count_distinct", field="patient_id"),
    "assigned beneficiaries": aggregate("count_distinct", events="attribution", field="patient_id",
                                        population="attributed"),
    "member months": aggregate("member_months", events="eligibility", field=None),
    "everything but DRG 470": aggregate("sum", where='not (ms_drg_code == "470")'),
    "not DRG 470": aggregate("count", where='ms_drg_code != "470" and 100.00005 <= paid_amount'),
    "from June": aggregate("sum", where='date("2018-06-01") <= claim_start_date'),
    "paid above allowed": aggregate("count", where="paid_amount > allowed_amount"),
    "paid not allowed": aggregate("count", where="paid_amount != allowed_amount"),
    "member months per plan": aggregate("member_months", events="eligibility", field=None,
                                        group_by=["plan"], value_column="months"),
    "average paid": aggregate("average"),
    "largest line": aggregate("max"),
    "spend per person": aggregate("sum", group_by=["patient_id"], value_column="spend"),
    "lines per claim type and person": aggregate("count", group_by=["claim_type", "patient_id"],
                                                 value_column="lines"),
    "spend per episode, capped": aggregate("sum", within="episode", episode_cap="cap",
                                           group_by=["episode_id", "ms_drg_code"],
                                           value_column="actual_spend"),
    "spend of one rule's episodes": aggregate("sum", within="episode", episode_rule="HF"),
    "episode spend of attributed members, capped": aggregate(
        "sum", within="episode", episode_cap="cap", population="attributed"),
    "risk score weighted by member months": aggregate(
        "weighted_average", events="risk_score", field="score", weight_by="member_months",
        population="attributed", where='model == "hcc"'),
    "risk score weighted by member months, every model": aggregate(
        "weighted_average", events="risk_score", field="score", weight_by="member_months"),
    "average risk per model": aggregate("average", events="risk_score", field="score",
                                        group_by=["model"], value_column="risk"),
    "quality score lookup": aggregate("value", events="quality_result", field="score",
                                      where='measure_id == "m1"'),
    "quality weighted by denominator": aggregate("weighted_average", events="quality_result",
                                                 field="score", weight_by="denominator"),
}  # fmt: skip

dates = st.dates(min_value=START, max_value=dt.date(2018, 12, 31))


@st.composite
def claim_batch(draw, known: list[str]):
    rows = []
    for claim in draw(st.lists(st.sampled_from(CLAIMS), min_size=1, max_size=8, unique=True)):
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
                     "ms_drg_code": draw(st.sampled_from(("470", "469", ""))),
                     "allowed_amount": draw(st.sampled_from(("", "100.00", str(amount)))),
                     "claim_status": status, "adjusted_claim_id": adjusted})  # fmt: skip
    known.extend(r["claim_id"] for r in rows)
    return "claim_line", rows


@st.composite
def span_batch(draw, kind: str):
    rows = []
    for person in draw(st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4, unique=True)):
        first = draw(dates)
        last = first + dt.timedelta(days=draw(st.integers(0, 400)))
        period = {"period_start": first.isoformat(), "period_end": last.isoformat()}
        if kind == "attribution":
            rows.append({"patient_id": person, "provider_id": "aco", **period,
                         "contract_id": draw(st.sampled_from(("c1", "c1", "c2", "")))})  # fmt: skip
        elif kind == "risk_score":
            for model in draw(st.lists(st.sampled_from(("hcc", "esrd")), min_size=1,
                                       unique=True)):  # fmt: skip
                score = draw(st.decimals(min_value=0, max_value=4, places=3))
                rows.append({"patient_id": person, "model": model, **period, "score": str(score)})
        else:
            rows.append({"patient_id": person, "payer": "medicare",
                         "plan": draw(st.sampled_from(("ffs", "ma", ""))),
                         "enrollment_start_date": first.isoformat(),
                         "enrollment_end_date": last.isoformat()})  # fmt: skip
    return kind, rows


@st.composite
def episode_batch(draw):
    rows = []
    for number in draw(st.lists(st.integers(0, 30), min_size=1, max_size=4, unique=True)):
        first = draw(dates)
        rows.append({"episode_id": f"e{number}", "patient_id": draw(st.sampled_from(PEOPLE)),
                     "window_start": first.isoformat(),
                     "window_end": (first + dt.timedelta(days=draw(st.integers(0, 200))))
                     .isoformat(),
                     "ms_drg_code": draw(st.sampled_from(("469", "470", ""))),
                     "rule": draw(st.sampled_from(("LEJR", "HF")))})  # fmt: skip
    return "episode", rows


@st.composite
def quality_batch(draw):
    rows = []
    for measure in draw(st.lists(st.sampled_from(("m1", "m2")), min_size=1, unique=True)):
        first = draw(dates)
        rows.append({"measure_id": measure, "provider_id": "aco", "period_start": first.isoformat(),
                     "period_end": (first + dt.timedelta(days=draw(st.integers(0, 365))))
                     .isoformat(),
                     "score": str(draw(st.decimals(min_value=0, max_value=1, places=4))),
                     "denominator": str(draw(st.integers(0, 50)))})  # fmt: skip
    return "quality_result", rows


KINDS = ("claim_line", "attribution", "eligibility", "episode", "risk_score",
         "quality_result")  # fmt: skip


def _batch(draw, choice: str, known: list[str]):
    if choice == "claim_line":
        return draw(claim_batch(known))
    if choice == "episode":
        return draw(episode_batch())
    if choice == "quality_result":
        return draw(quality_batch())
    return draw(span_batch(choice))


@st.composite
def histories(draw):
    """A batch of every kind, in a random order (claims first, so later ones can adjust them),
    then a few more; mostly read late and over a year, so that most aggregates are not empty."""
    known: list[str] = []
    kinds = ["claim_line", *draw(st.permutations(KINDS[1:])),
             *draw(st.lists(st.sampled_from(KINDS), max_size=4))]  # fmt: skip
    batches = [_batch(draw, choice, known) for choice in kinds]
    retract = draw(st.lists(st.integers(0, len(batches) - 1), max_size=2, unique=True))
    start = draw(st.one_of(st.just(dt.date(2018, 1, 1)), dates))
    window_end = start + dt.timedelta(days=draw(st.one_of(st.just(364), st.integers(0, 365))))
    late = 2 * len(batches) + 1
    cutoff = draw(st.one_of(st.just(late), st.integers(0, late)))
    cap = draw(st.decimals(min_value=50, max_value=800, places=2))
    contract = draw(st.sampled_from((None, "c1")))
    return batches, retract, (start, window_end, contract), cutoff, cap


def outcome(function, *arguments):
    """The value, or the messages of the RuleError: both sides must agree on either."""
    try:
        return function(*arguments)
    except RuleError as error:
        return [p.message for p in error.problems]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(history=histories())
def test_the_sql_aggregates_equal_the_reference(backend, history, empty_database, new_clock):
    batches, retract, (start, end, contract), cutoff, cap = history
    with tempfile.TemporaryDirectory() as folder:
        engine = engine_from_url(empty_database(backend))
        try:
            upgrade_to_head(engine)
            clock = new_clock()
            store = EventStore(engine, clock=clock)
            known, loaded = [], []
            for number, (kind, rows) in enumerate(batches):
                path = Path(folder) / f"b{number}.csv"
                with path.open("w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
                loaded.append((kind, rows, store.load(path, kind).batch))
            for batch_id in {loaded[index][2].batch_id for index in retract}:
                store.retract(batch_id, reason="test")  # a file loaded twice is one batch
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
                            + dt.timedelta(minutes=cutoff, seconds=30), contract)  # fmt: skip
            parameters = {"cap": cap}
            for name, spec in AGGREGATES.items():
                computed = outcome(compute, engine, spec, window, parameters)
                expected = outcome(reference, spec, window, parameters, known)
                assert computed == expected, name
        finally:
            engine.dispose()

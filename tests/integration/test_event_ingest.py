"""Loading outcome events on SQLite and PostgreSQL: a batch lands whole or not at all, is named by
its content, and reads are bitemporal (what was known as of a time)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from outcomes import store as outcome_store
from outcomes.store import EVENT_TABLES, EventStore, EventStoreError
from rules.errors import RuleError

TUVA = Path(__file__).resolve().parents[2] / "fixtures" / "tuva"
HEADER = "claim_id,claim_line_number,claim_type,patient_id,claim_start_date,paid_amount"


@pytest.fixture
def store(upgraded_engine, clock):
    return EventStore(upgraded_engine, clock=clock)


def claims(tmp_path: Path, name: str, *rows: str) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def paid(store: EventStore, as_of: dt.datetime) -> Decimal:
    return sum((e["paid_amount"] for e in store.events("claim_line", as_of=as_of)), Decimal(0))


def test_the_tuva_claims_load_with_their_known_totals(store):
    result = store.load(TUVA / "medical_claim.csv", "claim_line")
    assert result.loaded and result.batch.rows == 6_075
    rows = list(store.events("claim_line", as_of=dt.datetime(2100, 1, 1, tzinfo=dt.UTC)))
    assert len({r["claim_id"] for r in rows}) == 3_106
    assert sum(r["paid_amount"] for r in rows) == Decimal("3970274.95")


def test_the_tuva_eligibility_loads_every_span(store):
    # 219 spans: the file has 219 data rows (no newline after the last).
    assert store.load(TUVA / "eligibility.csv", "eligibility").batch.rows == 219


def test_loading_the_same_file_again_returns_the_batch_already_there(store, tmp_path):
    path = claims(tmp_path, "a.csv", "c1,1,professional,p1,2018-01-05,10.00")
    first = store.load(path, "claim_line")
    again = store.load(path, "claim_line")
    assert not again.loaded and again.batch == first.batch
    assert len(store.batches()) == 1
    with pytest.raises(EventStoreError, match="was loaded as claim_line"):
        store.load(path, "admission")


def test_a_read_as_of_a_time_sees_exactly_what_was_known_then(store, tmp_path, clock):
    store.load(claims(tmp_path, "a.csv", "c1,1,professional,p1,2018-01-05,10.00"), "claim_line")
    between = clock.now + dt.timedelta(seconds=30)
    store.load(claims(tmp_path, "b.csv", "c2,1,professional,p1,2018-01-06,5.00"), "claim_line")
    assert paid(store, between) == Decimal("10.00")
    assert paid(store, clock.now) == Decimal("15.00")


def test_a_retracted_batch_is_withdrawn_from_later_reads_but_not_from_earlier_ones(
    store, tmp_path, clock
):
    batch = store.load(claims(tmp_path, "a.csv", "c1,1,professional,p1,2018-01-05,10.00"),
                       "claim_line").batch  # fmt: skip
    before = clock.now + dt.timedelta(seconds=30)
    retracted = store.retract(batch.batch_id[:12], reason="sent twice by the payer")
    assert retracted.retraction_reason == "sent twice by the payer"
    assert paid(store, before) == Decimal("10.00")
    assert paid(store, clock.now) == 0
    with pytest.raises(EventStoreError, match="was retracted"):
        store.retract(batch.batch_id[:12], reason="again")


def test_a_replacement_and_a_void_must_name_a_loaded_claim(store, tmp_path):
    store.load(claims(tmp_path, "a.csv", "c1,1,professional,p1,2018-01-05,10.00"), "claim_line")
    header = HEADER + ",claim_status,adjusted_claim_id"
    path = tmp_path / "b.csv"
    path.write_text(f"{header}\nc2,1,professional,p1,2018-01-05,12.00,replacement,c1\n"
                    "c3,1,professional,p1,2018-01-05,0,void,c1\n")  # fmt: skip
    assert store.load(path, "claim_line").batch.rows == 2


def test_duplicate_keys_are_found_across_chunks_of_a_large_batch(store, tmp_path, monkeypatch):
    monkeypatch.setattr(outcome_store, "CHUNK", 2)
    path = claims(tmp_path, "a.csv", *(f"c{i},1,professional,p1,2018-01-05,1.00" for i in range(7)),
                  "c1,1,professional,p1,2018-01-05,1.00")  # fmt: skip
    with pytest.raises(RuleError, match=r"a.csv:9: repeats the key of row 3 \(claim_id 'c1', "):
        store.load(path, "claim_line")
    assert store.batches() == ()


def test_a_replacement_may_name_a_claim_from_an_earlier_chunk_of_its_own_batch(
    store, tmp_path, monkeypatch
):
    monkeypatch.setattr(outcome_store, "CHUNK", 2)
    header = HEADER + ",claim_status,adjusted_claim_id"
    originals = [f"c{i},1,professional,p1,2018-01-05,1.00,original," for i in range(5)]
    for name, adjusted in (("a.csv", "c1"), ("b.csv", "c9")):
        replacement = f"r1,1,professional,p1,2018-01-05,2.00,replacement,{adjusted}"
        (tmp_path / name).write_text("\n".join([header, *originals, replacement]) + "\n")
    assert store.load(tmp_path / "a.csv", "claim_line").batch.rows == 6
    with pytest.raises(RuleError, match=r"b.csv:7: column adjusted_claim_id = 'c9': adjusts a "):
        store.load(tmp_path / "b.csv", "claim_line")


def test_a_load_that_fails_after_rows_were_written_leaves_nothing(store, tmp_path, monkeypatch):
    # On PostgreSQL the last chunk's COPY is still open when the truncated row is read.
    monkeypatch.setattr(outcome_store, "CHUNK", 2)
    rows = [f"c{i},1,professional,p1,2018-01-05,1.00" for i in range(7)]
    path = tmp_path / "a.csv"
    path.write_text("\n".join([HEADER, *rows, "c9,1,profess"]) + "\n")
    with pytest.raises(RuleError, match=r"a.csv:9: has 3 fields, the header has 6"):
        store.load(path, "claim_line")
    assert store.batches() == ()
    with store.engine.connect() as connection:
        table = EVENT_TABLES["claim_line"]
        assert connection.scalar(select(func.count()).select_from(table)) == 0
    assert store.load(claims(tmp_path, "b.csv", *rows), "claim_line").batch.rows == 7


BROKEN: list[tuple[str, str, bytes, str]] = [
    ("wrong-encoding", "a.csv", (HEADER + "\nc1,1,professional,p\xe9,2018-01-05,1.00\n").encode("latin-1"), "not UTF-8"),
    ("missing-column", "a.csv", b"claim_id,claim_line_number,claim_type,patient_id,claim_start_date\nc1,1,professional,p1,2018-01-05\n", "lacks the required column(s) paid_amount"),
    ("exponent-amount", "a.csv", (HEADER + "\nc1,1,professional,p1,2018-01-05,1e3\n").encode(), "column paid_amount = '1e3': not an amount"),
    ("two-points-amount", "a.csv", (HEADER + "\nc1,1,professional,p1,2018-01-05,12.345.6\n").encode(), "'12.345.6': not an amount"),
    ("thousands-separator", "a.csv", (HEADER + '\nc1,1,professional,p1,2018-01-05,"1,234.00"\n').encode(), "'1,234.00': not an amount"),
    ("five-decimals", "a.csv", (HEADER + "\nc1,1,professional,p1,2018-01-05,1.00001\n").encode(), "not an amount"),
    ("amount-beyond-64-bits", "a.csv", (HEADER + "\nc1,1,professional,p1,2018-01-05,999999999999999\n").encode(), "not an amount: at most 14 digits"),
    ("negative-units", "a.csv", b"claim_id,claim_line_number,claim_type,patient_id,claim_start_date,paid_amount,service_unit_quantity\nc1,1,professional,p1,2018-01-05,1.00,-2\n", "column service_unit_quantity = '-2': not a count"),
    ("fractional-line-number", "a.csv", (HEADER + "\nc1,1.5,professional,p1,2018-01-05,1.00\n").encode(), "claim_line_number = '1.5'"),
    ("date-out-of-range", "a.csv", (HEADER + "\nc1,1,professional,p1,1800-01-05,1.00\n").encode(), "outside 1900-01-01 to 2100-12-31"),
    ("date-not-in-calendar", "a.csv", (HEADER + "\nc1,1,professional,p1,2018-02-30,1.00\n").encode(), "not a calendar date"),
    ("date-other-format", "a.csv", (HEADER + "\nc1,1,professional,p1,01/05/2018,1.00\n").encode(), "not a date YYYY-MM-DD"),
    ("required-value-empty", "a.csv", (HEADER + "\nc1,1,professional,,2018-01-05,1.00\n").encode(), "column patient_id = '': is required"),
    ("text-too-long", "a.csv", (HEADER + f"\nc1,1,professional,{'p' * 300},2018-01-05,1.00\n").encode(), "longer than 200 characters"),
    ("unknown-claim-status", "a.csv", (HEADER + ",claim_status\nc1,1,professional,p1,2018-01-05,1.00,reversed\n").encode(), "must be one of original, replacement, void"),
    ("duplicate-keys", "a.csv", (HEADER + "\nc1,1,professional,p1,2018-01-05,1.00\nc1,1,professional,p1,2018-01-06,2.00\n").encode(), "a.csv:3: repeats the key of row 2"),
    ("replacement-of-unknown-claim", "a.csv", (HEADER + ",claim_status,adjusted_claim_id\nc2,1,professional,p1,2018-01-05,1.00,replacement,nope\n").encode(), "adjusts a claim that was never loaded"),
    ("void-naming-nothing", "a.csv", (HEADER + ",claim_status,adjusted_claim_id\nc2,1,professional,p1,2018-01-05,0,void,\n").encode(), "names the claim it adjusts"),
    ("truncated-row", "a.csv", (HEADER + "\nc1,1,professional,p1,2018-01-05,1.00\nc2,1,profess").encode(), "a.csv:3: has 3 fields, the header has 6"),
    ("unclosed-quote", "a.csv", (HEADER + '\nc1,1,professional,"p1,2018-01-05,1.00\n').encode(), "not readable as CSV"),
    ("line-over-the-size-limit", "a.csv", (HEADER + "\nc1,1,professional," + "p" * 1_100_000 + ",2018-01-05,1.00\n").encode(), "not readable as CSV"),
    ("empty-file", "a.csv", b"", "the file is empty"),
    ("header-only", "a.csv", (HEADER + "\n").encode(), "the file has no rows"),
    ("header-repeats-a-column", "a.csv", (HEADER + ",paid_amount\nc1,1,professional,p1,2018-01-05,1.00,2.00\n").encode(), "the header repeats paid_amount"),
    ("jsonl-not-json", "a.jsonl", b'{"claim_id": "c1",\n', "a.jsonl:1: not a JSON line"),
    ("jsonl-not-an-object", "a.jsonl", b"[1, 2]\n", "a line is one JSON object"),
    ("jsonl-exponent-number", "a.jsonl", b'{"claim_id":"c1","claim_line_number":1,"claim_type":"professional","patient_id":"p1","paid_amount":1e3}\n', "not an amount"),
    ("jsonl-missing-field", "a.jsonl", b'{"claim_id":"c1","claim_line_number":1,"claim_type":"professional","paid_amount":"1.00"}\n', "column patient_id = None: is required"),
    ("unknown-format", "a.txt", b"whatever\n", "unknown file format '.txt'"),
    ("many-problems-reported-together", "a.csv", (HEADER + "\n" + "\n".join(f"c{i},x,professional,p1,2018-01-05,1.00" for i in range(150)) + "\n").encode(), "150 problem(s) (the first 100 are shown)"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "file", "content", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_file_is_refused_with_where_and_why_and_nothing_is_stored(
    store, tmp_path, name, file, content, message
):
    path = tmp_path / file
    path.write_bytes(content)
    with pytest.raises(RuleError) as raised:
        store.load(path, "claim_line")
    assert message in str(raised.value), str(raised.value)[:500]
    assert store.batches() == ()
    with store.engine.connect() as connection:
        table = EVENT_TABLES["claim_line"]
        assert connection.scalar(select(func.count()).select_from(table)) == 0


@pytest.mark.parametrize("typed_by", ["pyarrow", "rows"])
def test_a_load_killed_midway_leaves_no_batch_and_no_rows(
    upgraded_engine, database_url, tmp_path, typed_by, batch_tables
):
    """Killed once it has written rows (on PostgreSQL, by pyarrow, into a partition of the
    batch's own: the file is larger than OWN_PARTITION_BYTES)."""
    # A backslash in a cell makes the file one only the row path types.
    big = _rekeyed_tuva(tmp_path / "big.csv", 150 if typed_by == "pyarrow" else 25,
                        marked=typed_by == "rows")  # fmt: skip
    name = f"settle-killed-{os.getpid()}-{typed_by}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SETTLE_")},
           "SETTLE_DATABASE_URL": database_url, "PGAPPNAME": name}  # fmt: skip
    loader = subprocess.Popen(
        [str(Path(sys.executable).with_name("settle")), "events", "load", str(big), "--type",
         "claim_line"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_until_writing(upgraded_engine, database_url, name, loader)
    os.kill(loader.pid, signal.SIGKILL)
    loader.wait(timeout=30)
    store = EventStore(upgraded_engine)
    assert store.batches() == ()
    with upgraded_engine.connect() as connection:
        table = EVENT_TABLES["claim_line"]
        assert connection.scalar(select(func.count()).select_from(table)) == 0
    if upgraded_engine.dialect.name == "postgresql":
        assert batch_tables(upgraded_engine) == []
    assert store.load(TUVA / "medical_claim.csv", "claim_line").batch.rows == 6_075


def wait_until_writing(engine, database_url: str, name: str, loader: subprocess.Popen) -> None:
    """Until the loader has written rows, uncommitted: on PostgreSQL its COPY (the connection
    named `name`) has taken some in; on SQLite the write-ahead log holds a megabyte."""
    wal = Path(database_url.removeprefix("sqlite:///") + "-wal")
    copied = text(
        "SELECT coalesce(max(p.tuples_processed), 0) FROM pg_stat_progress_copy p "
        "JOIN pg_stat_activity a USING (pid) WHERE a.application_name = :name"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert loader.poll() is None, "the load finished before it could be killed"
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                if connection.scalar(copied, {"name": name}) > 0:
                    return
        elif wal.exists() and wal.stat().st_size > 1 << 20:
            return
        time.sleep(0.05)
    raise AssertionError("the loader wrote nothing in a minute")


@pytest.mark.parametrize("chunk", [5_000, 1])  # the unique index's catch, and the probe's
def test_an_eligibility_span_repeated_without_a_plan_is_refused(
    store, tmp_path, monkeypatch, chunk
):
    monkeypatch.setattr(outcome_store, "CHUNK", chunk)
    path = tmp_path / "spans.csv"
    span = "p1,medicare,2018-01-01,2018-12-31"
    path.write_text(f"patient_id,payer,enrollment_start_date,enrollment_end_date\n{span}\n{span}\n")

    with pytest.raises(RuleError, match=r"spans.csv:3: repeats the key of row 2 .*plan None"):
        store.load(path, "eligibility")
    assert store.batches() == ()


def _rekeyed_tuva(path: Path, copies: int, *, marked: bool = False) -> Path:
    lines = (TUVA / "medical_claim.csv").read_text().splitlines()
    if marked:
        lines[0] += ",note"
        lines[1:] = [line + ",a\\b" for line in lines[1:]]
    with path.open("w") as handle:
        handle.write(lines[0] + "\n")
        for copy in range(copies):
            for line in lines[1:]:
                handle.write(f"k{copy}-{line}\n")  # re-keyed: claim_id k<copy>-<id>
    return path


def test_the_same_file_loaded_by_two_processes_at_once_lands_once(
    upgraded_engine, database_url, tmp_path
):
    """The second waits for the first (PostgreSQL) or meets its rows (SQLite), and answers with
    the batch the first loaded: not a repeated key in every row."""
    big = _rekeyed_tuva(tmp_path / "big.csv", 6)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SETTLE_")},
           "SETTLE_DATABASE_URL": database_url}  # fmt: skip
    command = [str(Path(sys.executable).with_name("settle")), "events", "load", str(big),
               "--type", "claim_line"]  # fmt: skip
    loaders = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]  # fmt: skip
    outputs = [loader.communicate(timeout=120) for loader in loaders]

    assert [loader.returncode for loader in loaders] == [0, 0], outputs
    said = sorted("already loaded" in out for out, _ in outputs)
    assert said == [False, True], outputs
    [batch] = EventStore(upgraded_engine).batches()
    assert batch.rows == 6 * 6_075


def test_the_cells_outside_the_event_type_are_kept_as_json_whatever_they_hold(store, tmp_path):
    plain = claims(tmp_path, "a.csv", "c1,1,professional,p1,2018-01-05,1.00")
    plain.write_text(plain.read_text().replace(HEADER, HEADER + ",note,code").strip() + ",é,x\n"
                     "c2,1,professional,p1,2018-01-05,1.00,,\n")  # fmt: skip
    quoted = tmp_path / "b.csv"
    quoted.write_text(f'{HEADER},note,code\nc3,1,professional,p1,2018-01-05,1.00,"a ""b"", c",\\\n')
    for path in (plain, quoted):
        store.load(path, "claim_line")
    table = EVENT_TABLES["claim_line"]
    with store.engine.connect() as connection:
        extras = connection.execute(select(table.c.claim_id, table.c.extra)).all()
    assert sorted(extras) == [("c1", '{"code":"x","note":"é"}'), ("c2", None),
                              ("c3", '{"code":"\\\\","note":"a \\"b\\", c"}')]  # fmt: skip

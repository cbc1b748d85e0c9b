"""PostgreSQL: a large plain CSV is loaded into a partition of its own (migration 0006), indexed
once its rows are in and attached in the load's transaction; every other batch shares one
partition. Either way the events read the same, stay append-only, and a load that fails or is
stopped leaves no partition behind."""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from api.database import engine_from_url
from api.schema import upgrade_to_head
from outcomes.store import EVENT_TABLES, EventStore
from rules.errors import RuleError

pytestmark = pytest.mark.postgres

TUVA = Path(__file__).resolve().parents[2] / "fixtures" / "tuva"
HEADER = "claim_id,claim_line_number,claim_type,patient_id,claim_start_date,paid_amount"
WIDE = HEADER + ",claim_status,adjusted_claim_id"
CLAIMS = EVENT_TABLES["claim_line"]


@pytest.fixture
def engine(postgres_url: str):
    engine = engine_from_url(postgres_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def claims(tmp_path: Path, name: str, lines: list[str], header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_a_large_file_gets_a_partition_of_its_own_and_a_small_one_shares(
    engine, tmp_path, partitions
):
    store = EventStore(engine, own_partition_bytes=10_000)
    small = claims(tmp_path, "small.csv", ["s1,1,x,p1,2018-01-05,1.00"])
    store.load(small, "claim_line")
    store.load(TUVA / "medical_claim.csv", "claim_line")  # 1.3 MB

    assert partitions(engine) == {"events_claim_line_p1": 6_075, "events_claim_line_shared": 1}
    with engine.connect() as connection:
        total = connection.scalar(select(func.sum(CLAIMS.c.paid_amount)))
        indexes = connection.scalars(text(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'events_claim_line_p1'"
        )).all()  # fmt: skip
    assert total == 3_970_274_95 * 100 + 1_0000  # ten-thousandths: Tuva's paid, and 1.00
    assert sorted(index.split(" ON ")[0] for index in indexes) == [
        "CREATE INDEX events_claim_line_p1_adjusted",
        "CREATE UNIQUE INDEX events_claim_line_p1_key",
    ]


def test_rows_of_a_partition_of_their_own_are_append_only(engine, tmp_path, partitions):
    EventStore(engine, own_partition_bytes=0).load(TUVA / "medical_claim.csv", "claim_line")

    for statement in ("UPDATE events_claim_line SET paid_amount = 0",
                      "DELETE FROM events_claim_line_p1",
                      "UPDATE events_claim_line_p1 SET partition_number = 0",
                      "TRUNCATE events_claim_line_p1"):  # fmt: skip
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement))
    assert partitions(engine) == {"events_claim_line_p1": 6_075, "events_claim_line_shared": 0}


def test_a_refused_load_leaves_no_partition_and_its_number_is_not_used_again(
    engine, tmp_path, partitions, batch_tables
):
    store = EventStore(engine, own_partition_bytes=0)
    repeated = claims(tmp_path, "repeated.csv",
                      ["c1,1,x,p1,2018-01-05,1.00", "c2,1,x,p1,2018-01-05,2.00",
                       "c1,1,x,p1,2018-01-05,3.00"])  # fmt: skip
    unknown = claims(tmp_path, "unknown.csv", ["c9,1,x,p1,2018-01-05,1.00,replacement,c8"], WIDE)

    with pytest.raises(RuleError, match=r"repeated.csv:4: repeats the key of row 2"):
        store.load(repeated, "claim_line")
    with pytest.raises(RuleError, match=r"unknown.csv:2: .*adjusts a claim that was never loaded"):
        store.load(unknown, "claim_line")

    assert store.batches() == ()
    assert batch_tables(engine) == []
    store.load(TUVA / "medical_claim.csv", "claim_line")
    assert list(partitions(engine)) == ["events_claim_line_p3", "events_claim_line_shared"]
    assert batch_tables(engine) == ["events_claim_line_p3"]


def test_replacements_name_claims_across_partitions(engine, tmp_path, partitions):
    """A replacement may name a claim of its own file (an earlier row) or of any batch not
    retracted, whichever partition holds it."""
    store = EventStore(engine, own_partition_bytes=0)
    shared = EventStore(engine, own_partition_bytes=1 << 40)
    shared.load(claims(tmp_path, "a.csv", ["a1,1,x,p1,2018-01-05,1.00"]), "claim_line")
    store.load(claims(tmp_path, "b.csv", ["b1,1,x,p1,2018-01-05,1.00"]), "claim_line")
    lines = [
        "c1,1,x,p1,2018-01-05,1.00,,",
        "r1,1,x,p1,2018-01-05,1.00,replacement,a1",
        "r2,1,x,p1,2018-01-05,1.00,void,b1",
        "r3,1,x,p1,2018-01-05,1.00,replacement,c1",
    ]
    later = claims(tmp_path, "c.csv", lines, WIDE)

    assert store.load(later, "claim_line").batch.rows == 4
    assert list(partitions(engine)) == ["events_claim_line_p1", "events_claim_line_p2",
                                        "events_claim_line_shared"]  # fmt: skip

    store.retract(store.batches()[1].batch_id, reason="sent twice")  # b.csv
    again = claims(tmp_path, "d.csv", ["d1,1,x,p1,2018-01-05,1.00,void,b1"], WIDE)
    with pytest.raises(RuleError, match=r"d.csv:2: .*adjusts a claim that was never loaded"):
        store.load(again, "claim_line")


def test_readers_and_other_loads_go_on_while_a_large_file_loads(
    engine, postgres_url, tmp_path, partitions
):
    """The load holds no lock on the events table that a read or another load waits for until
    it attaches its partition, at the very end (and ATTACH lets reads go on)."""
    store = EventStore(engine, own_partition_bytes=0)
    written, resume = threading.Event(), threading.Event()

    def pause(rows: int) -> None:
        written.set()
        assert resume.wait(timeout=30)

    loading = threading.Thread(target=store.load, args=(TUVA / "medical_claim.csv", "claim_line"),
                               kwargs={"on_progress": pause})  # fmt: skip
    loading.start()
    try:
        assert written.wait(timeout=30)
        other = engine_from_url(postgres_url)
        try:
            with other.begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                assert connection.scalar(select(func.count()).select_from(CLAIMS)) == 0
            small = claims(tmp_path, "small.csv", ["s1,1,x,p1,2018-01-05,1.00"])
            EventStore(other).load(small, "claim_line")
        finally:
            other.dispose()
    finally:
        resume.set()
        loading.join(timeout=60)
    assert partitions(engine) == {"events_claim_line_p1": 6_075, "events_claim_line_shared": 1}


@pytest.fixture
def loader_role(engine):
    """A role that may read and insert in this schema and nothing more (no CREATE, owns no
    table), dropped at the end."""
    role = f"settle_loader_{secrets.token_hex(4)}"
    with engine.begin() as connection:
        connection.execute(text(f"CREATE ROLE {role} NOLOGIN"))
        connection.execute(text(f"GRANT USAGE ON SCHEMA {current_schema(connection)} TO {role}"))
        connection.execute(text(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA "
                                f"{current_schema(connection)} TO {role}"))  # fmt: skip
        connection.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA "
                                f"{current_schema(connection)} TO {role}"))  # fmt: skip
    yield role
    with engine.begin() as connection:
        connection.execute(text(f"DROP OWNED BY {role}"))
        connection.execute(text(f"DROP ROLE {role}"))


def current_schema(connection) -> str:
    return str(connection.scalar(text("SELECT current_schema()")))


def as_role(url: str, role: str) -> str:
    """The URL, its connections acting as `role` (PostgreSQL's `role` setting at start-up)."""
    return url.replace("options=", f"options={quote(f'-crole={role} ')}", 1)


def test_a_role_that_may_only_insert_loads_a_large_file_into_the_shared_partition(
    engine, postgres_url, loader_role, partitions
):
    """A partition of its own needs CREATE on the schema and the events table's ownership (to
    attach it); without them the same file loads, into the shared partition."""
    limited = engine_from_url(as_role(postgres_url, loader_role))
    try:
        with limited.connect() as connection:
            assert connection.scalar(text("SELECT current_user")) == loader_role
        store = EventStore(limited, own_partition_bytes=0)
        assert store.load(TUVA / "medical_claim.csv", "claim_line").batch.rows == 6_075
    finally:
        limited.dispose()
    assert partitions(engine) == {"events_claim_line_shared": 6_075}

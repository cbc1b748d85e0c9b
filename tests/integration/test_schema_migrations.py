"""Alembic's head matches the store's tables, and a search_path schema holds everything."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, inspect, text
from sqlalchemy.exc import DatabaseError

from api.database import engine_from_url, search_path_schema
from api.schema import (
    SchemaError,
    _alembic_config,
    current_revision,
    head_revision,
    upgrade_to_head,
)
from contracts import store as contract_store
from ledger import store as ledger_store
from outcomes import store as outcome_store
from outcomes.store import EVENT_TABLES, EventStore

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tuva"
EVENT_TABLES_NAMED = tuple(table.name for table in EVENT_TABLES.values())


def _declared(dialect: str = "sqlite") -> MetaData:
    """Every table the stores declare, in one MetaData, as the migrations must create them. On
    PostgreSQL each events table is partitioned by its partition number (migration 0006): the
    table has no index of its own; its shared partition has the indexes declared."""
    combined = MetaData()
    for declared in (contract_store.metadata, ledger_store.metadata, outcome_store.metadata):
        for table in declared.tables.values():
            if dialect != "postgresql" or table.name not in EVENT_TABLES_NAMED:
                table.to_metadata(combined)
                continue
            partitioned = table.to_metadata(combined)
            partitioned.indexes.clear()
            shared = table.to_metadata(combined, name=f"{table.name}_shared")
            for copy in (partitioned, shared):
                copy.append_column(Column("partition_number", Integer(), nullable=False))
    return combined


# SQLite cannot reflect the eligibility key's coalesce(plan, '') index, so autogenerate leaves
# that one index out of the comparison (on SQLite only), and says so.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_the_migrations_create_exactly_the_tables_the_stores_declare(
    upgraded_engine: Engine,
) -> None:
    with upgraded_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, _declared(upgraded_engine.dialect.name))

    assert differences == []


def test_an_empty_database_has_no_revision_until_upgraded(database_url: str) -> None:
    engine = engine_from_url(database_url)
    try:
        assert current_revision(engine) is None

        reached = upgrade_to_head(engine)

        assert reached == head_revision() == current_revision(engine)
    finally:
        engine.dispose()


def test_upgrading_a_database_already_at_head_changes_nothing(upgraded_engine: Engine) -> None:
    assert upgrade_to_head(upgraded_engine) == head_revision()


@pytest.mark.postgres
def test_on_postgresql_the_tables_and_alembic_version_live_in_the_search_path_schema(
    postgres_url: str,
) -> None:
    schema = search_path_schema(postgres_url)
    engine = engine_from_url(postgres_url)
    try:
        upgrade_to_head(engine)
        inspector = inspect(engine)

        assert set(inspector.get_table_names(schema=schema)) == {
            "alembic_version",
            *_declared("postgresql").tables,
        }
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_upgrade_creates_a_search_path_schema_that_is_missing(
    postgres_url: str, postgres_schema: str
) -> None:
    fresh = f"{postgres_schema}_fresh"
    engine = engine_from_url(postgres_url.replace(postgres_schema, fresh))
    try:
        upgrade_to_head(engine)

        assert "contract_versions" in inspect(engine).get_table_names(schema=fresh)
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{fresh}" CASCADE'))
        engine.dispose()


def _migrate(engine: Engine, move: str, revision: str) -> None:
    with engine.begin() as connection:
        getattr(command, move)(_alembic_config(connection), revision)


def test_0005_keeps_every_event_and_the_append_only_guard_both_ways(
    database_url: str, clock: Callable[[], dt.datetime]
) -> None:
    """Events loaded are there after a downgrade to 0004 and after the upgrade again, which
    counts each batch's rows; the tables stay append-only at each step."""
    engine = engine_from_url(database_url)
    try:
        upgrade_to_head(engine)
        store = EventStore(engine, clock=clock)
        loaded = store.load(FIXTURES / "medical_claim.csv", "claim_line").batch
        before = list(store.events("claim_line", as_of=clock()))

        for move, revision in (("downgrade", "0004_episode_rule"), ("upgrade", "head")):
            _migrate(engine, move, revision)

            assert list(store.events("claim_line", as_of=clock())) == before
            with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
                connection.execute(text("DELETE FROM events_claim_line"))
        assert store.batch(loaded.batch_id).rows == 6_075  # counted by the upgrade
        assert inspect(engine).get_pk_constraint("events_claim_line")["constrained_columns"] == []
        assert inspect(engine).get_foreign_keys("events_claim_line") == []
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text("UPDATE outcome_batches SET rows = 1"))
    finally:
        engine.dispose()


_LATE_FAILURES = {  # something that makes 0005 fail after it has changed several tables
    "sqlite": "CREATE TABLE events_eligibility_old (x INTEGER)",
    "postgresql": "CREATE TRIGGER events_admission_no_truncate BEFORE TRUNCATE ON events_admission "
    "FOR EACH STATEMENT EXECUTE FUNCTION settle_append_only()",
}


def test_a_migration_failing_half_way_changes_nothing(
    database_url: str, clock: Callable[[], dt.datetime]
) -> None:
    engine = engine_from_url(database_url)
    try:
        upgrade_to_head(engine)
        store = EventStore(engine, clock=clock)
        store.load(FIXTURES / "medical_claim.csv", "claim_line")
        before = list(store.events("claim_line", as_of=clock()))
        _migrate(engine, "downgrade", "0004_episode_rule")
        with engine.begin() as connection:
            connection.execute(text(_LATE_FAILURES[engine.dialect.name]))

        with pytest.raises(SchemaError):
            upgrade_to_head(engine)

        assert current_revision(engine) == "0004_episode_rule"
        assert list(store.events("claim_line", as_of=clock())) == before
        assert "events_claim_line_old" not in inspect(engine).get_table_names()
        assert inspect(engine).get_pk_constraint("events_claim_line")["constrained_columns"]
        assert "rows" not in {c["name"] for c in inspect(engine).get_columns("outcome_batches")}
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text("UPDATE outcome_batches SET source = 'x'"))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_on_postgresql_every_outcome_table_refuses_truncate(postgres_url: str) -> None:
    engine = engine_from_url(postgres_url)
    try:
        upgrade_to_head(engine)
        for table in ("outcome_batches", "outcome_retractions", *EVENT_TABLES_NAMED):
            with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
                connection.execute(text(f"TRUNCATE {table} CASCADE"))
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_0006_keeps_every_event_of_every_partition_both_ways(
    postgres_url: str,
    clock: Callable[[], dt.datetime],
    tmp_path: Path,
    partitions: Callable[[Engine], dict[str, int]],
) -> None:
    """A batch in a partition of its own and one in the shared partition: after a downgrade to
    0005 both are in the one table 0005 made, after the upgrade again in the shared partition;
    the tables stay append-only at each step, and a large load gets a partition again."""
    engine = engine_from_url(postgres_url)
    try:
        upgrade_to_head(engine)
        EventStore(engine, clock=clock, own_partition_bytes=0).load(
            FIXTURES / "medical_claim.csv", "claim_line")  # fmt: skip
        small = tmp_path / "small.csv"
        small.write_text("claim_id,claim_line_number,claim_type,patient_id,claim_start_date,"
                         "paid_amount\ns1,1,x,p1,2018-01-05,1.00\n")  # fmt: skip
        store = EventStore(engine, clock=clock)
        store.load(small, "claim_line")
        before = list(store.events("claim_line", as_of=clock()))
        assert partitions(engine) == {
            "events_claim_line_p1": 6_075, "events_claim_line_shared": 1}  # fmt: skip

        for move, revision, expected in (
            ("downgrade", "0005_lean_event_tables", {}),
            ("upgrade", "head", {"events_claim_line_shared": 6_076}),
        ):
            _migrate(engine, move, revision)

            assert partitions(engine) == expected
            assert list(store.events("claim_line", as_of=clock())) == before
            for statement in ("DELETE FROM events_claim_line", "TRUNCATE events_claim_line"):
                with pytest.raises(DatabaseError, match="append-only"), engine.begin() as c:
                    c.execute(text(statement))
        again = tmp_path / "again.csv"
        again.write_text(small.read_text().replace("s1,", "s2,"))
        EventStore(engine, clock=clock, own_partition_bytes=0).load(again, "claim_line")
        assert partitions(engine) == {
            "events_claim_line_p1": 1, "events_claim_line_shared": 6_076}  # fmt: skip
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_0006_keeps_what_each_role_may_do_with_the_events_tables_both_ways(
    postgres_url: str,
) -> None:
    """The partitioned table 0006 makes (LIKE the old one, which copies no grant) is granted what
    the old table was; the downgrade gives it back to the table it restores."""
    engine = engine_from_url(postgres_url)
    role = f"settle_reader_{secrets.token_hex(4)}"
    try:
        _migrate(engine, "upgrade", "0005_lean_event_tables")
        with engine.begin() as connection:
            schema = connection.scalar(text("SELECT current_schema()"))
            connection.execute(text(f"CREATE ROLE {role} NOLOGIN"))
            connection.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {role}"))
            connection.execute(text(f"GRANT SELECT ON events_claim_line TO {role}"))

        for move, revision in (("upgrade", "head"), ("downgrade", "0005_lean_event_tables")):
            _migrate(engine, move, revision)

            with engine.begin() as connection:
                connection.execute(text(f"SET LOCAL ROLE {role}"))
                assert connection.scalar(text("SELECT count(*) FROM events_claim_line")) == 0
                with pytest.raises(DatabaseError, match="permission denied"):
                    connection.execute(text("SELECT count(*) FROM events_eligibility"))
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        engine.dispose()

"""Shared fixtures: a PostgreSQL schema per test session, and a database URL and engine per backend.

Each session gets its own schema, so runs on one server cannot collide;
with CI set, an unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text

from api.database import engine_from_url
from api.schema import upgrade_to_head

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_server_url() -> str:
    return os.environ.get("SETTLE_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def _admin_connection(url: str) -> psycopg.Connection[tuple[object, ...]]:
    libpq_url = url.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(libpq_url, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[str]:
    """A fresh schema `settle_test_<hex>` for this session, dropped with all it holds at the end."""
    yield from _session_schema()


@pytest.fixture(scope="session")
def postgres_twin_schema() -> Iterator[str]:
    """A second schema of this session's, for a test comparing two databases side by side."""
    yield from _session_schema()


def _session_schema() -> Iterator[str]:
    server_url = _postgres_server_url()
    try:
        connection = _admin_connection(server_url)
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL not reachable at {server_url}: {' '.join(str(error).split())}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests, not skip them)")
        pytest.skip(reason)
    schema = f"settle_test_{secrets.token_hex(6)}"
    with connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield schema
        finally:
            connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def schema_url(server_url: str, schema: str) -> str:
    """The server URL narrowed to one schema, the way Settle is told to use one."""
    separator = "&" if "?" in server_url else "?"
    return f"{server_url}{separator}options={quote(f'-csearch_path={schema}')}"


def _emptied(schema: str) -> str:
    """This session's schema emptied, and the URL into it."""
    server_url = _postgres_server_url()
    with _admin_connection(server_url) as connection:
        named = sql.Identifier(schema)
        connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(named))
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(named))
    return schema_url(server_url, schema)


@pytest.fixture
def postgres_url(postgres_schema: str) -> str:
    """A URL into this session's schema, emptied first so each test starts from nothing."""
    return _emptied(postgres_schema)


@pytest.fixture
def empty_database(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """A function that gives an empty database on a backend ("sqlite" or "postgres") at each
    call, for a test that needs many (a property test, an example each): a new SQLite file, or
    this session's PostgreSQL schema emptied again."""

    def empty(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'{secrets.token_hex(4)}.db'}"
        return _emptied(request.getfixturevalue("postgres_schema"))

    return empty


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'settle.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend in turn: a temp SQLite file, then a PostgreSQL schema."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def postgres_twin_url(postgres_twin_schema: str) -> str:
    """A URL into this session's second schema, emptied first."""
    return _emptied(postgres_twin_schema)


@pytest.fixture
def upgraded_engine(database_url: str) -> Iterator[Engine]:
    """An engine on `database_url` whose schema is at Alembic's head."""
    engine = engine_from_url(database_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


class ManualClock:
    """A clock for stores that moves a minute at each reading, from 2026-01-01 UTC: a test then
    knows when each batch was learned and can read as of any moment between."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(minutes=1)
        return self.now


@pytest.fixture
def new_clock() -> type[ManualClock]:
    """Makes a new clock at each call (a property test needs one an example)."""
    return ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def claim_line_partitions(engine: Engine) -> dict[str, int]:
    """PostgreSQL: each partition of events_claim_line with its number of rows ({} where the
    table is not partitioned)."""
    with engine.connect() as connection:
        names = connection.scalars(text(
            "SELECT inhrelid::regclass::text FROM pg_inherits "
            "WHERE inhparent = 'events_claim_line'::regclass ORDER BY 1"
        )).all()  # fmt: skip
        return {name: connection.scalar(text(f"SELECT count(*) FROM {name}")) for name in names}


@pytest.fixture
def partitions() -> Callable[[Engine], dict[str, int]]:
    """`claim_line_partitions`, for the tests that look where batches landed."""
    return claim_line_partitions


def claim_line_tables_of_batches(engine: Engine) -> list[str]:
    """PostgreSQL: the tables made for claim-line batches of their own, attached or not (a load
    that failed or was killed must leave none)."""
    with engine.connect() as connection:
        query = text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                     "AND tablename LIKE 'events\\_claim\\_line\\_p%' ORDER BY 1")  # fmt: skip
        return list(connection.scalars(query))


@pytest.fixture
def batch_tables() -> Callable[[Engine], list[str]]:
    """`claim_line_tables_of_batches`, for the tests that look for partitions left behind."""
    return claim_line_tables_of_batches

"""Engines from URLs: the psycopg 3 driver for PostgreSQL, WAL and foreign keys for SQLite.

Knows URLs and connections only; the tables belong to the stores, the schema to migrations/.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, TypeDecorator, create_engine, event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import ArgumentError

from rules.errors import SettleError

_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([^\s,]+)")


class DatabaseUrlError(SettleError):
    """A database URL SQLAlchemy cannot parse, or whose driver is not installed."""


def sqlalchemy_url(url: str | URL) -> URL:
    """The URL as SQLAlchemy should open it: plain `postgresql://` means psycopg 3, not psycopg2."""
    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise DatabaseUrlError(f"not a database URL: {error}") from error
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def engine_from_url(url: str | URL) -> Engine:
    """An engine for `url`; SQLite connections get foreign keys on and the WAL journal."""
    parsed = sqlalchemy_url(url)
    try:
        engine = create_engine(parsed)
    except (ArgumentError, ImportError) as error:  # an unknown dialect, a driver not installed
        raise DatabaseUrlError(f"cannot open {masked_url(parsed)}: {error}") from error
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        # WAL lets readers go on while a batch is written; in-memory databases answer "memory".
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def masked_url(url: str | URL) -> str:
    """The URL fit to print: its password, if any, shown as ***."""
    return make_url(url).render_as_string(hide_password=True)


def search_path_schema(url: str | URL) -> str | None:
    """The first schema of a PostgreSQL URL's `options=-csearch_path=...`, else None."""
    parsed = sqlalchemy_url(url)
    if parsed.get_backend_name() != "postgresql":
        return None
    options = parsed.query.get("options")
    if options is None:
        return None
    joined = options if isinstance(options, str) else " ".join(options)
    match = _SEARCH_PATH.search(joined)
    return match.group(1).strip('"') if match else None


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend; SQLite keeps no zone, so UTC is stored and assumed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored: {value!r}")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    """The stores' default clock: an aware UTC timestamp (tests pass their own)."""
    return datetime.now(UTC)

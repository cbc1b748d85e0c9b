"""Alembic's entry point: runs versions/ on the connection that api.schema hands it.

There is no alembic.ini. A schema named by the URL's search_path holds the tables and
alembic_version.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from api.database import engine_from_url, search_path_schema


def _run_migrations(connection: Connection) -> None:
    schema = search_path_schema(connection.engine.url)
    if schema is not None:
        # Tables follow the search_path; the version table needs the schema named explicitly.
        quoted = connection.dialect.identifier_preparer.quote_schema(schema)
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
    _begin_sqlite_transaction(connection)
    context.configure(connection=connection, version_table_schema=schema)
    with context.begin_transaction():
        context.run_migrations()


def _begin_sqlite_transaction(connection: Connection) -> None:
    """SQLite's Python driver opens a transaction only before a DML statement: the DDL of a
    migration (a table renamed, created, dropped) would commit one statement at a time, and a
    migration failing half-way would leave half a schema. One explicit BEGIN makes the whole
    upgrade one transaction, as on PostgreSQL."""
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        driver.execute("BEGIN")


_given: Connection | None = context.config.attributes.get("connection")
if _given is not None:
    _run_migrations(_given)
else:
    _engine = engine_from_url(context.config.get_main_option("sqlalchemy.url", ""))
    with _engine.begin() as _connection:
        _run_migrations(_connection)
    _engine.dispose()

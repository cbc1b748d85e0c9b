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
    context.configure(connection=connection, version_table_schema=schema)
    with context.begin_transaction():
        context.run_migrations()


_given: Connection | None = context.config.attributes.get("connection")
if _given is not None:
    _run_migrations(_given)
else:
    _engine = engine_from_url(context.config.get_main_option("sqlalchemy.url", ""))
    with _engine.begin() as _connection:
        _run_migrations(_connection)
    _engine.dispose()

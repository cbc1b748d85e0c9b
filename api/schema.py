"""Brings a database's schema to Alembic's head and reports its revision; no alembic.ini needed.

The revisions live in migrations/ beside the installed packages (the project is installed editable).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from api.database import masked_url, search_path_schema
from rules.errors import SettleError

MIGRATIONS_DIRECTORY = Path(__file__).resolve().parents[1] / "migrations"


class SchemaError(SettleError):
    """The database cannot be reached or its schema cannot be brought to the head revision."""


def upgrade_to_head(engine: Engine) -> str | None:
    """Create or migrate the schema to the newest revision; returns the revision reached."""
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), "head")
    except (DBAPIError, CommandError) as error:  # a migration failing rolls back whole
        raise _schema_error(engine, "cannot upgrade", error) from error
    return current_revision(engine)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has never been upgraded."""
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table_schema": search_path_schema(engine.url)}
            )
            return context.get_current_revision()
    except OperationalError as error:
        raise _schema_error(engine, "cannot read the revision of", error) from error


def head_revision() -> str | None:
    """The newest revision in migrations/versions."""
    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()


def _alembic_config(connection: Connection | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIRECTORY))
    config.attributes["connection"] = connection
    return config


def _schema_error(engine: Engine, doing: str, error: Exception) -> SchemaError:
    cause = getattr(error, "orig", None) or error
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return SchemaError(f"{doing} {masked_url(engine.url)}: {first_line}")

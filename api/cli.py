"""The `settle` command line: the root group, its help on configuration, and `settle db`.

Commands stay thin: they load settings, call a module that does the work, and print the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import click
from sqlalchemy import Engine

from api import cli_audit, cli_events, cli_ledger, cli_rules
from api.cli_errors import SettleGroup
from api.config import CONFIG_FILE_VARIABLE, Settings, load_settings, variables_help
from api.database import engine_from_url, masked_url
from api.schema import current_revision, head_revision, upgrade_to_head

_EPILOG = (
    f"Configuration: defaults, then the TOML file named by {CONFIG_FILE_VARIABLE}, "
    "then these environment variables, each overriding the one before.\n\n\b\n" + variables_help()
)


@click.group(name="settle", cls=SettleGroup, epilog=_EPILOG)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Settle value-based-care contracts: executable terms, explained settlements, a ledger."""
    # Every command finds the Settings as its context object (`@click.pass_obj`); a test may
    # pass its own as `obj=`.
    if ctx.obj is None:
        ctx.obj = load_settings()
    settings: Settings = ctx.obj
    logging.basicConfig(
        level=settings.log_level_number, format="%(levelname)s %(name)s: %(message)s"
    )


@main.group()
def db() -> None:
    """Create, migrate and inspect the database schema."""


@db.command()
@click.pass_obj
def upgrade(settings: Settings) -> None:
    """Create the schema, or migrate it, to the newest revision."""
    _report_revision(settings, upgrade_to_head)


@db.command()
@click.pass_obj
def current(settings: Settings) -> None:
    """Show the revision the database is at, and whether it is the newest."""
    _report_revision(settings, current_revision)


def _report_revision(settings: Settings, find_revision: Callable[[Engine], str | None]) -> None:
    engine = engine_from_url(settings.database_url)
    try:
        revision = find_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"database: {masked_url(settings.database_url)}")
    click.echo(f"revision: {_describe(revision)}")


def _describe(revision: str | None) -> str:
    head = head_revision()
    if revision is None:
        return "none (run `settle db upgrade`)"
    if revision == head:
        return f"{revision} (head)"
    return f"{revision} (head is {head}; run `settle db upgrade`)"


cli_rules.register(main)
cli_ledger.register(main)
cli_audit.register(main)
cli_events.register(main)

"""The outcome-event commands of the `settle` CLI: load, batches, show, retract.

Thin: each opens the configured database and calls `outcomes.store`; large loads show progress.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from api.config import Settings
from api.database import engine_from_url
from contracts.validate import load_contract_file
from outcomes.aggregates import Window, compile_aggregate, compute
from outcomes.events import EVENT_TYPES
from outcomes.readers import read_mapping
from outcomes.store import Batch, EventStore


@contextmanager
def open_events(settings: Settings) -> Iterator[EventStore]:
    engine = engine_from_url(settings.database_url)
    try:
        yield EventStore(engine)
    finally:
        engine.dispose()


def register(group: click.Group) -> None:
    group.add_command(events)
    group.add_command(aggregates)


@click.group()
def events() -> None:
    """Load outcome events (claims, eligibility, attribution, quality, episodes, risk scores,
    admissions) in batches, and list, show or retract batches."""


@events.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--type", "event_type", required=True, type=click.Choice(list(EVENT_TYPES)),
              help="The event type of every row.")  # fmt: skip
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="YAML or JSON {event column: file column} for other layouts than Tuva's.",
)
@click.option("--as-of-source", type=click.DateTime(), default=None,
              help="When the source says it knew these events (kept with the batch).")  # fmt: skip
@click.pass_obj
def load(
    settings: Settings,
    file: str,
    event_type: str,
    mapping: str | None,
    as_of_source: dt.datetime | None,
) -> None:
    """Load FILE as one batch: every row lands or none does, and every problem is reported."""
    columns = read_mapping(mapping) if mapping else None
    source_as_of = as_of_source.replace(tzinfo=dt.UTC) if as_of_source else None
    with open_events(settings) as store, Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        transient=True, disable=not click.get_text_stream("stderr").isatty(),
    ) as progress:  # fmt: skip
        task = progress.add_task(f"loading {file}", total=None)

        def report(rows: int) -> None:
            progress.update(task, description=f"loading {file}: {rows:,} rows")

        result = store.load(file, event_type, mapping=columns, source_as_of=source_as_of,
                            on_progress=report)  # fmt: skip
    state = "loaded" if result.loaded else "already loaded (nothing changed)"
    click.echo(f"{state}: {_line(result.batch)}")


def _line(batch: Batch) -> str:
    retracted = f"  retracted {batch.retracted_at:%Y-%m-%d %H:%M}" if batch.retracted_at else ""
    return (f"{batch.batch_id[:16]}  {batch.event_type:<14} {batch.rows:>10,} rows  learned "
            f"{batch.learned_at:%Y-%m-%d %H:%M:%S}  {batch.source}{retracted}")  # fmt: skip


@events.command()
@click.pass_obj
def batches(settings: Settings) -> None:
    """List the batches, oldest first."""
    with open_events(settings) as store:
        found = store.batches()
    if not found:
        click.echo("no batches")
    for batch in found:
        click.echo(_line(batch))


@events.command()
@click.argument("batch_id")
@click.pass_obj
def show(settings: Settings, batch_id: str) -> None:
    """Show one batch (give at least 8 characters of its id)."""
    with open_events(settings) as store:
        batch = store.batch(batch_id)
    click.echo(f"batch        {batch.batch_id}")
    click.echo(f"event type   {batch.event_type}")
    click.echo(f"source       {batch.source}")
    click.echo(f"rows         {batch.rows:,}")
    click.echo(f"learned at   {batch.learned_at.isoformat()}")
    if batch.source_as_of:
        click.echo(f"source as of {batch.source_as_of.isoformat()}")
    if batch.retracted_at:
        click.echo(f"retracted    {batch.retracted_at.isoformat()}: {batch.retraction_reason}")


@events.command()
@click.argument("batch_id")
@click.option("--reason", required=True, help="Why the batch is withdrawn.")
@click.pass_obj
def retract(settings: Settings, batch_id: str, reason: str) -> None:
    """Withdraw a batch from every read as of now (a retraction record; nothing is deleted)."""
    with open_events(settings) as store:
        batch = store.retract(batch_id, reason=reason)
    click.echo(f"retracted: {_line(batch)}")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--period", default=None, help="The contract's period (default: its first).")
@click.option("--as-of", "as_of", type=click.DateTime(), default=None,
              help="Use only what was known then (UTC; default: now).")  # fmt: skip
@click.option("--sql", "show_sql", is_flag=True, help="Also print each aggregate's SQL.")
@click.pass_obj
def aggregates(
    settings: Settings, file: str, period: str | None, as_of: dt.datetime | None, show_sql: bool
) -> None:
    """Compute contract FILE's aggregate inputs from the stored outcome events, in the database."""
    version = load_contract_file(file)
    contract = version.contract
    chosen = contract.period(period) if period else contract.periods[0]
    cutoff = as_of.replace(tzinfo=dt.UTC) if as_of else dt.datetime.now(dt.UTC)
    window = Window(chosen.start, chosen.end, cutoff)
    parameters = {p.name: found.value for p in contract.parameters
                  if (found := p.in_force(chosen.start)) is not None}  # fmt: skip
    declared = [i for i in contract.inputs if i.aggregate is not None]
    if not declared:
        click.echo(f"contract {contract.id} declares no aggregate inputs")
        return
    engine = engine_from_url(settings.database_url)
    try:
        click.echo(f"contract {contract.id}, period {chosen.id} ({chosen.start} to {chosen.end}), "
                   f"as of {cutoff.isoformat()}")  # fmt: skip
        for item in declared:
            assert item.aggregate is not None
            value = compute(engine, item.aggregate, window, parameters)
            click.echo(f"  {item.name} = {value}   ({item.aggregate.measure} of "
                       f"{item.aggregate.events})")  # fmt: skip
            if show_sql:
                query = compile_aggregate(item.aggregate, window, parameters)
                compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
                click.echo("    " + str(compiled).replace("\n", "\n    "))
    finally:
        engine.dispose()

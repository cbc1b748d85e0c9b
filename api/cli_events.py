"""The outcome-event commands of the `settle` CLI: load, batches, show, retract, build-episodes,
and `settle aggregates`.

Thin: each opens the configured database and calls `outcomes.store`; large loads show progress.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from api.config import Settings
from api.database import engine_from_url
from contracts.evaluation import parameter_values
from contracts.model import ContractVersion, Input
from contracts.validate import load_contract_file
from outcomes.aggregates import Window, anchor_lines, compile_aggregate, compute, input_value
from outcomes.episodes import EpisodeRule, build_episodes
from outcomes.events import EVENT_TYPES
from outcomes.readers import read_mapping
from outcomes.store import Batch, EventStore
from rules.errors import Problem, RuleError
from rules.values import RowSet, Value


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


@events.command("build-episodes")
@click.option("--name", required=True,
              help="The episode rule's name; episodes are NAME-<claim id>.")  # fmt: skip
@click.option("--drg", "drgs", required=True, multiple=True, metavar="CODE",
              help="An anchor MS-DRG (repeatable), e.g. --drg 469 --drg 470.")  # fmt: skip
@click.option("--days", default=90, show_default=True, type=int,
              help="Days after discharge the episode lasts.")  # fmt: skip
@click.option("--as-of", "as_of", type=click.DateTime(), default=None,
              help="Build from the claims known then (UTC; default: now).")  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Also keep the episodes as this CSV file.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Build and report; load nothing.")
@click.pass_obj
def build_episodes_command(
    settings: Settings,
    name: str,
    drgs: tuple[str, ...],
    days: int,
    as_of: dt.datetime | None,
    out: str | None,
    dry_run: bool,
) -> None:
    """Build episodes from the stored claims (an inpatient stay with one of the MS-DRGs, to
    discharge + DAYS; a stay during a running episode is a readmission within it) and load them
    as a batch of episode events, superseding (retracting) the rule's earlier batch. Nothing is
    loaded if the rule's current batch already holds exactly these episodes."""
    rule = EpisodeRule(name, frozenset(drgs), days)
    cutoff = _cutoff(as_of)
    with open_events(settings) as store:
        built = build_episodes(rule, anchor_lines(store.engine, rule, cutoff))
        click.echo(f"{rule.describe()}, from the claims known as of {cutoff.isoformat()}: "
                   f"{len(built.episodes):,} episodes, {len(built.absorbed):,} readmission "
                   "stays inside a running episode")  # fmt: skip
        for stay in built.absorbed:
            click.echo(f"  claim {stay.anchor_claim_id} falls inside episode {stay.episode_id}")
        if out is not None:
            Path(out).write_bytes(built.csv_bytes(claims_as_of=cutoff))
            click.echo(f"wrote {out}")
        if dry_run:
            click.echo("nothing loaded (dry run)")
            return
        done = store.rebuild_episodes(built, cutoff)
    if done.unchanged is not None:
        click.echo(f"unchanged: the rule's current batch {done.unchanged.batch_id[:16]}… holds "
                   "these episodes; nothing loaded")  # fmt: skip
    if done.loaded is not None:
        click.echo(f"loaded: {_line(done.loaded)}")
    for batch in done.retracted:
        click.echo(f"retracted: {_line(batch)}")
    if done.unchanged is None and done.loaded is None and not done.retracted:
        click.echo("nothing loaded: no episodes")


def _cutoff(as_of: dt.datetime | None) -> dt.datetime:
    """A cutoff in UTC (naive times are UTC; none: now); a cutoff in the future is refused, since
    what will be known then is not known yet and a re-run would see something else."""
    now = dt.datetime.now(dt.UTC)
    if as_of is None:
        return now
    cutoff = as_of.replace(tzinfo=dt.UTC) if as_of.tzinfo is None else as_of
    if cutoff > now:
        raise click.BadParameter(f"{cutoff.isoformat()} is in the future; a cutoff is a time "
                                 "already past", param_hint="--as-of")  # fmt: skip
    return cutoff


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
    window = aggregate_window(version, period, as_of)
    parameters = parameter_values(version, {}, period)
    declared = [i for i in contract.inputs if i.aggregate is not None]
    if not declared:
        click.echo(f"contract {contract.id} declares no aggregate inputs")
        return
    engine = engine_from_url(settings.database_url)
    try:
        click.echo(f"contract {contract.id}, {window.start} to {window.end}, as of "
                   f"{window.as_of.isoformat()}")  # fmt: skip
        for item in declared:
            assert item.aggregate is not None
            try:
                shown = _shown(compute(engine, item.aggregate, window, parameters))
            except RuleError as error:
                shown = "not computed: " + "; ".join(p.message for p in error.problems)
            click.echo(f"  {item.name} = {shown}   ({item.aggregate.measure} of "
                       f"{item.aggregate.events})")  # fmt: skip
            if show_sql:
                query = compile_aggregate(item.aggregate, window, parameters)
                compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
                click.echo("    " + str(compiled).replace("\n", "\n    "))
    finally:
        engine.dispose()


def aggregate_window(
    version: ContractVersion, period: str | None, as_of: dt.datetime | None
) -> Window:
    """The period's dates and the cutoff (naive times are UTC; none: now), for this contract."""
    chosen = version.contract.period(period)
    return Window(chosen.start, chosen.end, _cutoff(as_of), version.contract.id)


def aggregate_inputs(
    database_url: str,
    version: ContractVersion,
    window: Window,
    given: Mapping[str, Any],
    parameters: Mapping[str, Value],
) -> dict[str, Any]:
    """The contract's aggregate inputs computed from the stored events, as input values; every
    problem reported together. An input also given by hand is refused, not silently replaced."""
    declared = [i for i in version.contract.inputs if i.aggregate is not None]
    problems = [Problem(f"inputs.{i.name}", "given in the inputs and computed from events: give "
                        "one or the other") for i in declared if i.name in given]  # fmt: skip
    values: dict[str, Any] = {}
    engine = engine_from_url(database_url)
    try:
        for item in declared:
            if item.name not in given:
                values[item.name] = _computed(engine, item, window, parameters, problems)
    finally:
        engine.dispose()
    if problems:
        raise RuleError(problems)
    return values


def _computed(
    engine: Any,
    item: Input,
    window: Window,
    parameters: Mapping[str, Value],
    problems: list[Problem],
) -> Any:
    assert item.aggregate is not None
    try:
        return input_value(compute(engine, item.aggregate, window, parameters))
    except RuleError as error:
        problems.extend(Problem(f"inputs.{item.name}", p.message) for p in error.problems)
        return None


def _shown(value: Value) -> str:
    if not isinstance(value, RowSet):
        return str(value)
    lines = [", ".join(f"{name} {cell}" for name, cell in row) for row in value.rows[:20]]
    more = [f"… and {len(value) - 20:,} more rows"] if len(value) > 20 else []
    return f"{len(value):,} rows" + "".join(f"\n      {line}" for line in [*lines, *more])

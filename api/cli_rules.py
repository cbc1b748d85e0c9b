"""The rule-language commands of the `settle` CLI: contract, evaluate, explain and demo.

Thin: each reads its arguments, calls `contracts` or `rules`, and prints. Problems in a contract
or its inputs are SettleErrors, which `settle` prints with their positions and exits 2.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from api.cli_events import aggregate_inputs, aggregate_window
from api.cli_ledger import open_ledger
from api.config import Settings
from api.database import engine_from_url
from api.demo import run_demo
from contracts.cases import EvaluationCase, evaluate_case, is_case_file, read_cases
from contracts.diff import format_diff
from contracts.evaluation import Evaluation, parameter_values
from contracts.explain import explain as explain_text
from contracts.model import ContractVersion
from contracts.store import ContractStore
from contracts.validate import load_contract_file
from rules.errors import RuleError
from settlement.postings import settlement_record


def register(group: click.Group) -> None:
    """Attach the contract, evaluate, explain and demo commands to the `settle` group."""
    group.add_command(contract)
    group.add_command(evaluate)
    group.add_command(explain)
    group.add_command(demo)


@click.group()
def contract() -> None:
    """Validate, compare and store contract documents (YAML or JSON)."""


@contract.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check each FILE: structure, parameter values, expressions and types.

    Prints each contract's version hash, or every problem with its clause and position.
    """
    failed: list[RuleError] = []
    for path in files:
        try:
            version = load_contract_file(path)
        except RuleError as error:
            click.echo(f"{path}: {len(error.problems)} problem(s)", err=True)
            failed.append(error)
            continue
        c = version.contract
        click.echo(
            f"{path}: contract {c.id} is valid, version {version.content_hash} "
            f"({len(c.parameters)} parameters, {len(c.inputs)} inputs, "
            f"{len(c.definitions)} definitions, {len(c.payments)} payments)"
        )
    if failed:
        raise RuleError(p for error in failed for p in error.problems)


@contract.command()
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
def diff(old: str, new: str) -> None:
    """Show what changed from OLD to NEW, clause by clause."""
    click.echo(format_diff(load_contract_file(old), load_contract_file(new)), nl=False)


@contract.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def add(settings: Settings, file: str) -> None:
    """Validate FILE and store it as a contract version (run `settle db upgrade` first)."""
    version = load_contract_file(file)
    engine = engine_from_url(settings.database_url)
    try:
        new = ContractStore(engine).add(
            contract_id=version.contract.id,
            content_hash=version.content_hash,
            canonical_json=version.canonical_json,
        )
    finally:
        engine.dispose()
    state = "stored" if new else "already stored"
    click.echo(f"contract {version.contract.id} version {version.content_hash}: {state}")


@contract.command()
@click.argument("contract_id")
@click.pass_obj
def versions(settings: Settings, contract_id: str) -> None:
    """List the stored versions of CONTRACT_ID, oldest first."""
    engine = engine_from_url(settings.database_url)
    try:
        found = ContractStore(engine).versions(contract_id)
    finally:
        engine.dispose()
    if not found:
        click.echo(f"no stored versions of contract {contract_id}")
    for stored in found:
        click.echo(f"{stored.created_at.isoformat()}  {stored.content_hash}")


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: write NAME=VALUE", param_hint="--param")
        params[name.strip()] = _param_value(raw.strip())
    return params


def _param_value(raw: str) -> Any:
    if raw[:1] in ("[", "{"):
        try:
            return json.loads(raw, parse_float=Decimal)
        except ValueError as error:
            raise click.BadParameter(f"{raw!r}: not valid JSON: {error}") from None
    return {"true": True, "false": False}.get(raw, raw)


_SHARED_OPTIONS = [
    click.argument("file", type=click.Path(dir_okay=False)),
    click.option(
        "--inputs",
        "inputs_path",
        default=None,
        type=click.Path(dir_okay=False),
        help="A JSON object of inputs, a {params, inputs} case, or a .jsonl file of cases.",
    ),
    click.option(
        "--events",
        "from_events",
        is_flag=True,
        help="Compute the contract's aggregate inputs from the stored outcome events (the other "
        "inputs from --inputs).",
    ),
    click.option(
        "--as-of",
        "as_of",
        type=click.DateTime(),
        default=None,
        help="With --events: use only the events known then (UTC; default: now).",
    ),
    click.option(
        "--param",
        "params",
        multiple=True,
        metavar="NAME=VALUE",
        help="Override a parameter for this evaluation (repeatable).",
    ),
    click.option(
        "--period", default=None, help="The period id (default: the case's, or the first)."
    ),
]


def _shared(function: Any) -> Any:
    for option in reversed(_SHARED_OPTIONS):
        function = option(function)
    return function


@click.command()
@_shared
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: contract, quantities, payments, trace."
)
@click.option(
    "--record",
    is_flag=True,
    help="Append the payments to the ledger as one entry committed to the contract, inputs and "
    "trace (run `settle db upgrade` first). Recording the same settlement again is a no-op.",
)
@click.pass_obj
def evaluate(
    settings: Settings,
    file: str,
    inputs_path: str | None,
    from_events: bool,
    as_of: dt.datetime | None,
    params: tuple[str, ...],
    period: str | None,
    as_json: bool,
    record: bool,
) -> None:
    """Evaluate contract FILE on the given inputs; print its quantities and payments.

    With a .jsonl file of cases, evaluate each ({"params": …, "inputs": …} per line) and print
    one line per case, in order; a case's error is reported on its line and the others go on.
    """
    version = load_contract_file(file)
    overrides = _parse_params(params)
    if inputs_path is not None and is_case_file(inputs_path):
        if record:
            raise click.UsageError("--record takes one case, not a .jsonl file of cases")
        _refuse_events_with_cases(from_events)
        _evaluate_many(version, inputs_path, overrides, period, as_json)
        return
    case = _one_case(settings, version, inputs_path, from_events, as_of, period, overrides)
    evaluation = evaluate_case(version, case, overrides, period)
    if record:
        _record(settings, evaluation)
    if as_json:
        click.echo(json.dumps(evaluation.result(), indent=2, ensure_ascii=False))
        return
    result = evaluation.result()
    click.echo(
        f"contract {version.contract.id} version {version.content_hash}, period {result['period']}"
    )
    width = max(len(name) for name in result["quantities"])
    for name, value in result["quantities"].items():
        click.echo(f"  {name:<{width}}  {value}")
    for payment in result["payments"]:
        click.echo(
            f"payment {payment['name']}: {payment['from']} -> {payment['to']} "
            f"{payment['amount']} {payment['currency']}"
        )
    if not result["payments"]:
        click.echo("no payments")


def _one_case(
    settings: Settings,
    version: ContractVersion,
    inputs_path: str | None,
    from_events: bool,
    as_of: dt.datetime | None,
    period: str | None,
    overrides: Mapping[str, Any],
) -> EvaluationCase:
    """The case to evaluate: from --inputs, with the aggregate inputs computed from the events
    if --events says so (they are then part of the inputs the trace and the ledger record)."""
    if inputs_path is None and not from_events:
        raise click.UsageError("give --inputs FILE, or --events to compute the inputs from events")
    if as_of is not None and not from_events:
        raise click.UsageError("--as-of is the cutoff of --events")
    case = EvaluationCase("events") if inputs_path is None else next(iter(read_cases(inputs_path)))
    if not from_events or case.problem is not None:
        return case
    chosen = period or case.period
    window = aggregate_window(version, chosen, as_of)
    parameters = parameter_values(version, {**case.params, **overrides}, chosen)
    computed = aggregate_inputs(settings.database_url, version, window, case.inputs, parameters)
    click.echo(f"inputs {', '.join(computed) or '(none)'} computed from the events known as of "
               f"{window.as_of.isoformat()}", err=True)  # fmt: skip
    source = f"events as of {window.as_of.isoformat()}"
    return replace(case, inputs={**case.inputs, **computed},
                   sources={name: source for name in computed})  # fmt: skip


def _refuse_events_with_cases(from_events: bool) -> None:
    if from_events:
        raise click.UsageError("--events takes one case, not a .jsonl file of cases")


def _record(settings: Settings, evaluation: Evaluation) -> None:
    """Append the evaluation's payments to the ledger; say where they landed, on stderr."""
    recorded = settlement_record(evaluation)
    if recorded is None:
        click.echo("nothing recorded: the settlement makes no payment", err=True)
        return
    with open_ledger(settings) as store:
        (placed,) = store.append([recorded.entry], documents=recorded.documents)
    click.echo(
        f"recorded as ledger {settings.ledger} entry {placed.sequence} {placed.entry_hash.hex()}",
        err=True,
    )


def _evaluate_many(
    version: Any, path: str, overrides: dict[str, Any], period: str | None, as_json: bool
) -> None:
    failures = 0
    for case in read_cases(path):
        label = _label(case)
        try:
            evaluation = evaluate_case(version, case, overrides, period)
        except RuleError as error:
            failures += 1
            problems = [p.format() for p in error.problems]
            if as_json:
                click.echo(json.dumps({"case": label, "error": problems}, ensure_ascii=False))
            else:
                click.echo(f"case {label}: error:\n{_indented(error)}")
            continue
        if as_json:
            click.echo(json.dumps({"case": label, **evaluation.result()}, ensure_ascii=False))
        else:
            payments = (
                ", ".join(f"{p.name} {p.amount} {p.currency}" for p in evaluation.payments)
                or "no payments"
            )
            click.echo(f"case {label}: {payments}")
    if failures:
        click.echo(f"{failures} case(s) failed", err=True)
        sys.exit(1)


@click.command()
@_shared
@click.pass_obj
def explain(
    settings: Settings,
    file: str,
    inputs_path: str | None,
    from_events: bool,
    as_of: dt.datetime | None,
    params: tuple[str, ...],
    period: str | None,
) -> None:
    """Evaluate contract FILE and print it as a worked calculation, clause by clause.

    With a .jsonl file of cases, each case is explained in turn under a heading; a case that
    fails is reported in its place and the others go on (exit code 1 if any failed).
    """
    version = load_contract_file(file)
    overrides = _parse_params(params)
    if inputs_path is None or not is_case_file(inputs_path):
        case = _one_case(settings, version, inputs_path, from_events, as_of, period, overrides)
        click.echo(explain_text(evaluate_case(version, case, overrides, period)), nl=False)
        return
    _refuse_events_with_cases(from_events)
    failures = 0
    for case in read_cases(inputs_path):
        click.echo(f"=== case {_label(case)} ({case.where})")
        try:
            click.echo(explain_text(evaluate_case(version, case, overrides, period)))
        except RuleError as error:
            failures += 1
            click.echo(f"error:\n{_indented(error)}\n")
    if failures:
        click.echo(f"{failures} case(s) failed", err=True)
        sys.exit(1)


def _label(case: EvaluationCase) -> str:
    return case.id or case.where.rpartition(":")[2]  # the line number


def _indented(error: RuleError) -> str:
    return "\n".join("  " + line for p in error.problems for line in p.format().splitlines())


@click.command()
@click.option("--folder", type=click.Path(file_okay=False), default="demo", show_default=True,
              help="Where the demo keeps its ledger, keys and audit bundle.")  # fmt: skip
def demo(folder: str) -> None:
    """The whole flow: validate the templates, explain an MSSP settlement, record it in a
    ledger, checkpoint and co-sign it, verify, and check an audit bundle offline."""
    run_demo(Path(folder))

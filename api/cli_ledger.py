"""The ledger commands of the `settle` CLI: append, show, balances, prove, reverse.

Thin: each opens the configured database, calls `ledger.store`, and prints; the checkpoint,
verify and audit commands are in `api.cli_audit`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from api.config import Settings
from api.database import engine_from_url
from contracts.document import read_json
from contracts.numbers import DocumentError
from ledger.entries import RecordedEntry, entry_from_document
from ledger.store import LedgerStore
from rules.errors import Problem, RuleError


@contextmanager
def open_ledger(settings: Settings) -> Iterator[LedgerStore]:
    """The configured ledger, its engine disposed of afterwards."""
    engine = engine_from_url(settings.database_url)
    try:
        yield LedgerStore(engine, ledger=settings.ledger)
    finally:
        engine.dispose()


def register(group: click.Group) -> None:
    group.add_command(ledger)


@click.group()
def ledger() -> None:
    """Append to, read and prove the ledger (SETTLE_LEDGER, default main)."""


@ledger.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.pass_obj
def append(settings: Settings, file: str) -> None:
    """Append the entries in FILE (a JSON entry, a JSON list, or JSON Lines), all or nothing.

    An entry: {"idempotency_key", "memo", "postings": [{"account", "side": "debit"|"credit",
    "amount": "12.50", "currency": "USD"}, …]}. A key already recorded with the same content is
    not recorded twice.
    """
    entries = [entry_from_document(document) for document in _documents(Path(file))]
    with open_ledger(settings) as store:
        recorded = store.append(entries)
    for placed in recorded:
        click.echo(_line(placed))


def _documents(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            return [read_json(line, str(path)) for line in text.splitlines() if line.strip()]
        loaded = read_json(text, str(path))
    except (ValueError, DocumentError) as error:
        raise RuleError([Problem(str(path), f"not valid JSON: {error}")]) from None
    return loaded if isinstance(loaded, list) else [loaded]


def _line(placed: RecordedEntry) -> str:
    return f"{placed.sequence}  {placed.entry_hash.hex()}  {placed.entry.idempotency_key}"


@ledger.command()
@click.argument("sequence", type=int)
@click.pass_obj
def show(settings: Settings, sequence: int) -> None:
    """Print the entry at SEQUENCE: its canonical JSON and its hashes."""
    with open_ledger(settings) as store:
        placed = store.entry(sequence)
    click.echo(json.dumps({
        "sequence": placed.sequence,
        "entry_hash": placed.entry_hash.hex(),
        "previous_hash": placed.previous_hash.hex(),
        "entry": json.loads(placed.canonical),
    }, indent=2, ensure_ascii=False))  # fmt: skip


@ledger.command()
@click.option("--as-of", type=int, default=None, help="Only entries before this sequence number.")
@click.pass_obj
def balances(settings: Settings, as_of: int | None) -> None:
    """Credits less debits per account: what each account is owed."""
    with open_ledger(settings) as store:
        totals = store.balances(as_of=as_of)
    if not totals:
        click.echo("no postings")
    width = max((len(account) for account, _ in totals), default=0)
    for (account, currency), total in totals.items():
        click.echo(f"{account:<{width}}  {format(total, ',f'):>20} {currency}")


@ledger.command()
@click.argument("sequence", type=int)
@click.option("--size", type=int, default=None, help="Tree size to prove against (default: all).")
@click.pass_obj
def prove(settings: Settings, sequence: int, size: int | None) -> None:
    """Print the RFC 9162 inclusion proof of entry SEQUENCE (format settle.proof/v1)."""
    with open_ledger(settings) as store:
        tree_size = store.size() if size is None else size
        if not 0 <= sequence < tree_size:
            raise click.BadParameter(f"entry {sequence} is not in a tree of {tree_size} entries")
        placed = store.entry(sequence)
        proof = store.inclusion_proof(sequence, tree_size)
        root = store.root(tree_size)
    click.echo(json.dumps({
        "format": "settle.proof/v1",
        "kind": "inclusion",
        "ledger": settings.ledger,
        "index": sequence,
        "tree_size": tree_size,
        "leaf": placed.entry_hash.hex(),
        "hashes": [h.hex() for h in proof],
        "root": root.hex(),
    }, indent=2))  # fmt: skip


@ledger.command()
@click.argument("sequence", type=int)
@click.option("--key", "idempotency_key", required=True, help="Idempotency key of the reversal.")
@click.option("--memo", required=True, help="Why the entry is reversed.")
@click.pass_obj
def reverse(settings: Settings, sequence: int, idempotency_key: str, memo: str) -> None:
    """Append a new entry that reverses entry SEQUENCE (nothing is ever changed or deleted)."""
    with open_ledger(settings) as store:
        placed = store.reverse(sequence, idempotency_key=idempotency_key, memo=memo)
    click.echo(_line(placed))

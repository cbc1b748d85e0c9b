"""The trust commands of the `settle` CLI: keys, checkpoints and co-signatures, `settle verify`,
and audit bundles an auditor checks offline.

Thin: each reads files and the configured ledger, calls `ledger` and `settlement`, and prints.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from api.cli_ledger import ledger, open_ledger
from api.config import Settings
from ledger.checkpoint import (
    Policy,
    SignedNote,
)
from ledger.keys import ProvenKey, SigningKey
from ledger.signing import checkpoint_now, signers_of, verify_store
from ledger.signing import cosign as cosign_checkpoint
from ledger.store import LedgerError
from settlement.audit import build_bundle, bundle_origin, verify_bundle


def register(group: click.Group) -> None:
    group.add_command(keys)
    group.add_command(verify)
    group.add_command(audit)


# Keys ------------------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Make signing keys for checkpoints (BLS12-381)."""


@keys.command("new")
@click.option("--party", required=True, help="The key's name, such as payer.cms or service.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Folder for <party>.key (secret, mode 0600) and <party>.pub (trusted-key line).",
)
def new_key(party: str, out: str) -> None:
    """Make a key pair: a secret key file to keep, and a public line to give to verifiers."""
    try:
        key = SigningKey.generate(party)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--party") from None
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = party.replace("/", "_")  # a key name may hold '/' (an origin); a file name may not
    secret, public = folder / f"{stem}.key", folder / f"{stem}.pub"
    if secret.exists():
        raise click.ClickException(f"{secret} exists: refusing to overwrite a key")
    descriptor = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key.to_file_text())
    proven = str(key.prove_possession())
    public.write_text(proven + "\n", encoding="utf-8")
    click.echo(f"secret key: {secret} (keep it; mode 0600)")
    click.echo(f"trusted-key line: {public}")
    click.echo(proven)


def _signing_key(path: str) -> SigningKey:
    return SigningKey.from_file_text(Path(path).read_text(encoding="utf-8"))


# Checkpoints -----------------------------------------------------------------------------------


@ledger.command()
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The service's secret key file.")  # fmt: skip
@click.option(
    "--state",
    default=None,
    type=click.Path(dir_okay=False),
    help="Where the key's last signed checkpoint is kept, outside the database "
    "(default: <key>.last); it refuses to sign a history that does not extend it.",
)
@click.pass_obj
def checkpoint(settings: Settings, key_path: str, state: str | None) -> None:
    """Sign a checkpoint of the ledger as it is now (tree size and root, a C2SP signed note).

    The key never signs a checkpoint inconsistent with the last one it signed: the consistency
    proof between them is checked first.
    """
    key = _signing_key(key_path)
    remembered = Path(state) if state else Path(key_path + ".last")
    with open_ledger(settings) as store:
        note = checkpoint_now(store, key, origin=settings.checkpoint_origin, state=remembered)
    click.echo(str(note), nl=False)


@ledger.command()
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The co-signing party's secret key file.")  # fmt: skip
@click.option("--size", type=int, default=None, help="The checkpoint to co-sign (default: latest).")
@click.pass_obj
def cosign(settings: Settings, key_path: str, size: int | None) -> None:
    """Co-sign a stored checkpoint after recomputing its root from the entries themselves."""
    key = _signing_key(key_path)
    with open_ledger(settings) as store:
        note = cosign_checkpoint(store, key, size=size)
    click.echo("recomputed the entries: the root matches", err=True)
    click.echo(str(note), nl=False)


@ledger.command()
@click.pass_obj
def checkpoints(settings: Settings) -> None:
    """List the stored checkpoints and who signed each."""
    with open_ledger(settings) as store:
        found = store.checkpoints()
    if not found:
        click.echo("no checkpoints")
    for stored in found:
        names = ", ".join(signers_of(stored))
        click.echo(f"size {stored.size:>10,}  root {stored.root.hex()}  signed by {names or '-'}")


# Policy ----------------------------------------------------------------------------------------

_policy_options = [
    click.option("--trusted", "trusted_paths", multiple=True,
                 type=click.Path(dir_okay=False, exists=True),
                 help="A file of trusted-key lines (as `settle keys new` writes); repeatable."),
    click.option("--threshold", type=int, default=None,
                 help="How many trusted keys must sign (default: all of them)."),
    click.option("--require", "required", multiple=True,
                 help="A key name that must be among the signers; repeatable."),
]  # fmt: skip


def _with_policy_options(function: Any) -> Any:
    for option in reversed(_policy_options):
        function = option(function)
    return function


def _policy(
    origin: str, paths: Sequence[str], threshold: int | None, required: Sequence[str]
) -> Policy:
    trusted = []
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                trusted.append(ProvenKey.parse(line.strip()))
    try:
        return Policy(
            origin=origin,
            trusted=frozenset(trusted),
            threshold=len(trusted) if threshold is None else threshold,
            required=frozenset(required),
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--trusted/--threshold/--require") from None


# Verify ----------------------------------------------------------------------------------------


@click.command()
@_with_policy_options
@click.option(
    "--deep",
    is_flag=True,
    help="Also re-check each entry's form and balance, its stored columns and postings.",
)
@click.option(
    "--against",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True),
    help="A signed checkpoint note you kept: the ledger must extend it (repeatable).",
)
@click.pass_obj
def verify(
    settings: Settings,
    trusted_paths: tuple[str, ...],
    threshold: int | None,
    required: tuple[str, ...],
    deep: bool,
    against: tuple[str, ...],
) -> None:
    """Verify the ledger from its bytes: the chain, the Merkle nodes and frontier, every
    checkpoint's root against its signed note, the signatures (with --trusted), and any
    checkpoint you kept (--against). Reports the first fault and exits 2.
    """
    policy = (_policy(settings.checkpoint_origin, trusted_paths, threshold, required)
              if trusted_paths else None)  # fmt: skip
    kept = [SignedNote.parse(Path(path).read_text(encoding="utf-8")) for path in against]
    with open_ledger(settings) as store:
        report = verify_store(store, policy=policy, deep=deep, against=kept)
    chain = report.chain
    checked = "chain, Merkle nodes and frontier" + (
        ", entries, columns and postings" if deep else ""
    )
    click.echo(f"ledger {settings.ledger}: {chain.size:,} entries; {checked} verified "
               f"(root {chain.root.hex()})")  # fmt: skip
    click.echo(f"{len(chain.checkpoints)} checkpoint root(s) match the entries"
               + (f", including the {len(kept)} you hold" if kept else ""))  # fmt: skip
    if policy is None:
        click.echo("signatures not checked: give --trusted files of the keys you trust")
        return
    click.echo(f"{len(report.trusted)} checkpoint(s) signed by {policy.threshold} of "
               f"{', '.join(policy.names)}")  # fmt: skip
    for size, signers in report.awaiting:
        click.echo(f"checkpoint at size {size:,} awaits co-signatures (signed by "
                   f"{', '.join(signers) or 'no trusted key'})")  # fmt: skip


# Audit bundles ---------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """Export and verify self-contained audit bundles."""


@audit.command("export")
@click.option("--contract", "contract_id", required=True, help="The contract id.")
@click.option("--period", required=True, help="The period id.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="The bundle file.")
@click.pass_obj
def export(settings: Settings, contract_id: str, period: str, out: str) -> None:
    """Write the contract's entries for PERIOD, their proofs, the latest co-signed checkpoint,
    and the contract, inputs and traces they commit to, as one JSON file."""
    with open_ledger(settings) as store:
        sequences = store.sequences_for(contract_id=contract_id, period=period)
        if not sequences:
            raise LedgerError(f"ledger {settings.ledger} has no entries of contract "
                              f"{contract_id} for period {period}")  # fmt: skip
        cosigned = [c for c in store.checkpoints() if len(signers_of(c)) >= 2]
        if not cosigned:
            raise LedgerError("no checkpoint is co-signed yet: run `settle ledger cosign`")
        stored = cosigned[-1]
        if stored.size <= sequences[-1]:
            raise LedgerError(
                f"the latest co-signed checkpoint (size {stored.size:,}) does not cover entry "
                f"{sequences[-1]:,}: checkpoint and co-sign first"
            )
        entries, documents = [], {}
        for sequence in sequences:
            placed = store.entry(sequence)
            entries.append((placed, store.inclusion_proof(sequence, stored.size)))
            for digest in (
                placed.entry.contract,
                placed.entry.inputs_hash,
                placed.entry.trace_hash,
            ):
                found = store.document(digest) if digest else None
                if found is not None:
                    documents[digest] = found
    bundle = build_bundle(ledger=settings.ledger, contract_id=contract_id, period=period,
                          note=stored.note_text(), tree_size=stored.size, entries=entries,
                          documents=documents)  # fmt: skip
    Path(out).write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"wrote {out}: {len(entries)} entries proved against the checkpoint of size "
               f"{stored.size:,}")  # fmt: skip


@audit.command("verify")
@click.argument("bundle_path", type=click.Path(dir_okay=False, exists=True))
@_with_policy_options
@click.option("--no-replay", is_flag=True, help="Skip re-evaluating the settlements.")
def verify_bundle_command(
    bundle_path: str,
    trusted_paths: tuple[str, ...],
    threshold: int | None,
    required: tuple[str, ...],
    no_replay: bool,
) -> None:
    """Check an audit bundle offline (no database, no network): entries, proofs, checkpoint
    signatures, documents, and a replay of each settlement to the same trace bytes."""
    bundle = json.loads(Path(bundle_path).read_text(encoding="utf-8"))
    if not trusted_paths:
        raise click.UsageError("give --trusted files: a bundle is checked against keys you trust")
    origin = bundle_origin(bundle)
    policy = _policy(origin, trusted_paths, threshold, required)
    report = verify_bundle(bundle, policy, replay=not no_replay)
    click.echo(f"bundle verified: contract {report.contract_id} period {report.period}, "
               f"{len(report.entries)} entries included in the tree of size {report.tree_size:,} "
               f"signed by {', '.join(report.signers)}"
               + (f"; {len(report.replayed)} settlements replayed to the same trace"
                  if report.replayed else ""))  # fmt: skip

"""Signing the stored ledger's checkpoints: the service's and the parties' keys, each refusing to
sign anything inconsistent with what it signed before. Uses the store; the crypto is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger import merkle
from ledger.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    NoteSignature,
    Policy,
    SignedNote,
    trusted_signers,
    verify_checkpoint,
)
from ledger.errors import VerificationError
from ledger.keys import SigningKey
from ledger.store import LedgerError, LedgerStore, StoredCheckpoint
from ledger.verify import ChainReport, StoredCopies, verify_chain


@dataclass(frozen=True, slots=True)
class StoreReport:
    """What `verify_store` established."""

    chain: ChainReport
    trusted: tuple[int, ...]  # checkpoint sizes whose signatures meet the policy
    awaiting: tuple[tuple[int, tuple[str, ...]], ...]  # sizes signed by too few so far, and by whom


def verify_store(
    store: LedgerStore,
    *,
    policy: Policy | None = None,
    deep: bool = False,
    against: Sequence[SignedNote] = (),
) -> StoreReport:
    """Verify everything the store holds from its bytes: the chain up to the head, the Merkle
    nodes and frontier, every checkpoint's root against the note that was signed, the notes'
    signatures under `policy`, and any checkpoint the caller kept (`against`: it must be a prefix
    of this ledger, or the ledger forked). With `deep`, entries' form and the copies of their
    columns and postings too. Raises VerificationError at the first fault."""
    head = store.head()
    roots: dict[int, bytes] = {}
    notes = []
    for stored in store.checkpoints():
        note = note_of(stored)
        stated = Checkpoint.parse(note.body)
        if (stated.size, stated.root) != (stored.size, stored.root):
            raise VerificationError(
                f"checkpoint at size {stored.size:,}: expected the root its signed note states "
                f"({stated.root.hex()}), got {stored.root.hex()} beside it"
            )
        roots[stated.size] = stated.root
        notes.append((stated, note))
    for note in against:
        kept = verify_checkpoint(note, policy) if policy else Checkpoint.parse(note.body)
        if kept.size > head.size:
            raise VerificationError(f"a checkpoint you hold has {kept.size:,} entries; this "
                                    f"ledger has {head.size:,} (entries were removed)")  # fmt: skip
        if roots.setdefault(kept.size, kept.root) != kept.root:
            raise VerificationError(f"checkpoint at size {kept.size:,}: the one you hold and the "
                                    "stored one have different roots (a fork)")  # fmt: skip
    copies = StoredCopies(
        nodes=store.node_rows(head.size),
        frontier=head.frontier,
        columns=store.column_rows(head.size) if deep else (),
        postings=store.posting_rows(head.size) if deep else (),
    )
    chain = verify_chain(store.ledger, store.rows(0, head.size), roots, expected_size=head.size,
                         deep=deep, stored=copies)  # fmt: skip
    if chain.head_hash != head.head_hash:
        raise VerificationError(f"the head: expected hash {chain.head_hash.hex()}, got "
                                f"{head.head_hash.hex()}")  # fmt: skip
    trusted, awaiting = [], []
    for stated, note in notes if policy is not None else ():
        assert policy is not None
        signers = trusted_signers(note, policy)
        if len(signers) < policy.threshold or not policy.required <= set(signers):
            awaiting.append((stated.size, signers))
            continue
        try:
            verify_checkpoint(note, policy)
        except VerificationError as error:
            raise VerificationError(f"checkpoint at size {stated.size:,}: {error}") from None
        trusted.append(stated.size)
    if policy is not None and notes and not trusted:
        waiting = "; ".join(f"size {size:,} by {', '.join(s) or 'no trusted key'}"
                            for size, s in awaiting)  # fmt: skip
        raise VerificationError(f"no checkpoint is signed by {policy.threshold} of "
                                f"{', '.join(policy.names)}: {waiting}")  # fmt: skip
    return StoreReport(chain, tuple(trusted), tuple(awaiting))


def checkpoint_now(
    store: LedgerStore, key: SigningKey, *, origin: str, state: Path | None = None
) -> SignedNote:
    """Sign the ledger's current tree head with the service's key, and store it.

    The whole ledger is verified first (chain, nodes, frontier, earlier checkpoints), so a
    tampered store is refused rather than signed. `state` is a file outside the database that
    remembers the last checkpoint this key signed: a database restored from an older copy could
    otherwise make the key sign a second, different history.
    """
    report = verify_store(store)
    subject = Checkpoint(origin=origin, size=report.chain.size, root=report.chain.root)
    remembered = _remembered(state)
    if remembered is not None:
        proof = (store.consistency_proof(remembered.size, subject.size)
                 if 0 < remembered.size < subject.size else ())  # fmt: skip
        CheckpointSigner(key=key, last=remembered).sign_next(subject, proof,
                                                             merkle.verify_consistency)  # fmt: skip
    note = sign_and_store(store, key, subject)
    if state is not None:
        state.write_text(subject.body(), encoding="utf-8")
    return note


def _remembered(state: Path | None) -> Checkpoint | None:
    if state is None or not state.exists():
        return None
    return Checkpoint.parse(state.read_text(encoding="utf-8"))


def cosign(store: LedgerStore, key: SigningKey, *, size: int | None = None) -> SignedNote:
    """Co-sign a stored checkpoint after recomputing its root from the entries themselves."""
    stored = stored_checkpoint(store, size)
    verify_store(store)  # recomputes every root, this one included, from the entries
    return sign_and_store(store, key, Checkpoint.parse(stored.body))


def sign_and_store(store: LedgerStore, key: SigningKey, subject: Checkpoint) -> SignedNote:
    """Sign `subject` if it extends the last checkpoint this key signed (its consistency proof
    verified), store the signature line, and return the note with every signature it has."""
    signed_before = [c for c in store.checkpoints() if _signed_by(c, key.name)]
    last = Checkpoint.parse(signed_before[-1].body) if signed_before else None
    proof: Sequence[bytes] = ()
    if last is not None and 0 < last.size < subject.size:
        proof = store.consistency_proof(last.size, subject.size)
    note, _ = CheckpointSigner(key=key, last=last).sign_next(
        subject, proof, merkle.verify_consistency
    )
    store.add_checkpoint(size=subject.size, root=subject.root, body=subject.body())
    (line,) = [s for s in note.signatures if s.name == key.name]
    store.add_signature(size=subject.size, key_name=key.name, line=line.line())
    return note_of(stored_checkpoint(store, subject.size))


def stored_checkpoint(store: LedgerStore, size: int | None = None) -> StoredCheckpoint:
    """The stored checkpoint of `size` (default: the latest)."""
    found = store.checkpoints()
    if not found:
        raise LedgerError(
            f"ledger {store.ledger} has no checkpoint: run `settle ledger checkpoint`"
        )
    if size is None:
        return found[-1]
    for candidate in found:
        if candidate.size == size:
            return candidate
    sizes = ", ".join(str(c.size) for c in found)
    raise LedgerError(f"ledger {store.ledger} has no checkpoint of size {size}; it has {sizes}")


def note_of(stored: StoredCheckpoint) -> SignedNote:
    return SignedNote.parse(stored.note_text())


def signers_of(stored: StoredCheckpoint) -> tuple[str, ...]:
    return tuple(NoteSignature.parse(line).name for line in stored.signature_lines)


def _signed_by(stored: StoredCheckpoint, name: str) -> bool:
    return name in signers_of(stored)

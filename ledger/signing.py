"""Signing the stored ledger's checkpoints: the service's and the parties' keys, each refusing to
sign anything inconsistent with what it signed before. Uses the store; the crypto is pure.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger import merkle
from ledger.checkpoint import Checkpoint, CheckpointSigner, NoteSignature, SignedNote
from ledger.keys import SigningKey
from ledger.store import LedgerError, LedgerStore, StoredCheckpoint
from ledger.verify import verify_chain


def checkpoint_now(store: LedgerStore, key: SigningKey, *, origin: str) -> SignedNote:
    """Sign the ledger's current tree head with the service's key, and store it."""
    size = store.size()
    return sign_and_store(store, key, Checkpoint(origin=origin, size=size, root=store.root(size)))


def cosign(store: LedgerStore, key: SigningKey, *, size: int | None = None) -> SignedNote:
    """Co-sign a stored checkpoint after recomputing its root from the entries themselves."""
    stored = stored_checkpoint(store, size)
    verify_chain(store.ledger, store.rows(0, stored.size), {stored.size: stored.root})
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

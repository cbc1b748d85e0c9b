"""Verify a ledger from its stored bytes: the chain, the Merkle root at every checkpoint, and
(deep) each entry's canonical form and balance. Reports the first thing that does not hold.

Pure: it is handed rows and checkpoints, and recomputes every hash itself (RFC 9162 Merkle tree,
SHA-256 chain from the genesis), so an auditor need trust nothing the server computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ledger import merkle
from ledger.entries import canonical_entry, check_entry, genesis_hash, parse_recorded
from ledger.errors import VerificationError
from rules.errors import RuleError

Row = tuple[int, str, str, str]  # sequence, previous hash hex, entry hash hex, canonical text


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What a verification established."""

    ledger: str
    size: int
    head_hash: bytes
    root: bytes
    checkpoints: tuple[int, ...]  # sizes whose roots were recomputed and matched


def verify_chain(
    ledger: str,
    rows: Iterable[Row],
    checkpoint_roots: Mapping[int, bytes],
    *,
    expected_size: int | None = None,
    deep: bool = False,
) -> ChainReport:
    """Recompute the chain and the Merkle roots over `rows`; raise at the first fault.

    `checkpoint_roots` maps tree sizes to the roots the checkpoints state; each is compared with
    the root recomputed from the entries, which also proves successive checkpoints consistent.
    """
    sha256 = hashlib.sha256
    previous = genesis_hash(ledger)
    previous_text = previous.hex()
    tree = _RootBuilder()
    verified: list[int] = []
    if 0 in checkpoint_roots:
        _check_root(0, tree.root(), checkpoint_roots[0])
        verified.append(0)
    expected_sequence = 0
    for sequence, previous_hex, entry_hex, canonical_text in rows:
        if sequence != expected_sequence:
            raise VerificationError(
                f"entry {expected_sequence:,}: expected the next sequence number "
                f"{expected_sequence:,}, got {sequence:,} (a gap or a duplicate)"
            )
        if previous_hex != previous_text:
            raise VerificationError(
                f"entry {sequence:,}: expected previous hash {previous_text}, got {previous_hex}"
            )
        canonical = canonical_text.encode("utf-8")
        computed = sha256(previous + canonical).digest()
        computed_text = computed.hex()
        if computed_text != entry_hex:
            raise VerificationError(
                f"entry {sequence:,}: expected hash {computed_text} (of its stored bytes), "
                f"got {entry_hex}"
            )
        if deep:
            _check_entry_bytes(ledger, sequence, canonical)
        tree.add(sha256(merkle.LEAF_PREFIX + computed).digest())
        previous, previous_text = computed, computed_text
        expected_sequence += 1
        if expected_sequence in checkpoint_roots:
            _check_root(expected_sequence, tree.root(), checkpoint_roots[expected_sequence])
            verified.append(expected_sequence)
    if expected_size is not None and expected_sequence != expected_size:
        raise VerificationError(
            f"ledger {ledger}: expected {expected_size:,} entries (its head), got "
            f"{expected_sequence:,}"
        )
    beyond = sorted(size for size in checkpoint_roots if size > expected_sequence)
    if beyond:
        raise VerificationError(
            f"checkpoint at size {beyond[0]:,}: expected at most {expected_sequence:,} entries "
            "behind it, got fewer (entries are missing)"
        )
    return ChainReport(ledger, expected_sequence, previous, tree.root(), tuple(verified))


class _RootBuilder:
    """The RFC 9162 root of a growing tree, for the verification loop: a mutable stack of the
    perfect subtrees' hashes (merkle.Frontier is the immutable value; this is its hot path)."""

    __slots__ = ("_sizes", "_stack")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self._sizes: list[int] = []

    def add(self, leaf: bytes) -> None:
        stack, sizes, sha256 = self._stack, self._sizes, hashlib.sha256
        node, size = leaf, 1
        while sizes and sizes[-1] == size:
            node = sha256(merkle.NODE_PREFIX + stack.pop() + node).digest()
            size += sizes.pop()
        stack.append(node)
        sizes.append(size)

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = hashlib.sha256(merkle.NODE_PREFIX + left + node).digest()
        return node


def _check_root(size: int, computed: bytes, stated: bytes) -> None:
    if computed != stated:
        raise VerificationError(
            f"checkpoint at size {size:,}: expected root {computed.hex()} (recomputed from the "
            f"entries), got {stated.hex()}"
        )


def _check_entry_bytes(ledger: str, sequence: int, canonical: bytes) -> None:
    try:
        stated_ledger, stated_sequence, entry = parse_recorded(canonical)
    except (RuleError, ValueError, KeyError, TypeError) as error:
        raise VerificationError(f"entry {sequence:,}: not a readable entry: {error}") from None
    if (stated_ledger, stated_sequence) != (ledger, sequence):
        raise VerificationError(
            f"entry {sequence:,}: expected ledger {ledger} sequence {sequence:,} inside it, got "
            f"{stated_ledger} {stated_sequence:,}"
        )
    if canonical_entry(entry, ledger=ledger, sequence=sequence) != canonical:
        raise VerificationError(f"entry {sequence:,}: expected RFC 8785 canonical bytes, got "
                                "bytes that are not canonical")  # fmt: skip
    problems = check_entry(entry)
    if problems:
        raise VerificationError(f"entry {sequence:,}: {problems[0].message}")

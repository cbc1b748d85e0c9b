"""Verify a ledger from its stored bytes: the chain, the Merkle root at every checkpoint, and
(deep) each entry's canonical form and balance. Reports the first thing that does not hold.

Pure: it is handed rows and checkpoints, and recomputes every hash itself (RFC 9162 Merkle tree,
SHA-256 chain from the genesis), so an auditor need trust nothing the server computed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger import merkle
from ledger.entries import Entry, canonical_entry, check_entry, genesis_hash, parse_recorded
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
    stored: StoredCopies | None = None,
) -> ChainReport:
    """Recompute the chain and the Merkle roots over `rows`; raise at the first fault.

    `checkpoint_roots` maps tree sizes to the roots the checkpoints state; each is compared with
    the root recomputed from the entries, which also proves successive checkpoints consistent.
    """
    sha256 = hashlib.sha256
    previous = genesis_hash(ledger)
    previous_text = previous.hex()
    tree = _RootBuilder(track_nodes=stored is not None)
    copies = _Lockstep(stored) if stored is not None and deep else None
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
            entry = _check_entry_bytes(ledger, sequence, canonical)
            if copies is not None:
                copies.check(sequence, entry)
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
    if stored is not None:
        tree.check_nodes(stored.nodes)
        _check_frontier(stored.frontier, tree)
    return ChainReport(ledger, expected_sequence, previous, tree.root(), tuple(verified))


class _RootBuilder:
    """The RFC 9162 root of a growing tree, for the verification loop: a mutable stack of the
    perfect subtrees' hashes (merkle.Frontier is the immutable value; this is its hot path)."""

    __slots__ = ("_count", "_levels", "_sizes", "_stack")

    def __init__(self, *, track_nodes: bool = False) -> None:
        self._stack: list[bytes] = []
        self._sizes: list[int] = []
        self._count = 0
        # Per level, a running digest of (index, hash) of every perfect node as it completes:
        # the stored nodes are compared with it without holding the tree in memory.
        self._levels: list[Any] | None = [] if track_nodes else None

    def add(self, leaf: bytes) -> None:
        stack, sizes, sha256 = self._stack, self._sizes, hashlib.sha256
        node, size, level = leaf, 1, 0
        self._note(0, self._count, leaf)
        while sizes and sizes[-1] == size:
            node = sha256(merkle.NODE_PREFIX + stack.pop() + node).digest()
            size += sizes.pop()
            level += 1
            self._note(level, (self._count + 1) // size - 1, node)
        stack.append(node)
        sizes.append(size)
        self._count += 1

    def _note(self, level: int, index: int, digest: bytes) -> None:
        levels = self._levels
        if levels is None:
            return
        while len(levels) <= level:
            levels.append([hashlib.sha256(), 0])
        levels[level][0].update(index.to_bytes(8, "big") + digest)
        levels[level][1] += 1

    @property
    def hashes(self) -> tuple[bytes, ...]:
        return tuple(self._stack)

    def check_nodes(self, stored: Iterable[tuple[int, int, bytes]]) -> None:
        """The stored perfect nodes, ordered by (level, index), are exactly the recomputed ones."""
        assert self._levels is not None
        found: list[list[Any]] = []
        for level, index, digest in stored:
            while len(found) <= level:
                found.append([hashlib.sha256(), 0])
            found[level][0].update(index.to_bytes(8, "big") + bytes(digest))
            found[level][1] += 1
        for level in range(max(len(found), len(self._levels))):
            empty: list[Any] = [hashlib.sha256(), 0]
            want = self._levels[level] if level < len(self._levels) else empty
            have = found[level] if level < len(found) else empty
            if (want[0].digest(), want[1]) != (have[0].digest(), have[1]):
                raise VerificationError(
                    f"Merkle nodes at level {level}: expected the {want[1]:,} nodes recomputed "
                    f"from the entries, got {have[1]:,} stored nodes that differ from them"
                )

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        node = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            node = hashlib.sha256(merkle.NODE_PREFIX + left + node).digest()
        return node


@dataclass(frozen=True, slots=True)
class StoredCopies:
    """What the store keeps beside the entries, to be checked against them: the Merkle nodes
    (level, index, hash) by level and index, the head's frontier, and (deep) the columns copied
    out of each entry and its postings, both by sequence."""

    nodes: Iterable[tuple[int, int, bytes]]
    frontier: merkle.Frontier
    columns: Iterable[tuple[Any, ...]] = ()  # sequence, idempotency key, contract id, period,
    #                                          contract hash, trace hash, reverses
    postings: Iterable[tuple[Any, ...]] = ()  # sequence, position, account, side, amount, currency


def _check_frontier(frontier: merkle.Frontier, tree: _RootBuilder) -> None:
    if frontier.hashes != tree.hashes:
        raise VerificationError(
            f"the head's frontier: expected the {len(tree.hashes)} subtree roots recomputed from "
            f"the entries, got others (size {frontier.size:,})"
        )


class _Lockstep:
    """Reads the stored copies alongside the entries, one sequence at a time."""

    def __init__(self, stored: StoredCopies) -> None:
        self.columns = iter(stored.columns)
        self.postings = iter(stored.postings)
        self.pending: tuple[Any, ...] | None = next(self.postings, None)

    def check(self, sequence: int, entry: Entry) -> None:
        row = next(self.columns, None)
        expected = (sequence, entry.idempotency_key, entry.contract_id, entry.period,
                    entry.contract, entry.trace_hash, entry.reverses)  # fmt: skip
        if row is None or tuple(row) != expected:
            raise VerificationError(f"entry {sequence:,}: expected its stored columns {expected}, "
                                    f"got {None if row is None else tuple(row)}")  # fmt: skip
        legs = []
        while self.pending is not None and self.pending[0] == sequence:
            position, account, side, amount, currency = self.pending[1:]
            legs.append((position, account, side, Decimal(amount), currency))
            self.pending = next(self.postings, None)
        want = [(i, p.account, p.side, p.amount, p.currency) for i, p in enumerate(entry.postings)]
        if legs != want:
            raise VerificationError(f"entry {sequence:,}: expected its stored postings {want}, "
                                    f"got {legs}")  # fmt: skip


def _check_root(size: int, computed: bytes, stated: bytes) -> None:
    if computed != stated:
        raise VerificationError(
            f"checkpoint at size {size:,}: expected root {computed.hex()} (recomputed from the "
            f"entries), got {stated.hex()}"
        )


def _check_entry_bytes(ledger: str, sequence: int, canonical: bytes) -> Entry:
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
    return entry

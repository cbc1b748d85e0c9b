"""The ledger's Merkle tree, exactly as RFC 9162 section 2.1 defines it: hashes, proofs built from
stored perfect subtrees, the append frontier, and the verifiers an outside party runs.

Pure: hashlib and the standard library only. Stored nodes come in through `NodeReader`, one batched
read per call; nothing here knows SQL, files or the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ledger.errors import VerificationError

# RFC 9162 §2.1.1: MTH({d}) = HASH(0x00 || d); MTH(D_n) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
# The two prefixes keep a leaf from ever being taken for an interior node (second preimages).
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # MTH({}) = HASH()

FRONTIER_FORMAT_V1 = 1
_SIZE_BYTES = 8

NodeKey = tuple[int, int]
"""(level, index): the perfect subtree over leaves [index * 2**level, (index + 1) * 2**level)."""

StoredNode = tuple[int, int, bytes]
"""(level, index, hash) of a perfect subtree, as the store keeps it."""


class NodeReader(Protocol):
    """Where the stored perfect subtree hashes are read from: the store adapter, or a fake."""

    def nodes(self, keys: Collection[NodeKey]) -> Mapping[NodeKey, bytes]:
        """The hashes of the requested nodes, in one batched read."""
        ...


def leaf_hash(data: bytes) -> bytes:
    """HASH(0x00 || data): the leaf of one entry (its data is the 32-byte entry hash)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right): an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_of(leaf_data: Sequence[bytes]) -> bytes:
    """MTH(D_n) by the recursive definition of RFC 9162 §2.1.1: the reference implementation."""
    n = len(leaf_data)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(leaf_data[0])
    k = _split(n)
    return node_hash(root_of(leaf_data[:k]), root_of(leaf_data[k:]))


# --- Proofs from stored perfect subtrees ----------------------------------------------------------
#
# Every hash a proof carries is MTH(D[a:b]) of a subtree the RFC's recursion reaches. Such a range
# starts at a multiple of the smallest power of two >= b - a, because the RFC always splits at the
# largest power of two below n; so it is the perfect subtrees given by the set bits of b - a,
# largest first, folded from the right. A proof is O(log n) ranges, each O(log n) perfect nodes.


def needed_nodes_for_root(size: int) -> tuple[NodeKey, ...]:
    """The perfect nodes whose hashes give MTH of the first `size` leaves (none if empty)."""
    _require(size >= 0, f"a tree size is 0 or more, got {size}")
    return _perfect_cover(0, size)


def needed_nodes_for_inclusion(index: int, size: int) -> tuple[NodeKey, ...]:
    """The perfect nodes whose hashes give PATH(index, D_size)."""
    return tuple(key for a, b in _inclusion_ranges(index, size) for key in _perfect_cover(a, b))


def needed_nodes_for_consistency(old_size: int, new_size: int) -> tuple[NodeKey, ...]:
    """The perfect nodes whose hashes give PROOF(old_size, D_new_size)."""
    ranges = _consistency_ranges(old_size, new_size)
    return tuple(key for a, b in ranges for key in _perfect_cover(a, b))


def root(size: int, reader: NodeReader) -> bytes:
    """MTH of the first `size` leaves, from one batched read of stored nodes."""
    keys = needed_nodes_for_root(size)
    if not keys:
        return EMPTY_ROOT
    return _range_hash(0, size, _read(reader, keys))


def inclusion_proof(index: int, size: int, reader: NodeReader) -> tuple[bytes, ...]:
    """PATH(index, D_size) of RFC 9162 §2.1.3.1, leaf side first, from one batched read."""
    ranges = _inclusion_ranges(index, size)
    return _proof_hashes(ranges, reader)


def consistency_proof(old_size: int, new_size: int, reader: NodeReader) -> tuple[bytes, ...]:
    """PROOF(old_size, D_new_size) of RFC 9162 §2.1.4.1, from one batched read.

    Equal sizes give the empty proof; an old size of 0 is refused, as the RFC defines PROOF only
    for 0 < m (and the verifier refuses it too).
    """
    ranges = _consistency_ranges(old_size, new_size)
    return _proof_hashes(ranges, reader)


def _proof_hashes(ranges: Sequence[tuple[int, int]], reader: NodeReader) -> tuple[bytes, ...]:
    if not ranges:
        return ()
    nodes = _read(reader, tuple(key for a, b in ranges for key in _perfect_cover(a, b)))
    return tuple(_range_hash(a, b, nodes) for a, b in ranges)


def _split(n: int) -> int:
    """k of RFC 9162 §2.1.1: the largest power of two smaller than n (for n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH make PATH(index, D_size), in proof order (leaf side first)."""
    _require(0 <= index < size, f"a leaf index in a tree of size {size}, got {index}")
    ranges = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose MTH make PROOF(old_size, D_new_size), in proof order."""
    _require(
        0 < old_size <= new_size,
        f"tree sizes with 0 < old size <= new size, got {old_size} and {new_size}",
    )
    ranges = []
    start, end = 0, new_size
    old_root_known = True  # the boolean of SUBPROOF(m, D_n, b)
    while old_size - start != end - start:
        k = _split(end - start)
        if old_size - start <= k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            ranges.append((start + k, end))
            end = start + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            ranges.append((start, start + k))
            start += k
            old_root_known = False
    if not old_root_known:  # SUBPROOF(m, D_m, false) = {MTH(D_m)}
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def _perfect_cover(start: int, end: int) -> tuple[NodeKey, ...]:
    """The perfect subtrees that make up the RFC subtree over [start, end), largest first."""
    keys = []
    while start < end:
        level = (end - start).bit_length() - 1
        keys.append((level, start >> level))
        start += 1 << level
    return tuple(keys)


def _range_hash(start: int, end: int, nodes: Mapping[NodeKey, bytes]) -> bytes:
    """MTH(D[start:end]) from its perfect cover: MTH(P1 : P2 : ...) = HASH(P1, MTH(P2 : ...))."""
    return _fold([nodes[key] for key in _perfect_cover(start, end)])


def _fold(largest_first: Sequence[bytes]) -> bytes:
    accumulated = largest_first[-1]
    for left in reversed(largest_first[:-1]):
        accumulated = node_hash(left, accumulated)
    return accumulated


def _read(reader: NodeReader, keys: tuple[NodeKey, ...]) -> Mapping[NodeKey, bytes]:
    found = reader.nodes(keys)
    for level, index in keys:
        stored = found.get((level, index))
        if stored is None:
            raise VerificationError(
                f"expected stored node (level {level}, index {index}) of the tree, got none"
            )
        _verify_hash_size(f"stored node (level {level}, index {index})", stored)
    return found


def _require(condition: bool, expectation: str) -> None:
    if not condition:
        raise ValueError(f"expected {expectation}")


# --- The append frontier --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Frontier:
    """The compact range of a tree: one perfect subtree root per set bit of `size`, largest first.

    Kept in the ledger's head row, it lets an append read one row and no nodes: appending a leaf
    merges it with the smaller roots, as RFC 9162 §2.1.2's stack does, and yields the new perfect
    nodes to store.
    """

    size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _require(
            0 <= self.size < 1 << (8 * _SIZE_BYTES), f"a tree size 0..2**64-1, got {self.size}"
        )
        if len(self.hashes) != self.size.bit_count():
            raise VerificationError(
                f"expected {self.size.bit_count()} subtree hashes for a tree of size {self.size}, "
                f"got {len(self.hashes)}"
            )
        for position, value in enumerate(self.hashes):
            _verify_hash_size(f"frontier hash {position}", value)

    @classmethod
    def empty(cls) -> Frontier:
        return cls(size=0, hashes=())

    @classmethod
    def from_nodes(cls, size: int, reader: NodeReader) -> Frontier:
        """The frontier of the first `size` leaves, rebuilt from stored nodes (one read)."""
        keys = needed_nodes_for_root(size)
        if not keys:
            return cls.empty()
        nodes = _read(reader, keys)
        return cls(size=size, hashes=tuple(nodes[key] for key in keys))

    def append(self, leaf: bytes) -> tuple[Frontier, tuple[StoredNode, ...]]:
        """The frontier with one more leaf hash, and the perfect nodes it completes (leaf first)."""
        _verify_hash_size("leaf hash", leaf)
        hashes = list(self.hashes)
        level, index, carried = 0, self.size, leaf
        completed = [(level, index, carried)]
        while (self.size >> level) & 1:  # each set low bit is a sibling of the same level
            carried = node_hash(hashes.pop(), carried)
            level, index = level + 1, index >> 1
            completed.append((level, index, carried))
        hashes.append(carried)
        return Frontier(size=self.size + 1, hashes=tuple(hashes)), tuple(completed)

    def root(self) -> bytes:
        """MTH of the tree: the subtree roots folded from the right (RFC 9162 §2.1.2 step 3)."""
        return _fold(self.hashes) if self.hashes else EMPTY_ROOT

    def to_bytes(self) -> bytes:
        """Version byte 1, the size as 8 bytes big-endian, then the hashes largest first."""
        size = self.size.to_bytes(_SIZE_BYTES, "big")
        return bytes([FRONTIER_FORMAT_V1]) + size + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        header = 1 + _SIZE_BYTES
        if len(data) < header or data[0] != FRONTIER_FORMAT_V1:
            shown = data[:1].hex() or "nothing"
            raise VerificationError(
                f"expected a frontier of format {FRONTIER_FORMAT_V1} (first byte 01), got {shown}"
            )
        size = int.from_bytes(data[1:header], "big")
        body = data[header:]
        if len(body) != HASH_SIZE * size.bit_count():
            raise VerificationError(
                f"expected {HASH_SIZE * size.bit_count()} bytes of hashes for a frontier of size "
                f"{size}, got {len(body)}"
            )
        hashes = tuple(body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE))
        return cls(size=size, hashes=hashes)


# --- Verifiers, step by step as RFC 9162 writes them ----------------------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2: `leaf_hash` is leaf `index` of the tree of `size` whose MTH is `root`.

    Strict: the proof must have exactly the length PATH(index, D_size) has and be consumed to the
    last hash; every hash must be 32 bytes.
    """
    _verify_hash_size("leaf hash", leaf_hash)
    _verify_hash_size("root", root)
    _verify_proof_hash_sizes(proof)
    if index < 0:
        raise VerificationError(f"expected a leaf index of 0 or more, got {index}")
    # 1. If leaf_index >= tree_size, fail.
    if index >= size:
        raise VerificationError(f"expected a leaf index below the tree size {size}, got {index}")
    expected_length = _inclusion_proof_length(index, size)
    if len(proof) != expected_length:
        raise VerificationError(
            f"expected {expected_length} proof hashes for leaf {index} of a tree of size {size}, "
            f"got {len(proof)}"
        )
    # 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    fn, sn = index, size - 1
    r = leaf_hash
    # 4. For each p in inclusion_path:
    for position, p in enumerate(proof):
        if sn == 0:
            raise VerificationError(
                f"expected the proof to reach the root after {position} hashes, got {len(proof)}"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    # 5. sn must be 0 and r must equal root_hash.
    if sn != 0:
        raise VerificationError(
            f"expected more proof hashes to reach the root of a tree of size {size}, "
            f"got {len(proof)}"
        )
    if r != root:
        raise VerificationError(
            f"expected root {root.hex()}, got {r.hex()} from leaf {index} and its proof"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2: the tree of `new_size` with MTH `new_root` extends the tree of
    `old_size` with MTH `old_root`, appending only.

    Strict beyond the RFC's `0 < first < second`: equal sizes pass only with an empty proof and
    equal roots; an old size of 0 is refused (the empty tree is a prefix of every tree, so such a
    "proof" would vouch for nothing); the proof must have exactly the length PROOF gives.
    """
    _verify_hash_size("old root", old_root)
    _verify_hash_size("new root", new_root)
    _verify_proof_hash_sizes(proof)
    if old_size < 1:
        raise VerificationError(f"expected an old tree size of 1 or more, got {old_size}")
    if new_size < old_size:
        raise VerificationError(
            f"expected a new tree size of at least the old size {old_size}, got {new_size}"
        )
    if new_size == old_size:
        if proof:
            raise VerificationError(
                f"expected no proof hashes between two trees of size {old_size}, got {len(proof)}"
            )
        if new_root != old_root:
            raise VerificationError(
                f"expected the same root for the same tree size {old_size}: {old_root.hex()}, "
                f"got {new_root.hex()}"
            )
        return
    expected_length = _consistency_proof_length(old_size, new_size)
    if len(proof) != expected_length:
        raise VerificationError(
            f"expected {expected_length} proof hashes from size {old_size} to {new_size}, "
            f"got {len(proof)}"
        )
    # 1. If consistency_path is empty, fail.
    if not proof:
        raise VerificationError("expected a consistency proof, got an empty one")
    # 2. If first is an exact power of 2, prepend first_hash.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # 4. While LSB(fn) is set, right-shift fn and sn.
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # 5. fr = sr = the first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        if sn == 0:
            raise VerificationError(
                f"expected the proof to reach the new root of size {new_size}, got extra hashes"
            )
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # 7. fr must equal first_hash, sr second_hash, and sn must be 0.
    if fr != old_root:
        raise VerificationError(
            f"expected old root {old_root.hex()} of size {old_size}, got {fr.hex()} from the proof"
        )
    if sr != new_root:
        raise VerificationError(
            f"expected new root {new_root.hex()} of size {new_size}, got {sr.hex()} from the proof"
        )
    if sn != 0:
        raise VerificationError(
            f"expected more proof hashes to reach the root of size {new_size}, got {len(proof)}"
        )


def _inclusion_proof_length(index: int, size: int) -> int:
    # Below the level where the paths to `index` and `size - 1` meet, every level has a sibling;
    # above it, only the levels where `index` is a right child do.
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    # The inclusion path of the old tree's last leaf in the new tree, less the levels inside the
    # old tree's last perfect subtree, plus that subtree's root unless it is the whole old tree.
    inner = ((old_size - 1) ^ (new_size - 1)).bit_length()
    border = ((old_size - 1) >> inner).bit_count()
    shift = (old_size & -old_size).bit_length() - 1
    seed = 0 if old_size == 1 << shift else 1
    return seed + inner - shift + border


def _verify_proof_hash_sizes(proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        _verify_hash_size(f"proof hash {position}", value)


def _verify_hash_size(what: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise VerificationError(f"expected a {HASH_SIZE}-byte {what}, got {got}")

"""Verifying a ledger from its stored bytes: every tampering is caught, at the first bad entry."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest

from ledger import merkle
from ledger.entries import Entry, Posting, genesis_hash, record
from ledger.errors import VerificationError
from ledger.verify import verify_chain

SIZE = 9


def _rows() -> list[tuple[int, str, str, str]]:
    previous = genesis_hash("main")
    rows = []
    for sequence in range(SIZE):
        entry = Entry(
            f"k{sequence}",
            (
                Posting("payer:cms", "debit", Decimal(f"{sequence + 1}.25"), "USD"),
                Posting("provider:aco", "credit", Decimal(f"{sequence + 1}.25"), "USD"),
            ),
            "payment",
        )
        placed = record(entry, ledger="main", sequence=sequence, previous_hash=previous)
        rows.append((sequence, previous.hex(), placed.entry_hash.hex(), placed.canonical.decode()))
        previous = placed.entry_hash
    return rows


ROWS = _rows()
ROOTS = {size: merkle.root_of([bytes.fromhex(r[2]) for r in ROWS[:size]]) for size in (4, SIZE)}


def test_an_untouched_ledger_verifies_with_its_checkpoints():
    report = verify_chain("main", ROWS, ROOTS, expected_size=SIZE, deep=True)
    assert report.size == SIZE
    assert report.checkpoints == (4, SIZE)
    assert report.root == ROOTS[SIZE]


def _tampered(rows, sequence, column, position):
    row = list(rows[sequence])
    text = row[column]
    replacement = "0" if text[position] != "0" else "1"
    row[column] = text[:position] + replacement + text[position + 1 :]
    return [*rows[:sequence], tuple(row), *rows[sequence + 1 :]]


@pytest.mark.parametrize("sequence", range(SIZE))
def test_every_single_byte_change_to_an_entry_is_reported_with_its_sequence(sequence):
    canonical = ROWS[sequence][3]
    for position in range(len(canonical)):
        rows = _tampered(ROWS, sequence, 3, position)
        with pytest.raises(VerificationError, match=rf"^entry {sequence:,}: expected hash "):
            verify_chain("main", rows, ROOTS)


@pytest.mark.parametrize("column, what", [(2, "expected hash"), (1, "expected previous hash")])
def test_every_change_to_a_stored_hash_is_reported_with_its_sequence(column, what):
    for sequence in range(SIZE):
        for position in range(64):
            rows = _tampered(ROWS, sequence, column, position)
            with pytest.raises(VerificationError, match=rf"^entry {sequence:,}: {what} "):
                verify_chain("main", rows, ROOTS)


def test_every_byte_of_a_checkpoint_root_is_checked():
    for position in range(32):
        root = bytearray(ROOTS[4])
        root[position] ^= 0x01
        with pytest.raises(VerificationError, match=r"^checkpoint at size 4: expected root"):
            verify_chain("main", ROWS, {**ROOTS, 4: bytes(root)})


def test_a_missing_entry_is_a_gap():
    with pytest.raises(
        VerificationError, match=r"^entry 3: expected the next sequence number 3, got 4"
    ):
        verify_chain("main", ROWS[:3] + ROWS[4:], ROOTS)


def test_entries_cut_off_at_the_end_are_caught_by_the_head_and_the_checkpoints():
    with pytest.raises(VerificationError, match=r"expected 9 entries .* got 7"):
        verify_chain("main", ROWS[:7], {}, expected_size=SIZE)
    with pytest.raises(VerificationError, match="checkpoint at size 9"):
        verify_chain("main", ROWS[:7], ROOTS)


def test_a_ledger_recomputed_from_a_changed_entry_onwards_fails_its_signed_checkpoint():
    """An attacker who rewrites entry 2 and re-chains everything after it still cannot match
    the root the parties signed."""
    rows, previous = list(ROWS[:2]), bytes.fromhex(ROWS[1][2])
    for sequence in range(2, SIZE):
        amount = "999.00" if sequence == 2 else f"{sequence + 1}.25"
        entry = Entry(
            f"k{sequence}",
            (
                Posting("payer:cms", "debit", Decimal(amount), "USD"),
                Posting("provider:aco", "credit", Decimal(amount), "USD"),
            ),
            "payment",
        )
        placed = record(entry, ledger="main", sequence=sequence, previous_hash=previous)
        rows.append((sequence, previous.hex(), placed.entry_hash.hex(), placed.canonical.decode()))
        previous = placed.entry_hash
    verify_chain("main", rows, {})  # internally consistent...
    with pytest.raises(VerificationError, match=r"^checkpoint at size 4: expected root"):
        verify_chain("main", rows, ROOTS)  # ...but not the ledger that was signed


def test_deep_verification_rejects_bytes_that_hash_right_but_are_not_canonical():
    sequence, previous, _, canonical = ROWS[0]
    spaced = canonical.replace(",", ", ", 1)
    forged_hash = hashlib.sha256(bytes.fromhex(previous) + spaced.encode()).hexdigest()
    rows = [(sequence, previous, forged_hash, spaced)]
    verify_chain("main", rows, {})
    with pytest.raises(VerificationError, match="not canonical"):
        verify_chain("main", rows, {}, deep=True)

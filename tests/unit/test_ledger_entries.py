"""Ledger entries: balanced postings, canonical bytes anyone can rehash, reversals that undo."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.entries import (
    Entry,
    Posting,
    balances,
    canonical_entry,
    chain_hash,
    check_entry,
    entry_from_document,
    genesis_hash,
    parse_recorded,
    record,
    reversal,
)


def payment(amount: str = "100.00", key: str = "k-1", currency: str = "USD") -> Entry:
    return Entry(
        idempotency_key=key,
        postings=(
            Posting("payer:cms", "debit", Decimal(amount), currency),
            Posting("provider:aco", "credit", Decimal(amount), currency),
        ),
        memo="shared savings",
    )


def test_a_balanced_entry_has_no_problems():
    assert check_entry(payment()) == ()


def test_debits_and_credits_must_balance_per_currency():
    entry = Entry(
        "k",
        (
            Posting("a", "debit", Decimal("10"), "USD"),
            Posting("b", "credit", Decimal("10"), "EUR"),
        ),
        "m",
    )
    messages = [p.message for p in check_entry(entry)]
    assert "debits and credits in EUR differ by 10" in messages
    assert "debits and credits in USD differ by 10" in messages


@pytest.mark.parametrize("amount", ["0", "-5", "1E+3", "NaN"])
def test_amounts_are_positive_decimals_written_out(amount):
    entry = Entry(
        "k",
        (
            Posting("a", "debit", Decimal(amount), "USD"),
            Posting("b", "credit", Decimal(amount), "USD"),
        ),
        "m",
    )
    assert any(p.where.endswith("amount") for p in check_entry(entry))


def test_an_entry_needs_two_postings_a_key_and_a_memo():
    entry = Entry("has space", (Posting("a", "debit", Decimal(1), "USD"),), "")
    messages = " ".join(p.message for p in check_entry(entry))
    assert "idempotency key" in messages and "memo" in messages and "2 to 64 postings" in messages


def test_the_canonical_entry_is_rfc8785_json_with_amounts_as_strings():
    canonical = canonical_entry(payment("1.50"), ledger="main", sequence=7)
    document = json.loads(canonical)
    assert document["format"] == "settle.entry/v1"
    assert document["sequence"] == 7
    assert document["postings"][0]["amount"] == "1.5"
    assert canonical == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def test_the_entry_hash_is_sha256_of_the_previous_hash_and_the_canonical_bytes():
    genesis = genesis_hash("main")
    assert genesis == hashlib.sha256(b"settle.ledger/v1 genesis\nmain").digest()
    placed = record(payment(), ledger="main", sequence=0, previous_hash=genesis)
    assert placed.entry_hash == hashlib.sha256(genesis + placed.canonical).digest()
    assert placed.entry_hash == chain_hash(genesis, placed.canonical)


def test_an_entry_reads_back_from_its_canonical_bytes():
    placed = record(payment(), ledger="main", sequence=3, previous_hash=genesis_hash("main"))
    assert parse_recorded(placed.canonical) == ("main", 3, payment())


def test_a_reversal_swaps_every_posting_and_references_the_reversed_entry():
    placed = record(payment(), ledger="main", sequence=0, previous_hash=genesis_hash("main"))
    undo = reversal(placed, idempotency_key="undo-1", memo="correction")
    assert undo.reverses == placed.entry_hash.hex()
    assert [p.side for p in undo.postings] == ["credit", "debit"]
    assert check_entry(undo) == ()
    assert all(v == 0 for v in balances([payment(), undo]).values())


def test_an_entry_document_from_a_caller_is_read_without_floats():
    entry = entry_from_document(
        {
            "idempotency_key": "k",
            "memo": "m",
            "postings": [
                {"account": "a", "side": "debit", "amount": "0.10", "currency": "USD"},
                {"account": "b", "side": "credit", "amount": "0.10", "currency": "USD"},
            ],
        }
    )
    assert entry.postings[0].amount == Decimal("0.10")


amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000000"), places=2)
accounts = st.sampled_from(["payer:cms", "provider:a", "provider:b", "clearing:settle"])


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    legs = draw(st.lists(st.tuples(accounts, accounts, amounts), min_size=1, max_size=4))
    postings = []
    for debit, credit, amount in legs:
        postings += [
            Posting(debit, "debit", amount, "USD"),
            Posting(credit, "credit", amount, "USD"),
        ]
    return Entry(f"k{draw(st.integers(0, 10**9))}", tuple(postings), "m")


@settings(max_examples=60, deadline=None)
@given(st.lists(entries(), min_size=1, max_size=20))
def test_balances_equal_the_sum_of_postings_and_sum_to_zero(recorded):
    totals = balances(recorded)
    for (account, _currency), total in totals.items():
        expected = sum(
            (p.signed() for e in recorded for p in e.postings if p.account == account),
            Decimal(0),
        )
        assert total == expected
    assert sum(totals.values(), Decimal(0)) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(entries(), min_size=1, max_size=20))
def test_reversing_everything_yields_zero(recorded):
    previous = genesis_hash("main")
    placed = []
    for sequence, entry in enumerate(recorded):
        item = record(entry, ledger="main", sequence=sequence, previous_hash=previous)
        placed.append(item)
        previous = item.entry_hash
    undone = [reversal(p, idempotency_key=f"undo-{p.sequence}", memo="undo") for p in placed]
    assert all(total == 0 for total in balances(recorded + undone).values())

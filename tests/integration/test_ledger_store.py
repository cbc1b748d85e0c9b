"""The ledger store on SQLite and PostgreSQL: appends are atomic, idempotent and append-only."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from api.database import engine_from_url
from api.schema import upgrade_to_head
from ledger import merkle
from ledger.entries import Entry, Posting, chain_hash, checked, genesis_hash
from ledger.store import LedgerError, LedgerStore
from ledger.verify import verify_chain
from rules.errors import RuleError


def payment(key: str, amount: str = "100.00", payer: str = "payer:cms") -> Entry:
    return Entry(
        idempotency_key=key,
        postings=(
            Posting(payer, "debit", Decimal(amount), "USD"),
            Posting("provider:aco", "credit", Decimal(amount), "USD"),
        ),
        memo=f"payment {key}",
        contract_id="mssp-template",
        period="PY2018",
    )


@pytest.fixture
def store(upgraded_engine):
    return LedgerStore(upgraded_engine, ledger="main")


def test_appended_entries_form_a_gap_free_chain_from_the_genesis(store):
    recorded = store.append([payment(f"k{i}") for i in range(5)])
    assert [r.sequence for r in recorded] == [0, 1, 2, 3, 4]
    previous = genesis_hash("main")
    for placed in store.entries():
        assert placed.previous_hash == previous
        assert placed.entry_hash == chain_hash(previous, placed.canonical)
        previous = placed.entry_hash
    assert store.head().head_hash == previous
    report = verify_chain("main", store.rows(), {}, expected_size=store.size(), deep=True)
    assert report.size == 5


def test_appending_the_same_idempotency_key_again_returns_the_recorded_entry(store):
    (first,) = store.append([payment("retry-me")])
    (again,) = store.append([payment("retry-me")])
    assert again == first
    assert store.size() == 1


def test_the_same_key_with_other_content_is_refused_and_nothing_of_the_batch_lands(store):
    store.append([payment("k1")])
    with pytest.raises(LedgerError, match="already recorded as entry 0 with other content"):
        store.append([payment("k2"), payment("k1", amount="999.00")])
    assert store.size() == 1
    assert store.by_key("k2") is None


def test_an_unbalanced_entry_is_refused_before_anything_is_written(store):
    broken = Entry(
        "bad",
        (Posting("a", "debit", Decimal(5), "USD"), Posting("b", "credit", Decimal(4), "USD")),
        "m",
    )
    with pytest.raises(RuleError, match="differ by 1"):
        store.append([payment("ok"), broken])
    assert store.size() == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET period = 'x'",
        "UPDATE ledger_entries SET canonical = 'x'",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_postings SET amount = '1'",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_merkle_nodes SET hash = hash",
        "DELETE FROM ledger_merkle_nodes",
    ],
)
def test_the_database_itself_refuses_to_change_or_delete_ledger_rows(store, statement):
    store.append([payment("k1")])
    with pytest.raises(DatabaseError, match="append-only"), store.engine.begin() as connection:
        connection.execute(text(statement))
    assert store.entry(0).entry.period == "PY2018"


@pytest.mark.postgres
def test_postgresql_refuses_truncate_too(postgres_url):
    engine = engine_from_url(postgres_url)
    try:
        upgrade_to_head(engine)
        LedgerStore(engine, ledger="main").append([payment("k1")])
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as connection:
            connection.execute(text("TRUNCATE ledger_entries CASCADE"))
    finally:
        engine.dispose()


def test_a_correction_is_a_new_reversing_entry_and_balances_return_to_zero(store):
    store.append([payment("k1", "250.00")])
    reversed_entry = store.reverse(0, idempotency_key="undo-k1", memo="entered twice")
    assert reversed_entry.sequence == 1
    assert reversed_entry.entry.reverses == store.entry(0).entry_hash.hex()
    assert store.balances(as_of=1) == {
        ("payer:cms", "USD"): Decimal("-250.00"),
        ("provider:aco", "USD"): Decimal("250.00"),
    }
    assert all(total == 0 for total in store.balances().values())


def test_balances_as_of_any_sequence_number(store):
    store.append([payment(f"k{i}", f"{i + 1}.00") for i in range(4)])
    assert store.balances(as_of=0) == {}
    assert store.balances(as_of=2)[("provider:aco", "USD")] == Decimal("3.00")
    assert store.balances()[("provider:aco", "USD")] == Decimal("10.00")


def test_every_inclusion_and_consistency_proof_from_the_store_verifies(store):
    store.append([payment(f"k{i}") for i in range(13)])
    leaves = [r.entry_hash for r in store.entries()]
    for size in (1, 5, 8, 13):
        root = store.root(size)
        assert root == merkle.root_of(leaves[:size])
        for index in range(size):
            proof = store.inclusion_proof(index, size)
            merkle.verify_inclusion(merkle.leaf_hash(leaves[index]), index, size, proof, root)
    for old in range(1, 13):
        proof = store.consistency_proof(old, 13)
        merkle.verify_consistency(old, 13, store.root(old), store.root(13), proof)


def test_the_head_frontier_gives_the_same_root_as_the_stored_nodes(store):
    store.append([payment(f"k{i}") for i in range(21)])
    assert store.head().frontier.root() == store.root()


def test_two_ledgers_in_one_database_do_not_mix(upgraded_engine):
    first = LedgerStore(upgraded_engine, ledger="payer-a")
    second = LedgerStore(upgraded_engine, ledger="payer-b")
    first.append([payment("k")])
    second.append([payment("k"), payment("k2")])
    assert (first.size(), second.size()) == (1, 2)
    assert first.entry(0).entry_hash != second.entry(0).entry_hash  # different genesis


def test_documents_are_stored_by_their_hash(store):
    body = b'{"format":"settle.trace/v1"}'
    digest = hashlib.sha256(body).hexdigest()
    store.append([payment("k")], documents={digest: ("trace", body)})
    assert store.document(digest) == ("trace", body)
    with pytest.raises(LedgerError, match="expected its SHA-256"):
        store.append([payment("k2")], documents={"0" * 64: ("trace", body)})


def test_an_entry_is_reversed_at_most_once(store):
    store.append([payment("k1")])
    store.reverse(0, idempotency_key="undo-1", memo="entered twice")
    assert store.reverse(0, idempotency_key="undo-1", memo="entered twice").sequence == 1  # retry
    with pytest.raises(LedgerError, match="entry 0 was reversed already, by entry 1"):
        store.reverse(0, idempotency_key="undo-2", memo="again")


def test_sums_of_postings_never_round():
    big, tiny = Decimal("9999999999999999999999999999"), Decimal("0.0000000000000000000000000001")
    entry = Entry(
        "k",
        (
            Posting("a", "debit", big, "USD"),
            Posting("b", "debit", tiny, "USD"),
            Posting("c", "credit", big, "USD"),
        ),
        "m",
    )
    with pytest.raises(RuleError, match=r"differ by 0\.0000000000000000000000000001"):
        checked(entry)

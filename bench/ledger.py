"""Ledger benchmarks, measured side by side in one run (`make bench-ledger`):

1. full verification of N entries (chain and Merkle root) against the floor: the same SHA-256
   computations with bare hashlib over the same stored bytes, in a tight loop;
2. append throughput on SQLite and PostgreSQL, one entry per transaction and batched;
3. inclusion proof generation from the stored nodes at N entries.

Usage: python bench/ledger.py [--entries 1000000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import secrets
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.database import engine_from_url  # noqa: E402
from api.schema import upgrade_to_head  # noqa: E402
from ledger import merkle  # noqa: E402
from ledger.entries import Entry, Posting  # noqa: E402
from ledger.store import LedgerStore  # noqa: E402
from ledger.verify import verify_chain  # noqa: E402

BATCH = 2_000


def entry(number: int) -> Entry:
    amount = Decimal(random.randrange(1, 10_000_000)) / 100
    return Entry(
        idempotency_key=f"bench-{number}",
        postings=(
            Posting(f"payer:p{number % 7}", "debit", amount, "USD"),
            Posting(f"provider:aco{number % 97}", "credit", amount, "USD"),
        ),
        memo="benchmark payment",
        contract_id="mssp-template",
        period="PY2018",
    )


def fill(store: LedgerStore, count: int, start: int = 0) -> float:
    began = time.perf_counter()
    for offset in range(start, start + count, BATCH):
        store.append([entry(n) for n in range(offset, min(offset + BATCH, start + count))])
    return time.perf_counter() - began


def singles(store: LedgerStore, count: int, start: int) -> float:
    began = time.perf_counter()
    for number in range(start, start + count):
        store.append([entry(number)])
    return time.perf_counter() - began


def floor(rows: list[tuple[int, str, str, str]], genesis: bytes) -> float:
    """The same hashing verify_chain does, with nothing else: chain hashes, leaf hashes, and the
    one node hash per leaf (amortized) that building the tree takes."""
    sha256 = hashlib.sha256
    began = time.perf_counter()
    previous = genesis
    stack: list[bytes] = []
    for count, (_, _, _, canonical) in enumerate(rows, start=1):
        digest = sha256(previous + canonical.encode()).digest()
        node = sha256(b"\x00" + digest).digest()
        size = count
        while size % 2 == 0:  # merge completed subtrees, as a frontier does
            node = sha256(b"\x01" + stack.pop() + node).digest()
            size //= 2
        stack.append(node)
        previous = digest
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--postgres-entries", type=int, default=100_000)
    arguments = parser.parse_args()
    random.seed(7)
    count = arguments.entries

    with tempfile.TemporaryDirectory() as folder:
        engine = engine_from_url(f"sqlite:///{folder}/bench.db")
        upgrade_to_head(engine)
        store = LedgerStore(engine, ledger="bench")
        print(f"building a ledger of {count:,} entries on SQLite (batches of {BATCH:,}) …")
        batched = fill(store, count)
        single = singles(store, 500, count)
        print(f"SQLite append, batched:          {count / batched:10,.0f} entries/s")
        print(f"SQLite append, one per txn:      {500 / single:10,.0f} entries/s")

        rows = list(store.rows(0, count))
        genesis = hashlib.sha256(b"settle.ledger/v1 genesis\nbench").digest()
        floor_seconds = floor(rows, genesis)
        began = time.perf_counter()
        report = verify_chain("bench", rows, {})
        verify_seconds = time.perf_counter() - began
        assert report.root == store.root(count)
        began = time.perf_counter()
        verify_chain("bench", store.rows(0, count), {})
        from_db_seconds = time.perf_counter() - began
        print(f"verify {count:,} entries (chain + root): {verify_seconds:8.2f} s")
        print(f"floor, bare hashlib, same bytes:      {floor_seconds:8.2f} s")
        print(f"ratio verify / floor:                 {verify_seconds / floor_seconds:8.2f}x "
              "(target: within 2x)")  # fmt: skip
        print(f"verify reading from the database:     {from_db_seconds:8.2f} s")
        del rows

        size = store.size()
        times = []
        for index in random.sample(range(size), 200):
            began = time.perf_counter()
            proof = store.inclusion_proof(index, size)
            times.append(time.perf_counter() - began)
        root = store.root(size)
        merkle.verify_inclusion(merkle.leaf_hash(store.entry(index).entry_hash), index, size, proof,
                                root)  # fmt: skip
        times.sort()
        median, p99 = times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000
        print(f"inclusion proof at {size:,} entries: median {median:.2f} ms, p99 {p99:.2f} ms "
              "(target: under 5 ms)")  # fmt: skip
        engine.dispose()

    engine = engine_from_url(arguments.postgres)
    upgrade_to_head(engine)
    ledger = f"bench-{secrets.token_hex(6)}"  # not from the seeded random: a fresh ledger per run
    store = LedgerStore(engine, ledger=ledger)
    pg_count = arguments.postgres_entries
    batched = fill(store, pg_count)
    single = singles(store, 500, pg_count)
    print(f"PostgreSQL append, batched:      {pg_count / batched:10,.0f} entries/s")
    print(f"PostgreSQL append, one per txn:  {500 / single:10,.0f} entries/s")
    times = []
    size = store.size()
    for index in random.sample(range(size), 200):
        began = time.perf_counter()
        store.inclusion_proof(index, size)
        times.append(time.perf_counter() - began)
    print(
        f"PostgreSQL inclusion proof at {size:,}: median {statistics.median(times) * 1000:.2f} ms"
    )
    engine.dispose()


if __name__ == "__main__":
    main()

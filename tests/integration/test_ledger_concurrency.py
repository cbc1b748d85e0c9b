"""Many processes append to one ledger at once, and one is killed mid-append: the chain stays
one gap-free line with every key once, and no half entry is ever left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from api.database import engine_from_url
from api.schema import upgrade_to_head
from ledger import merkle
from ledger.store import LedgerStore, entries_table, nodes_table, postings_table
from ledger.verify import verify_chain

WORKER = """
import os
import sys
from decimal import Decimal
from api.database import engine_from_url
from ledger.entries import Entry, Posting
from ledger.store import LedgerStore

url, worker, count, overlap, batch = sys.argv[1], *map(int, sys.argv[2:6])
store = LedgerStore(engine_from_url(url), ledger="main")
first = worker * (count - overlap)
forever = (f"p{os.getpid()}-{i}" for i in range(10**9))  # count 0: append until killed
keys = [f"k{first + i}" for i in range(count)] if count else forever
pending = []
for key in keys:
    pending.append(Entry(key, (Posting("payer:cms", "debit", Decimal("1.00"), "USD"),
                               Posting("provider:aco", "credit", Decimal("1.00"), "USD")), "m"))
    if len(pending) == batch:
        store.append(pending)
        pending = []
if pending:
    store.append(pending)
"""


def _workers(url: str, processes: int, count: int, overlap: int, batch: int = 1):
    return [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(w), str(count), str(overlap), str(batch)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(processes)
    ]


def _assert_one_whole_chain(url: str) -> LedgerStore:
    engine = engine_from_url(url)
    store = LedgerStore(engine, ledger="main")
    head = store.head()
    report = verify_chain("main", store.rows(), {}, expected_size=head.size, deep=True)
    assert report.head_hash == head.head_hash
    assert head.frontier.root() == store.root() == report.root
    with engine.connect() as connection:
        entry_count = connection.scalar(select(func.count()).select_from(entries_table))
        posting_count = connection.scalar(select(func.count()).select_from(postings_table))
        leaf_count = connection.scalar(
            select(func.count()).select_from(nodes_table).where(nodes_table.c.level == 0)
        )
    assert entry_count == posting_count // 2 == leaf_count == head.size
    keys = Counter(entry.entry.idempotency_key for entry in store.entries())
    assert all(times == 1 for times in keys.values())
    return store


@pytest.fixture
def upgraded_url(database_url):
    engine = engine_from_url(database_url)
    upgrade_to_head(engine)
    engine.dispose()
    return database_url


@pytest.mark.postgres
def test_eight_processes_appending_at_once_make_one_gap_free_chain_with_every_key_once(
    postgres_url,
):
    engine = engine_from_url(postgres_url)
    upgrade_to_head(engine)
    engine.dispose()
    processes, count, overlap = 8, 30, 10
    for worker in _workers(postgres_url, processes, count, overlap):
        assert worker.wait(timeout=120) == 0, worker.stderr.read() if worker.stderr else ""
    store = _assert_one_whole_chain(postgres_url)
    assert store.size() == processes * (count - overlap) + overlap


def test_sqlite_serializes_concurrent_writers_with_the_same_guarantees(sqlite_url):
    engine = engine_from_url(sqlite_url)
    upgrade_to_head(engine)
    engine.dispose()
    processes, count, overlap = 4, 15, 5
    for worker in _workers(sqlite_url, processes, count, overlap, batch=3):
        assert worker.wait(timeout=120) == 0, worker.stderr.read() if worker.stderr else ""
    store = _assert_one_whole_chain(sqlite_url)
    assert store.size() == processes * (count - overlap) + overlap


@pytest.mark.parametrize("kills", [3])
def test_a_process_killed_mid_append_leaves_no_half_entry(upgraded_url, kills):
    engine = engine_from_url(upgraded_url)
    store = LedgerStore(engine, ledger="main")
    for _ in range(kills):
        before = store.size()
        (worker,) = _workers(upgraded_url, 1, 0, 0, batch=7)  # appends until it is killed
        deadline = time.monotonic() + 60
        while store.size() < before + 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        assert store.size() > before
    engine.dispose()
    store = _assert_one_whole_chain(upgraded_url)
    assert store.size() % 7 == 0  # batches of 7 land whole or not at all
    leaves = [e.entry_hash for e in store.entries()]
    assert store.root() == merkle.root_of(leaves)

"""ContractStore on a real SQLite file and a real PostgreSQL schema, both at Alembic's head."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785
from sqlalchemy import Engine

from contracts.store import ContractStore, StoredContractVersion, StoreError

_START = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _ticking_clock() -> Callable[[], datetime]:
    """A clock that moves one second forward each time it is read."""
    ticks: Iterator[int] = iter(range(1_000_000))
    return lambda: _START + timedelta(seconds=next(ticks))


def _document(contract_id: str, version: int) -> tuple[str, bytes]:
    canonical = rfc8785.dumps(
        {"contract_id": contract_id, "version": version, "name": "Shared savings – Médicare"}
    )
    return hashlib.sha256(canonical).hexdigest(), canonical


@pytest.fixture
def store(upgraded_engine: Engine) -> ContractStore:
    return ContractStore(upgraded_engine, clock=_ticking_clock())


def test_a_new_version_is_stored_and_read_back_byte_for_byte(store: ContractStore) -> None:
    content_hash, canonical = _document("aco-1", 1)

    assert store.add(contract_id="aco-1", content_hash=content_hash, canonical_json=canonical)

    assert store.get(content_hash) == StoredContractVersion(
        contract_id="aco-1", content_hash=content_hash, canonical_json=canonical, created_at=_START
    )


def test_adding_the_same_hash_again_changes_nothing_and_returns_false(
    store: ContractStore,
) -> None:
    content_hash, canonical = _document("aco-1", 1)
    store.add(contract_id="aco-1", content_hash=content_hash, canonical_json=canonical)

    again = store.add(contract_id="aco-1", content_hash=content_hash, canonical_json=canonical)

    assert again is False
    assert store.versions("aco-1") == (store.get(content_hash),)
    stored = store.get(content_hash)
    assert stored is not None and stored.created_at == _START


def test_a_hash_that_does_not_match_the_bytes_is_refused(store: ContractStore) -> None:
    _, canonical = _document("aco-1", 1)
    wrong_hash = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(StoreError, match=f"expected {hashlib.sha256(canonical).hexdigest()}"):
        store.add(contract_id="aco-1", content_hash=wrong_hash, canonical_json=canonical)

    assert store.get(wrong_hash) is None


def test_the_same_hash_under_another_contract_id_is_refused(store: ContractStore) -> None:
    content_hash, canonical = _document("aco-1", 1)
    store.add(contract_id="aco-1", content_hash=content_hash, canonical_json=canonical)

    with pytest.raises(StoreError, match="stored for contract 'aco-1', not 'aco-2'"):
        store.add(contract_id="aco-2", content_hash=content_hash, canonical_json=canonical)


@pytest.mark.parametrize(
    ("canonical", "message"),
    [(b'{"a":"\x00"}', "NUL byte"), (b'{"a":"\xff"}', "not UTF-8")],
    ids=["nul-byte", "latin-1"],
)
def test_bytes_that_cannot_be_canonical_json_are_refused(
    store: ContractStore, canonical: bytes, message: str
) -> None:
    content_hash = hashlib.sha256(canonical).hexdigest()

    with pytest.raises(StoreError, match=message):
        store.add(contract_id="aco-1", content_hash=content_hash, canonical_json=canonical)


@pytest.mark.parametrize("contract_id", ["", "x" * 201], ids=["empty", "201-characters"])
def test_a_contract_id_outside_1_to_200_characters_is_refused(
    store: ContractStore, contract_id: str
) -> None:
    content_hash, canonical = _document(contract_id, 1)

    with pytest.raises(StoreError, match="1 to 200 characters"):
        store.add(contract_id=contract_id, content_hash=content_hash, canonical_json=canonical)


def test_an_unknown_hash_is_not_found(store: ContractStore) -> None:
    assert store.get("0" * 64) is None


def test_versions_come_oldest_first_and_only_for_that_contract(store: ContractStore) -> None:
    added = []
    for contract_id, version in [("aco-1", 1), ("aco-2", 1), ("aco-1", 2), ("aco-1", 3)]:
        content_hash, canonical = _document(contract_id, version)
        store.add(contract_id=contract_id, content_hash=content_hash, canonical_json=canonical)
        added.append((contract_id, content_hash))

    versions = store.versions("aco-1")

    assert [v.content_hash for v in versions] == [h for c, h in added if c == "aco-1"]
    assert [v.created_at for v in versions] == sorted(v.created_at for v in versions)
    assert store.versions("no-such-contract") == ()


def test_created_at_comes_back_as_utc_whatever_zone_it_was_given_in(
    upgraded_engine: Engine,
) -> None:
    new_york_winter = timezone(timedelta(hours=-5))
    store = ContractStore(
        upgraded_engine, clock=lambda: datetime(2026, 3, 1, 2, 30, tzinfo=new_york_winter)
    )
    content_hash, canonical = _document("aco-1", 1)
    store.add(contract_id="aco-1", content_hash=content_hash, canonical_json=canonical)

    stored = store.get(content_hash)

    assert stored is not None
    assert stored.created_at == datetime(2026, 3, 1, 7, 30, tzinfo=UTC)
    assert stored.created_at.utcoffset() == timedelta(0)

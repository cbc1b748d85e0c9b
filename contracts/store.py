"""Contract versions in the database: the `contract_versions` table and `ContractStore` over it.

The only module that knows this table, which must match migrations/; it checks hashes and never
parses JSON.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    CHAR,
    Column,
    Engine,
    MetaData,
    Row,
    String,
    Table,
    Text,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError

from api.database import UtcDateTime, utc_now
from rules.errors import SettleError

CONTRACT_ID_MAX_LENGTH = 200


class StoreError(SettleError):
    """A contract version that would break the store's integrity: a wrong hash, a clash of ids."""


@dataclass(frozen=True, slots=True)
class StoredContractVersion:
    """One contract version as stored: its canonical JSON bytes, named by their SHA-256."""

    contract_id: str
    content_hash: str
    canonical_json: bytes
    created_at: datetime


metadata = MetaData()

contract_versions = Table(
    "contract_versions",
    metadata,
    Column("content_hash", CHAR(64), primary_key=True),
    Column("contract_id", String(CONTRACT_ID_MAX_LENGTH), nullable=False, index=True),
    Column("canonical_json", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)


class ContractStore:
    """Adds and reads contract versions; a version, once stored, never changes."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    def add(self, *, contract_id: str, content_hash: str, canonical_json: bytes) -> bool:
        """Store a version; True when it is new, False when this hash was already stored."""
        text = _checked_text(contract_id, content_hash, canonical_json)
        row = {
            "content_hash": content_hash,
            "contract_id": contract_id,
            "canonical_json": text,
            "created_at": self._clock(),
        }
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(contract_versions).values(row))
        except IntegrityError:
            # Another add of the same hash got there first, in this process or another.
            existing = self.get(content_hash)
            if existing is None:
                raise
            if existing.contract_id != contract_id:
                raise StoreError(
                    f"content hash {content_hash} is stored for contract "
                    f"{existing.contract_id!r}, not {contract_id!r}"
                ) from None
            return False
        return True

    def get(self, content_hash: str) -> StoredContractVersion | None:
        """The version with this content hash, or None."""
        query = select(contract_versions).where(contract_versions.c.content_hash == content_hash)
        with self._engine.connect() as connection:
            row = connection.execute(query).one_or_none()
        return None if row is None else _stored_version(row)

    def versions(self, contract_id: str) -> tuple[StoredContractVersion, ...]:
        """Every version of a contract, oldest first; equal times are ordered by hash."""
        query = (
            select(contract_versions)
            .where(contract_versions.c.contract_id == contract_id)
            .order_by(contract_versions.c.created_at, contract_versions.c.content_hash)
        )
        with self._engine.connect() as connection:
            return tuple(_stored_version(row) for row in connection.execute(query))


def _checked_text(contract_id: str, content_hash: str, canonical_json: bytes) -> str:
    if not 0 < len(contract_id) <= CONTRACT_ID_MAX_LENGTH:
        raise StoreError(
            f"contract id must have 1 to {CONTRACT_ID_MAX_LENGTH} characters, "
            f"got {len(contract_id)}"
        )
    computed = hashlib.sha256(canonical_json).hexdigest()
    if computed != content_hash:
        raise StoreError(
            f"content hash of contract {contract_id!r} does not match its canonical JSON: "
            f"expected {computed}, got {content_hash}"
        )
    # RFC 8785 output is UTF-8 and escapes U+0000, so a NUL byte or bad UTF-8 is not canonical
    # (and PostgreSQL's TEXT could not hold the NUL).
    if b"\x00" in canonical_json:
        raise StoreError(f"canonical JSON of {content_hash} contains a NUL byte")
    try:
        return canonical_json.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StoreError(f"canonical JSON of {content_hash} is not UTF-8: {error}") from error


def _stored_version(row: Row[tuple[str, str, str, datetime]]) -> StoredContractVersion:
    return StoredContractVersion(
        contract_id=row.contract_id,
        content_hash=row.content_hash,
        canonical_json=row.canonical_json.encode("utf-8"),
        created_at=row.created_at,
    )

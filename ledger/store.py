"""The ledger's SQLAlchemy adapter: append (one transaction, all or nothing), read, prove.

Appends to one ledger are serialized by its head row: the first statement of every append writes
that row, which takes PostgreSQL's row lock and SQLite's write lock, so sequence numbers have no
gaps and the chain cannot fork however many processes append at once. The tables are append-only
in the database itself (migrations/versions/0002_ledger.py).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Column,
    Connection,
    Engine,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from api.database import UtcDateTime, utc_now
from ledger import merkle
from ledger.entries import (
    EXACT,
    Entry,
    RecordedEntry,
    check_entry,
    genesis_hash,
    parse_recorded,
    record,
    reversal,
)
from rules.errors import RuleError, SettleError

metadata = MetaData()

heads = Table(
    "ledger_heads", metadata,
    Column("ledger_id", String(200), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("head_hash", CHAR(64), nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)  # fmt: skip
entries_table = Table(
    "ledger_entries", metadata,
    Column("ledger_id", String(200), primary_key=True),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("entry_hash", CHAR(64), nullable=False),
    Column("previous_hash", CHAR(64), nullable=False),
    Column("canonical", Text, nullable=False),
    Column("contract_id", String(200), nullable=False),
    Column("period", String(200), nullable=False),
    Column("contract_hash", String(64), nullable=False),
    Column("trace_hash", String(64), nullable=False),
    Column("reverses", String(64), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    UniqueConstraint("ledger_id", "idempotency_key", name="uq_ledger_entries_key"),
    UniqueConstraint("ledger_id", "entry_hash", name="uq_ledger_entries_hash"),
    Index("ix_ledger_entries_contract_period", "ledger_id", "contract_id", "period"),
)  # fmt: skip
postings_table = Table(
    "ledger_postings", metadata,
    Column("ledger_id", String(200), primary_key=True),
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("account", String(200), nullable=False),
    Column("side", String(6), nullable=False),
    Column("amount", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    ForeignKeyConstraint(
        ["ledger_id", "sequence"], ["ledger_entries.ledger_id", "ledger_entries.sequence"]
    ),
    Index("ix_ledger_postings_account", "ledger_id", "account"),
)  # fmt: skip
nodes_table = Table(
    "ledger_merkle_nodes", metadata,
    Column("ledger_id", String(200), primary_key=True),
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary, nullable=False),
)  # fmt: skip
checkpoints_table = Table(
    "ledger_checkpoints", metadata,
    Column("ledger_id", String(200), primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", CHAR(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)  # fmt: skip
signatures_table = Table(
    "ledger_checkpoint_signatures", metadata,
    Column("ledger_id", String(200), primary_key=True),
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("key_name", String(200), primary_key=True),
    Column("line", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    ForeignKeyConstraint(
        ["ledger_id", "size"], ["ledger_checkpoints.ledger_id", "ledger_checkpoints.size"]
    ),
)  # fmt: skip
documents_table = Table(
    "ledger_documents", metadata,
    Column("content_hash", CHAR(64), primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("canonical", Text, nullable=False),
)  # fmt: skip

READ_BATCH = 5_000


class LedgerError(SettleError):
    """An append or read the ledger refuses: a reused key with other content, an unknown entry."""


@dataclass(frozen=True, slots=True)
class Head:
    size: int
    head_hash: bytes
    frontier: merkle.Frontier


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    body: str
    signature_lines: tuple[str, ...]

    def note_text(self) -> str:
        """The C2SP signed note: body, blank line, one line per signature."""
        return self.body + "\n" + "".join(line + "\n" for line in self.signature_lines)


class LedgerStore:
    """One ledger in one database."""

    def __init__(
        self, engine: Engine, *, ledger: str, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self._clock = clock

    # Appending -------------------------------------------------------------------------------

    def append(
        self, entries: Sequence[Entry], *, documents: Mapping[str, tuple[str, bytes]] | None = None
    ) -> tuple[RecordedEntry, ...]:
        """Record `entries` in order, in one transaction: every one lands or none does.

        An entry whose idempotency key is already recorded with the same content is not recorded
        again: its recorded form is returned. The same key with other content is refused.
        `documents` (hash -> (kind, canonical bytes)) are stored with them, content-addressed.
        """
        problems = [p for entry in entries for p in check_entry(entry)]
        if problems:
            raise RuleError(problems)
        for content_hash, (_, canonical) in (documents or {}).items():
            if hashlib.sha256(canonical).hexdigest() != content_hash:
                raise LedgerError(f"document {content_hash}: expected its SHA-256, got another")
        with self.engine.begin() as connection:
            head = self._lock_head(connection)
            known = self._by_keys(connection, [entry.idempotency_key for entry in entries])
            recorded: list[RecordedEntry] = []
            rows = _Rows()
            for entry in entries:
                existing = known.get(entry.idempotency_key)
                if existing is not None:
                    recorded.append(_same_or_refuse(existing, entry))
                    continue
                placed = record(
                    entry, ledger=self.ledger, sequence=head.size, previous_hash=head.head_hash
                )
                frontier, new_nodes = head.frontier.append(merkle.leaf_hash(placed.entry_hash))
                rows.add(self.ledger, placed, new_nodes, self._clock())
                head = Head(head.size + 1, placed.entry_hash, frontier)
                known[entry.idempotency_key] = placed
                recorded.append(placed)
            rows.insert(connection)
            self._store_documents(connection, documents or {})
            connection.execute(
                update(heads)
                .where(heads.c.ledger_id == self.ledger)
                .values(size=head.size, head_hash=head.head_hash.hex(),
                        frontier=head.frontier.to_bytes())
            )  # fmt: skip
        return tuple(recorded)

    def reverse(self, sequence: int, *, idempotency_key: str, memo: str) -> RecordedEntry:
        """Append the reversal of the entry at `sequence` (a correction is a new entry); an
        entry is reversed at most once."""
        original = self.entry(sequence)
        with self.engine.connect() as connection:
            earlier = connection.scalar(
                select(entries_table.c.sequence).where(
                    entries_table.c.ledger_id == self.ledger,
                    entries_table.c.reverses == original.entry_hash.hex(),
                )
            )
        if earlier is not None and self.by_key(idempotency_key) is None:
            raise LedgerError(f"entry {sequence:,} was reversed already, by entry {earlier:,}")
        (recorded,) = self.append([reversal(self.entry(sequence), idempotency_key=idempotency_key,
                                            memo=memo)])  # fmt: skip
        return recorded

    def _lock_head(self, connection: Connection) -> Head:
        """Write the head row first: the lock that serializes appends to this ledger."""
        genesis = {
            "ledger_id": self.ledger,
            "size": 0,
            "head_hash": genesis_hash(self.ledger).hex(),
            "frontier": merkle.Frontier.empty().to_bytes(),
        }
        dialect = connection.dialect.name
        if dialect == "postgresql":
            connection.execute(postgresql.insert(heads).values(genesis).on_conflict_do_nothing())
        else:
            connection.execute(sqlite.insert(heads).values(genesis).on_conflict_do_nothing())
        connection.execute(
            update(heads).where(heads.c.ledger_id == self.ledger).values(size=heads.c.size)
        )
        row = connection.execute(
            select(heads.c.size, heads.c.head_hash, heads.c.frontier).where(
                heads.c.ledger_id == self.ledger
            )
        ).one()
        return Head(
            row.size, bytes.fromhex(row.head_hash), merkle.Frontier.from_bytes(row.frontier)
        )

    def _store_documents(
        self, connection: Connection, documents: Mapping[str, tuple[str, bytes]]
    ) -> None:
        if not documents:
            return
        known = set(
            connection.scalars(
                select(documents_table.c.content_hash).where(
                    documents_table.c.content_hash.in_(list(documents))
                )
            )
        )
        fresh = [
            {"content_hash": h, "kind": kind, "canonical": canonical.decode()}
            for h, (kind, canonical) in documents.items()
            if h not in known
        ]
        if fresh:
            connection.execute(insert(documents_table), fresh)

    # Reading ---------------------------------------------------------------------------------

    def head(self) -> Head:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(heads.c.size, heads.c.head_hash, heads.c.frontier).where(
                    heads.c.ledger_id == self.ledger
                )
            ).one_or_none()
        if row is None:
            return Head(0, genesis_hash(self.ledger), merkle.Frontier.empty())
        return Head(
            row.size, bytes.fromhex(row.head_hash), merkle.Frontier.from_bytes(row.frontier)
        )

    def size(self) -> int:
        return self.head().size

    def entry(self, sequence: int) -> RecordedEntry:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(*_ROW).where(
                    entries_table.c.ledger_id == self.ledger, entries_table.c.sequence == sequence
                )
            ).one_or_none()
        if row is None:
            raise LedgerError(f"ledger {self.ledger} has no entry {sequence:,}")
        return _recorded(row)

    def by_key(self, idempotency_key: str) -> RecordedEntry | None:
        with self.engine.connect() as connection:
            return self._by_key(connection, idempotency_key)

    def _by_keys(self, connection: Connection, keys: Sequence[str]) -> dict[str, RecordedEntry]:
        """Entries already recorded under any of `keys`, read in chunks of the IN list."""
        found: dict[str, RecordedEntry] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            rows = connection.execute(
                select(*_ROW, entries_table.c.idempotency_key).where(
                    entries_table.c.ledger_id == self.ledger,
                    entries_table.c.idempotency_key.in_(unique[start : start + 500]),
                )
            )
            for row in rows:
                found[row.idempotency_key] = _recorded(row[:5])
        return found

    def _by_key(self, connection: Connection, idempotency_key: str) -> RecordedEntry | None:
        row = connection.execute(
            select(*_ROW).where(
                entries_table.c.ledger_id == self.ledger,
                entries_table.c.idempotency_key == idempotency_key,
            )
        ).one_or_none()
        return None if row is None else _recorded(row)

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, str, str, str]]:
        """(sequence, previous hash, entry hash, canonical text) in order, read in batches."""
        position = start
        while stop is None or position < stop:
            end = position + READ_BATCH if stop is None else min(position + READ_BATCH, stop)
            with self.engine.connect() as connection:
                batch = connection.execute(
                    select(
                        entries_table.c.sequence, entries_table.c.previous_hash,
                        entries_table.c.entry_hash, entries_table.c.canonical,
                    ).where(
                        entries_table.c.ledger_id == self.ledger,
                        entries_table.c.sequence >= position, entries_table.c.sequence < end,
                    ).order_by(entries_table.c.sequence)
                ).all()  # fmt: skip
            yield from ((r[0], r[1], r[2], r[3]) for r in batch)
            if len(batch) < end - position:
                return
            position = end

    def _stream(self, query: Any) -> Iterator[tuple[Any, ...]]:
        """A long query's rows, streamed READ_BATCH at a time (memory stays flat)."""
        with self.engine.connect() as connection:
            for row in connection.execution_options(yield_per=READ_BATCH).execute(query):
                yield tuple(row)

    def node_rows(self, size: int) -> Iterator[tuple[int, int, bytes]]:
        """Every stored perfect node of the first `size` leaves, by level and index."""
        c = nodes_table.c
        query = select(c.level, c.position, c.hash).where(c.ledger_id == self.ledger)
        for level, position, digest in self._stream(query.order_by(c.level, c.position)):
            if (position + 1) << level <= size:
                yield level, position, bytes(digest)

    def column_rows(self, stop: int) -> Iterator[tuple[Any, ...]]:
        """The columns copied out of each entry, by sequence."""
        c = entries_table.c
        query = select(c.sequence, c.idempotency_key, c.contract_id, c.period, c.contract_hash,
                       c.trace_hash, c.reverses)  # fmt: skip
        yield from self._stream(
            query.where(c.ledger_id == self.ledger, c.sequence < stop).order_by(c.sequence)
        )

    def posting_rows(self, stop: int) -> Iterator[tuple[Any, ...]]:
        """Every stored posting, by sequence and position."""
        c = postings_table.c
        query = select(c.sequence, c.position, c.account, c.side, c.amount, c.currency)
        yield from self._stream(
            query.where(c.ledger_id == self.ledger, c.sequence < stop).order_by(
                c.sequence, c.position
            )
        )

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[RecordedEntry]:
        for sequence, previous, entry_hash, canonical in self.rows(start, stop):
            ledger, _, entry = parse_recorded(canonical.encode())
            yield RecordedEntry(ledger, sequence, entry, canonical.encode(),
                                bytes.fromhex(previous), bytes.fromhex(entry_hash))  # fmt: skip

    def sequences_for(self, *, contract_id: str, period: str) -> tuple[int, ...]:
        with self.engine.connect() as connection:
            return tuple(
                connection.scalars(
                    select(entries_table.c.sequence)
                    .where(
                        entries_table.c.ledger_id == self.ledger,
                        entries_table.c.contract_id == contract_id,
                        entries_table.c.period == period,
                    )
                    .order_by(entries_table.c.sequence)
                )
            )

    def balances(self, *, as_of: int | None = None) -> dict[tuple[str, str], Decimal]:
        """Credits less debits per (account, currency) over entries [0, as_of) (default: all)."""
        query = select(
            postings_table.c.account, postings_table.c.currency, postings_table.c.side,
            postings_table.c.amount,
        ).where(postings_table.c.ledger_id == self.ledger)  # fmt: skip
        if as_of is not None:
            query = query.where(postings_table.c.sequence < as_of)
        totals: dict[tuple[str, str], Decimal] = {}
        with self.engine.connect() as connection, decimal.localcontext(EXACT):
            for account, currency, side, amount in connection.execute(query):
                signed = Decimal(amount) if side == "credit" else -Decimal(amount)
                totals[(account, currency)] = totals.get((account, currency), Decimal(0)) + signed
        return dict(sorted(totals.items()))

    def document(self, content_hash: str) -> tuple[str, bytes] | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(documents_table.c.kind, documents_table.c.canonical).where(
                    documents_table.c.content_hash == content_hash
                )
            ).one_or_none()
        return None if row is None else (row.kind, row.canonical.encode())

    # Proofs ----------------------------------------------------------------------------------

    def nodes(self, keys: Collection[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        """Stored perfect-subtree hashes by (level, index): one query (merkle.NodeReader)."""
        if not keys:
            return {}
        columns = (nodes_table.c.level, nodes_table.c.position, nodes_table.c.hash)
        with self.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                wanted = and_(
                    nodes_table.c.ledger_id == self.ledger,
                    tuple_(nodes_table.c.level, nodes_table.c.position).in_(list(keys)),
                )
            else:
                # Point lookups on the whole primary key joined by OR, which SQLite answers from
                # the index; a row-value IN (or the ledger outside the OR) makes it scan.
                wanted = or_(*(and_(nodes_table.c.ledger_id == self.ledger,
                                    nodes_table.c.level == level,
                                    nodes_table.c.position == position)
                               for level, position in keys))  # fmt: skip
            rows = connection.execute(select(*columns).where(wanted))
            found = {(level, position): bytes(digest) for level, position, digest in rows}
        missing = set(keys) - set(found)
        if missing:
            raise LedgerError(f"ledger {self.ledger} lacks Merkle nodes {sorted(missing)[:4]}")
        return found

    def root(self, size: int | None = None) -> bytes:
        return merkle.root(self._size_or_head(size), self)

    def inclusion_proof(self, sequence: int, size: int | None = None) -> tuple[bytes, ...]:
        return merkle.inclusion_proof(sequence, self._size_or_head(size), self)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> tuple[bytes, ...]:
        return merkle.consistency_proof(old_size, self._size_or_head(new_size), self)

    def _size_or_head(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LedgerError(f"ledger {self.ledger} has {current:,} entries, not {size:,}")
        return size

    # Checkpoints -----------------------------------------------------------------------------

    def add_checkpoint(self, *, size: int, root: bytes, body: str) -> None:
        with self.engine.begin() as connection:
            exists = connection.execute(
                select(checkpoints_table.c.root).where(
                    checkpoints_table.c.ledger_id == self.ledger, checkpoints_table.c.size == size
                )
            ).one_or_none()
            if exists is not None:
                if exists.root != root.hex():
                    raise LedgerError(f"checkpoint {size:,}: expected root {exists.root}, got "
                                      f"{root.hex()}")  # fmt: skip
                return
            connection.execute(
                insert(checkpoints_table).values(
                    ledger_id=self.ledger, size=size, root=root.hex(), body=body,
                    created_at=self._clock(),
                )
            )  # fmt: skip

    def add_signature(self, *, size: int, key_name: str, line: str) -> bool:
        """Store one signature line of the checkpoint at `size`; False if that key signed it."""
        with self.engine.begin() as connection:
            exists = connection.execute(
                select(signatures_table.c.line).where(
                    signatures_table.c.ledger_id == self.ledger,
                    signatures_table.c.size == size,
                    signatures_table.c.key_name == key_name,
                )
            ).one_or_none()
            if exists is not None:
                return False
            connection.execute(
                insert(signatures_table).values(
                    ledger_id=self.ledger, size=size, key_name=key_name, line=line,
                    created_at=self._clock(),
                )
            )  # fmt: skip
        return True

    def checkpoints(self) -> tuple[StoredCheckpoint, ...]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(checkpoints_table.c.size, checkpoints_table.c.root, checkpoints_table.c.body)
                .where(checkpoints_table.c.ledger_id == self.ledger)
                .order_by(checkpoints_table.c.size)
            ).all()
            lines = connection.execute(
                select(signatures_table.c.size, signatures_table.c.line)
                .where(signatures_table.c.ledger_id == self.ledger)
                .order_by(signatures_table.c.size, signatures_table.c.key_name)
            ).all()
        by_size: dict[int, list[str]] = {}
        for size, line in lines:
            by_size.setdefault(size, []).append(line)
        return tuple(
            StoredCheckpoint(r.size, bytes.fromhex(r.root), r.body, tuple(by_size.get(r.size, ())))
            for r in rows
        )

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        found = self.checkpoints()
        return found[-1] if found else None


_ROW = (
    entries_table.c.ledger_id,
    entries_table.c.sequence,
    entries_table.c.canonical,
    entries_table.c.previous_hash,
    entries_table.c.entry_hash,
)


def _recorded(row: Sequence[Any]) -> RecordedEntry:
    """A row of `_ROW` (ledger, sequence, canonical, previous hash, entry hash) as an entry."""
    ledger, sequence, canonical, previous, entry_hash = row
    _, _, entry = parse_recorded(canonical.encode())
    return RecordedEntry(ledger, sequence, entry, canonical.encode(), bytes.fromhex(previous),
                         bytes.fromhex(entry_hash))  # fmt: skip


class _Rows:
    """The rows of a batch of new entries, inserted with one executemany per table."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.postings: list[dict[str, Any]] = []
        self.nodes: list[dict[str, Any]] = []

    def add(
        self,
        ledger: str,
        placed: RecordedEntry,
        nodes: Sequence[tuple[int, int, bytes]],
        recorded_at: dt.datetime,
    ) -> None:
        entry = placed.entry
        self.entries.append({
            "ledger_id": ledger, "sequence": placed.sequence,
            "idempotency_key": entry.idempotency_key, "entry_hash": placed.entry_hash.hex(),
            "previous_hash": placed.previous_hash.hex(), "canonical": placed.canonical.decode(),
            "contract_id": entry.contract_id, "period": entry.period,
            "contract_hash": entry.contract, "trace_hash": entry.trace_hash,
            "reverses": entry.reverses, "recorded_at": recorded_at,
        })  # fmt: skip
        self.postings.extend(
            {"ledger_id": ledger, "sequence": placed.sequence, "position": position,
             "account": p.account, "side": p.side, "amount": str(p.amount),
             "currency": p.currency}
            for position, p in enumerate(entry.postings)
        )  # fmt: skip
        self.nodes.extend(
            {"ledger_id": ledger, "level": level, "position": position, "hash": digest}
            for level, position, digest in nodes
        )

    def insert(self, connection: Connection) -> None:
        for table, rows in ((entries_table, self.entries), (postings_table, self.postings),
                            (nodes_table, self.nodes)):  # fmt: skip
            if rows:
                connection.execute(insert(table), rows)


def _same_or_refuse(existing: RecordedEntry, entry: Entry) -> RecordedEntry:
    if existing.entry != entry:
        raise LedgerError(
            f"idempotency key {entry.idempotency_key!r} is already recorded as entry "
            f"{existing.sequence:,} with other content: a retry must send the same entry"
        )
    return existing

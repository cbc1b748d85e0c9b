"""Ledger entries: balanced sets of postings, their canonical bytes, and the hash chain over them.

An entry is immutable once recorded; a correction is a new entry that reverses it. Amounts are
exact decimals written as strings in RFC 8785 JSON, so anyone can recompute every hash:
`entry_hash = SHA-256(previous entry hash || canonical entry)`, starting from the ledger's genesis.
Pure: no storage, no clock.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from rules.canonical import canonical_json, decimal_text
from rules.errors import Problem, RuleError

ENTRY_FORMAT = "settle.entry/v1"
# Sums of postings must be exact: amounts have at most 28 digits, sums of many fewer than 80; a
# sum that would round raises instead (decimal's default context rounds at 28 digits).
EXACT = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.InvalidOperation,
                                        decimal.Overflow])  # fmt: skip
GENESIS_PREFIX = b"settle.ledger/v1 genesis\n"
MAX_POSTINGS = 64
MAX_AMOUNT_DIGITS = 28
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
_HASH = re.compile(r"^[0-9a-f]{64}$")

Side = Literal["debit", "credit"]


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of an entry: an amount debited from or credited to an account.

    A party's balance is its credits less its debits: what it is owed. A payment from payer to
    provider debits the payer's account and credits the provider's.
    """

    account: str
    side: Side
    amount: Decimal
    currency: str

    def signed(self) -> Decimal:
        return self.amount if self.side == "credit" else -self.amount


@dataclass(frozen=True, slots=True)
class Entry:
    """What is recorded: postings that balance per currency, and what they came from.

    `idempotency_key` makes a retry safe: appending the same key again returns the entry already
    recorded. `contract`, `inputs_hash` and `trace_hash` commit the entry to the contract version,
    the inputs and the explanation that produced its amounts.
    """

    idempotency_key: str
    postings: tuple[Posting, ...]
    memo: str
    settlement: str = ""
    contract: str = ""  # contract version hash
    contract_id: str = ""
    period: str = ""
    inputs_hash: str = ""
    trace_hash: str = ""
    reverses: str = ""  # entry hash of the entry this one reverses
    metadata: tuple[tuple[str, str], ...] = field(default=())

    def document(self) -> dict[str, Any]:
        """The entry's JSON value, without its place in a ledger."""
        return {
            "idempotency_key": self.idempotency_key,
            "memo": self.memo,
            "settlement": self.settlement,
            "contract": self.contract,
            "contract_id": self.contract_id,
            "period": self.period,
            "inputs_hash": self.inputs_hash,
            "trace_hash": self.trace_hash,
            "reverses": self.reverses,
            "metadata": dict(self.metadata),
            "postings": [
                {
                    "account": p.account,
                    "side": p.side,
                    "amount": decimal_text(p.amount),
                    "currency": p.currency,
                }
                for p in self.postings
            ],
        }


@dataclass(frozen=True, slots=True)
class RecordedEntry:
    """An entry at its place in a ledger, with the bytes and hashes an auditor recomputes."""

    ledger: str
    sequence: int
    entry: Entry
    canonical: bytes
    previous_hash: bytes
    entry_hash: bytes


def genesis_hash(ledger: str) -> bytes:
    """The hash the chain of `ledger` starts from."""
    return hashlib.sha256(GENESIS_PREFIX + ledger.encode("utf-8")).digest()


def canonical_entry(entry: Entry, *, ledger: str, sequence: int) -> bytes:
    """RFC 8785 bytes of the entry at `sequence` in `ledger`."""
    return canonical_json(
        {"format": ENTRY_FORMAT, "ledger": ledger, "sequence": sequence, **entry.document()}
    )


def chain_hash(previous_hash: bytes, canonical: bytes) -> bytes:
    """entry_hash = SHA-256(previous entry hash || canonical entry)."""
    return hashlib.sha256(previous_hash + canonical).digest()


def record(entry: Entry, *, ledger: str, sequence: int, previous_hash: bytes) -> RecordedEntry:
    """The entry placed after `previous_hash`; the entry must already have been checked."""
    canonical = canonical_entry(entry, ledger=ledger, sequence=sequence)
    return RecordedEntry(
        ledger, sequence, entry, canonical, previous_hash, chain_hash(previous_hash, canonical)
    )


def check_entry(entry: Entry) -> tuple[Problem, ...]:
    """Every problem with an entry: unbalanced currencies, non-positive amounts, bad names."""
    where = f"entry {entry.idempotency_key!r}" if _KEY.match(entry.idempotency_key) else "entry"
    problems: list[Problem] = []
    if not _KEY.match(entry.idempotency_key):
        problems.append(
            Problem(
                where, "the idempotency key must be 1 to 200 printable characters without spaces"
            )
        )
    if not entry.memo or len(entry.memo) > 500:
        problems.append(Problem(where, "the memo must be 1 to 500 characters"))
    for name, value in (
        ("contract", entry.contract),
        ("inputs_hash", entry.inputs_hash),
        ("trace_hash", entry.trace_hash),
        ("reverses", entry.reverses),
    ):
        if value and not _HASH.match(value):
            problems.append(Problem(f"{where}.{name}", "must be a SHA-256 hash in lower-case hex"))
    if not 2 <= len(entry.postings) <= MAX_POSTINGS:
        problems.append(
            Problem(where, f"an entry has 2 to {MAX_POSTINGS} postings, not {len(entry.postings)}")
        )
    for index, posting in enumerate(entry.postings):
        problems.extend(_posting_problems(posting, f"{where}.postings.{index}"))
    problems.extend(_balance_problems(entry, where))
    return tuple(problems)


def _posting_problems(posting: Posting, where: str) -> list[Problem]:
    problems = []
    if not _ACCOUNT.match(posting.account):
        problems.append(
            Problem(f"{where}.account", "must be letters, digits, '.', '_', ':' or '-'")
        )
    if posting.side not in ("debit", "credit"):
        problems.append(Problem(f"{where}.side", "must be 'debit' or 'credit'"))
    if not re.match(r"^[A-Z]{3}$", posting.currency):
        problems.append(Problem(f"{where}.currency", "must be an ISO 4217 code such as USD"))
    amount = posting.amount
    if not isinstance(amount, Decimal) or not amount.is_finite() or amount <= 0:
        problems.append(Problem(f"{where}.amount", f"must be a positive decimal, not {amount}"))
    elif len(amount.as_tuple().digits) > MAX_AMOUNT_DIGITS or amount.as_tuple().exponent > 0:  # type: ignore[operator]
        problems.append(
            Problem(f"{where}.amount", f"at most {MAX_AMOUNT_DIGITS} digits, written out in full")
        )
    return problems


def _balance_problems(entry: Entry, where: str) -> list[Problem]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    with decimal.localcontext(EXACT):
        for posting in entry.postings:
            if isinstance(posting.amount, Decimal) and posting.amount.is_finite():
                totals[posting.currency] += posting.signed()
    return [
        Problem(where, f"debits and credits in {currency} differ by {decimal_text(abs(total))}")
        for currency, total in sorted(totals.items())
        if total != 0
    ]


def checked(entry: Entry) -> Entry:
    """The entry, or RuleError with every problem in it."""
    problems = check_entry(entry)
    if problems:
        raise RuleError(problems)
    return entry


def reversal(recorded: RecordedEntry, *, idempotency_key: str, memo: str) -> Entry:
    """A new entry that undoes `recorded`: every posting on the other side, referencing it."""
    original = recorded.entry
    return Entry(
        idempotency_key=idempotency_key,
        postings=tuple(
            Posting(p.account, "credit" if p.side == "debit" else "debit", p.amount, p.currency)
            for p in original.postings
        ),
        memo=memo,
        settlement=original.settlement,
        contract=original.contract,
        contract_id=original.contract_id,
        period=original.period,
        inputs_hash=original.inputs_hash,
        trace_hash=original.trace_hash,
        reverses=recorded.entry_hash.hex(),
    )


def entry_from_document(document: Mapping[str, Any]) -> Entry:
    """An Entry from its JSON value (as in `canonical_entry`, or as a caller submits it)."""
    unknown = sorted(set(document) - _ENTRY_FIELDS)
    if unknown:
        raise RuleError([Problem("entry", f"unknown field(s) {', '.join(unknown)}; an entry has "
                                 + ", ".join(sorted(_ENTRY_FIELDS - _PLACE_FIELDS)))])  # fmt: skip
    try:
        postings = tuple(
            Posting(str(p["account"]), p["side"], _amount(p["amount"]), str(p["currency"]))
            for p in document["postings"]
        )
        return Entry(
            idempotency_key=str(document["idempotency_key"]),
            postings=postings,
            memo=str(document["memo"]),
            settlement=str(document.get("settlement", "")),
            contract=str(document.get("contract", "")),
            contract_id=str(document.get("contract_id", "")),
            period=str(document.get("period", "")),
            inputs_hash=str(document.get("inputs_hash", "")),
            trace_hash=str(document.get("trace_hash", "")),
            reverses=str(document.get("reverses", "")),
            metadata=tuple(
                sorted((str(k), str(v)) for k, v in document.get("metadata", {}).items())
            ),
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise RuleError(
            [Problem("entry", f"not an entry document: missing or wrong {error}")]
        ) from None


_PLACE_FIELDS = frozenset({"format", "ledger", "sequence"})  # set by the ledger, not the caller
_ENTRY_FIELDS = frozenset({
    "idempotency_key", "postings", "memo", "settlement", "contract", "contract_id", "period",
    "inputs_hash", "trace_hash", "reverses", "metadata",
}) | _PLACE_FIELDS  # fmt: skip


def _amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise RuleError([Problem("entry", f"amounts are decimal strings, not {value!r:.40}")])
    text = str(value)
    if not re.match(r"^[0-9]+(\.[0-9]+)?$", text):
        raise RuleError([Problem("entry", f"not a positive decimal amount: {text:.40}")])
    return Decimal(text)


def parse_recorded(canonical: bytes) -> tuple[str, int, Entry]:
    """Ledger, sequence and entry from canonical entry bytes (as stored or exported)."""
    document = json.loads(canonical)
    if document.get("format") != ENTRY_FORMAT:
        raise RuleError([Problem("entry", f"not a {ENTRY_FORMAT} entry")])
    return str(document["ledger"]), int(document["sequence"]), entry_from_document(document)


def balances(entries: Iterable[Entry]) -> dict[tuple[str, str], Decimal]:
    """Credits less debits per (account, currency): what each account is owed."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    with decimal.localcontext(EXACT):
        for entry in entries:
            for posting in entry.postings:
                totals[(posting.account, posting.currency)] += posting.signed()
    return dict(sorted(totals.items()))

"""Audit bundles: everything an auditor needs to check one contract's settlements offline.

A bundle holds the entries of a contract and period with their inclusion proofs, a co-signed
checkpoint they are proved against, and the documents they commit to (contract version, inputs,
trace). `verify_bundle` checks all of it with no database and no network, and replays each
settlement from its contract and inputs to the same trace bytes. Pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from contracts.evaluation import evaluate_contract
from contracts.validate import check_contract
from ledger import merkle
from ledger.checkpoint import Checkpoint, Policy, SignedNote, trusted_signers, verify_checkpoint
from ledger.entries import RecordedEntry, canonical_entry, check_entry, parse_recorded
from ledger.errors import VerificationError
from rules.canonical import canonical_json, content_hash
from rules.errors import RuleError

BUNDLE_FORMAT = "settle.audit/v1"


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What a bundle was found to prove."""

    contract_id: str
    period: str
    tree_size: int
    root: bytes
    signers: tuple[str, ...]
    entries: tuple[int, ...]
    replayed: tuple[int, ...]


def build_bundle(
    *,
    ledger: str,
    contract_id: str,
    period: str,
    note: str,
    tree_size: int,
    entries: Sequence[tuple[RecordedEntry, Sequence[bytes]]],
    documents: Mapping[str, tuple[str, bytes]],
) -> dict[str, Any]:
    """The bundle's JSON value: entries with their proofs at `tree_size`, the signed note, and
    the documents (hash -> (kind, canonical bytes)) the entries commit to."""
    return {
        "format": BUNDLE_FORMAT,
        "ledger": ledger,
        "contract_id": contract_id,
        "period": period,
        "checkpoint": note,
        "tree_size": tree_size,
        "entries": [
            {
                "sequence": placed.sequence,
                "previous_hash": placed.previous_hash.hex(),
                "entry_hash": placed.entry_hash.hex(),
                "canonical": placed.canonical.decode("utf-8"),
                "inclusion_proof": [digest.hex() for digest in proof],
            }
            for placed, proof in entries
        ],
        "documents": {
            digest: {"kind": kind, "canonical": canonical.decode("utf-8")}
            for digest, (kind, canonical) in sorted(documents.items())
        },
    }


def bundle_origin(bundle: Any) -> str:
    """The origin of the bundle's checkpoint: the log its trusted keys must have signed for."""
    try:
        return Checkpoint.parse(SignedNote.parse(str(bundle["checkpoint"])).body).origin
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise VerificationError(f"a malformed bundle: {type(error).__name__}: {error}") from None


def verify_bundle(bundle: Any, policy: Policy, *, replay: bool = True) -> BundleReport:
    """Check a bundle offline; raise VerificationError at the first thing that does not hold."""
    try:
        return _verify_bundle(bundle, policy, replay=replay)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # A field missing or of the wrong kind: the bundle is malformed, not merely wrong.
        raise VerificationError(f"a malformed bundle: {type(error).__name__}: {error}") from None


def _verify_bundle(bundle: Any, policy: Policy, *, replay: bool) -> BundleReport:
    if not isinstance(bundle, Mapping) or bundle.get("format") != BUNDLE_FORMAT:
        got = bundle.get("format") if isinstance(bundle, Mapping) else type(bundle).__name__
        raise VerificationError(f"expected a {BUNDLE_FORMAT} bundle, got {got!r}")
    entries = bundle["entries"]
    sequences = [item["sequence"] for item in entries]
    if not entries:
        raise VerificationError("expected at least one entry in the bundle, got none")
    if any(type(s) is not int for s in sequences) or type(bundle["tree_size"]) is not int:
        raise VerificationError("expected whole numbers for sequences and tree_size")
    if len(set(sequences)) != len(sequences):
        raise VerificationError(f"expected each entry once, got sequences {sequences}")
    note = SignedNote.parse(str(bundle["checkpoint"]))
    checkpoint = verify_checkpoint(note, policy)
    if checkpoint.size != bundle["tree_size"]:
        raise VerificationError(
            f"expected proofs at the checkpoint's size {checkpoint.size:,}, got "
            f"{bundle['tree_size']:,}"
        )
    documents = _documents(bundle["documents"])
    checked, replayed = [], []
    for item in entries:
        sequence, entry = _verify_entry(item, bundle, checkpoint.size, checkpoint.root)
        _verify_documents(sequence, entry.contract, entry.inputs_hash, entry.trace_hash, documents)
        if entry.trace_hash:  # an entry recorded from a settlement (or its reversal)
            trace = json.loads(documents[entry.trace_hash][1])
            _verify_payments_match(sequence, entry.postings, trace, reversed_=bool(entry.reverses))
            if replay:
                _verify_replay(sequence, entry.contract, entry.inputs_hash, entry.trace_hash,
                               documents)  # fmt: skip
                replayed.append(sequence)
        checked.append(sequence)
    signers = trusted_signers(note, policy)  # only the lines that were counted
    return BundleReport(
        str(bundle["contract_id"]), str(bundle["period"]), checkpoint.size, checkpoint.root,
        signers, tuple(checked), tuple(replayed),
    )  # fmt: skip


def _documents(raw: Mapping[str, Any]) -> dict[str, tuple[str, bytes]]:
    documents = {}
    for digest, document in raw.items():
        canonical = str(document["canonical"]).encode("utf-8")
        actual = hashlib.sha256(canonical).hexdigest()
        if actual != digest:
            raise VerificationError(f"document {digest}: expected that SHA-256, got {actual}")
        documents[digest] = (str(document["kind"]), canonical)
    return documents


def _verify_entry(
    item: Mapping[str, Any], bundle: Mapping[str, Any], size: int, root: bytes
) -> tuple[int, Any]:
    sequence = int(item["sequence"])
    canonical = str(item["canonical"]).encode("utf-8")
    previous = bytes.fromhex(item["previous_hash"])
    computed = hashlib.sha256(previous + canonical).hexdigest()
    if computed != item["entry_hash"]:
        raise VerificationError(
            f"entry {sequence:,}: expected hash {computed} (of its bytes), got {item['entry_hash']}"
        )
    try:
        ledger, stated_sequence, entry = parse_recorded(canonical)
    except (RuleError, ValueError, KeyError) as error:
        raise VerificationError(f"entry {sequence:,}: not a readable entry: {error}") from None
    if (ledger, stated_sequence) != (bundle["ledger"], sequence):
        raise VerificationError(
            f"entry {sequence:,}: expected ledger {bundle['ledger']} sequence {sequence:,}, got "
            f"{ledger} {stated_sequence:,}"
        )
    if canonical_entry(entry, ledger=ledger, sequence=sequence) != canonical:
        raise VerificationError(f"entry {sequence:,}: expected canonical bytes, got others")
    problems = check_entry(entry)
    if problems:
        raise VerificationError(f"entry {sequence:,}: {problems[0].message}")
    if (entry.contract_id, entry.period) != (bundle["contract_id"], bundle["period"]):
        raise VerificationError(
            f"entry {sequence:,}: expected contract {bundle['contract_id']} period "
            f"{bundle['period']}, got {entry.contract_id} {entry.period}"
        )
    proof = [bytes.fromhex(h) for h in item["inclusion_proof"]]
    try:
        merkle.verify_inclusion(merkle.leaf_hash(bytes.fromhex(computed)), sequence, size, proof,
                                root)  # fmt: skip
    except VerificationError as error:
        raise VerificationError(f"entry {sequence:,}: {error}") from None
    return sequence, entry


def _verify_documents(
    sequence: int, contract: str, inputs: str, trace: str, documents: Mapping[str, Any]
) -> None:
    for kind, digest in (("contract", contract), ("inputs", inputs), ("trace", trace)):
        if not digest:
            continue  # the entry commits to no such document
        if digest not in documents:
            raise VerificationError(f"entry {sequence:,}: expected its {kind} {digest} in the "
                                    "bundle, got none")  # fmt: skip
        if documents[digest][0] != kind:
            raise VerificationError(f"entry {sequence:,}: expected document {digest} to be its "
                                    f"{kind}, got a {documents[digest][0]}")  # fmt: skip


def _verify_payments_match(
    sequence: int, postings: Sequence[Any], trace: Mapping[str, Any], *, reversed_: bool
) -> None:
    """The entry's legs are exactly the trace's payments: a debit and a credit for each (the
    other way round for an entry that reverses one)."""
    out, into = ("credit", "debit") if reversed_ else ("debit", "credit")
    expected = []
    for payment in trace["payments"]:
        amount = Decimal(payment["amount"])
        expected += [(payment["from"], out, amount, payment["currency"]),
                     (payment["to"], into, amount, payment["currency"])]  # fmt: skip
    actual = [(p.account, p.side, p.amount, p.currency) for p in postings]
    if actual != expected:
        raise VerificationError(
            f"entry {sequence:,}: expected postings {expected} (the trace's payments), got {actual}"
        )


def _verify_replay(
    sequence: int,
    contract_hash: str,
    inputs_hash: str,
    trace_hash: str,
    documents: Mapping[str, tuple[str, bytes]],
) -> None:
    """Evaluate the contract again on the recorded inputs: the trace must be the same bytes."""
    version, problems = check_contract(json.loads(documents[contract_hash][1]), name="bundle")
    if version is None or version.content_hash != contract_hash:
        got = problems[0].format() if problems else getattr(version, "content_hash", None)
        raise VerificationError(f"entry {sequence:,}: expected contract version {contract_hash} "
                                f"to load again, got {got}")  # fmt: skip
    trace = json.loads(documents[trace_hash][1])
    inputs_document = json.loads(documents[inputs_hash][1])
    overrides = {name: item["value"] for name, item in inputs_document["parameters"].items()
                 if item["source"] == "override"}  # fmt: skip
    given = {name: item["value"] for name, item in inputs_document["inputs"].items()
             if item["source"] not in NOT_GIVEN}  # fmt: skip
    sources = {name: item["source"] for name, item in inputs_document["inputs"].items()
               if item["source"] not in (*NOT_GIVEN, "given")}  # fmt: skip
    try:
        again = evaluate_contract(version, overrides, given, period=trace["period"]["id"],
                                  sources=sources)  # fmt: skip
    except RuleError as error:
        raise VerificationError(f"entry {sequence:,}: the replay failed: {error}") from None
    replayed = again.trace()
    if content_hash(canonical_json(replayed)) != trace_hash:
        difference = _first_difference(trace, replayed)
        raise VerificationError(
            f"entry {sequence:,}: expected the replay to give trace {trace_hash}, got {difference}"
        )


NOT_GIVEN = ("default", "not given")  # input sources whose value the contract itself supplies


def _first_difference(recorded: Mapping[str, Any], replayed: Mapping[str, Any]) -> str:
    for old, new in zip(recorded["quantities"], replayed["quantities"], strict=False):
        if old != new:
            return f"{new['name']} = {new['value']} where {old['value']} was recorded"
    return "a trace that differs outside the quantities"

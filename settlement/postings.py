"""From an evaluation to a ledger entry: each payment becomes a debit of the payer's account and a
credit of the payee's, all in one balanced entry committed to the contract version, the inputs
and the trace that explain it. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.evaluation import Evaluation
from ledger.entries import Entry, Posting
from rules.canonical import canonical_json, content_hash


@dataclass(frozen=True, slots=True)
class SettlementRecord:
    """An entry to append, and the documents it commits to (hash -> (kind, canonical bytes))."""

    entry: Entry
    documents: dict[str, tuple[str, bytes]]


def inputs_document(evaluation: Evaluation) -> dict[str, Any]:
    """What the evaluation was given: parameter values in force and inputs, as JSON."""
    trace = evaluation.trace()
    return {
        "format": "settle.inputs/v1",
        "contract": evaluation.version.content_hash,
        "period": evaluation.period.id,
        "parameters": {p["name"]: {"value": p["value"], "source": p["source"]}
                       for p in trace["parameters"]},
        "inputs": {i["name"]: {"value": i["value"], "source": i["source"]}
                   for i in trace["inputs"]},
    }  # fmt: skip


def settlement_record(evaluation: Evaluation, *, settlement: str = "") -> SettlementRecord | None:
    """The entry recording the evaluation's payments, or None when it makes no payment.

    Its idempotency key is derived from the contract version, period and the hashes of inputs
    and trace: recording the same settlement again is a no-op, a different one a new entry.
    """
    if not evaluation.payments:
        return None
    contract = evaluation.version.contract
    inputs_bytes = canonical_json(inputs_document(evaluation))
    trace_bytes = canonical_json(evaluation.trace())
    inputs_hash, trace_hash = content_hash(inputs_bytes), content_hash(trace_bytes)
    postings = []
    for payment in evaluation.payments:
        postings.append(Posting(payment.payer_account, "debit", payment.amount, payment.currency))
        postings.append(Posting(payment.payee_account, "credit", payment.amount, payment.currency))
    key = f"{contract.id}/{evaluation.period.id}/{trace_hash[:32]}"
    memo = "; ".join(payment.memo for payment in evaluation.payments)
    entry = Entry(
        idempotency_key=key[:200],
        postings=tuple(postings),
        memo=memo[:500],
        settlement=settlement or key[:200],
        contract=evaluation.version.content_hash,
        contract_id=contract.id,
        period=evaluation.period.id,
        inputs_hash=inputs_hash,
        trace_hash=trace_hash,
        metadata=tuple(
            (p.name, f"{p.payer_account}->{p.payee_account}") for p in evaluation.payments
        ),
    )
    documents = {
        evaluation.version.content_hash: ("contract", evaluation.version.canonical_json),
        inputs_hash: ("inputs", inputs_bytes),
        trace_hash: ("trace", trace_bytes),
    }
    return SettlementRecord(entry, documents)

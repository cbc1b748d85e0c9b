"""Evaluation cases read from files: one JSON object of inputs, or JSON Lines of many cases.

A case is `{"params": {...}, "inputs": {...}}` (optionally with "id" and "period"); a plain JSON
object is the inputs of one case. Numbers are read as exact decimals. A bad line is reported as
that case's problem and the others go on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.document import read_json
from contracts.evaluation import Evaluation, evaluate_contract
from contracts.model import ContractVersion
from contracts.numbers import DocumentError
from rules.errors import Problem, RuleError

CASE_KEYS = frozenset({"id", "params", "inputs", "period"})


@dataclass(frozen=True, slots=True)
class EvaluationCase:
    where: str  # file and line, for messages
    id: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Any] = field(default_factory=dict)
    period: str | None = None
    problem: Problem | None = None  # set when the line could not be read
    sources: Mapping[str, str] = field(default_factory=dict)  # inputs not given by hand


def is_case_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".jsonl", ".ndjson")


def read_cases(path: str | Path) -> Iterator[EvaluationCase]:
    """The cases of a file: every line of a JSON Lines file, or the one case of a JSON file."""
    path = Path(path)
    try:
        handle = path.open("rb")  # bytes: a bad byte is its own line's problem, not the batch's
    except OSError as error:
        raise RuleError([Problem(str(path), f"cannot read the file: {error}")]) from None
    with handle:
        if not is_case_file(path):
            yield _case(f"{path}", handle.read())
            return
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield _case(f"{path}:{number}", line)


def _case(where: str, raw: bytes) -> EvaluationCase:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"not UTF-8: byte {raw[error.start]:#04x} at position {error.start + 1}"
        return EvaluationCase(where, problem=Problem(where, message))
    try:
        document = read_json(text, where)
    except RuleError as error:
        return EvaluationCase(where, problem=error.problems[0])
    except (ValueError, DocumentError) as error:
        return EvaluationCase(where, problem=Problem(where, f"not valid JSON: {error}"))
    if not isinstance(document, dict):
        return EvaluationCase(where, problem=Problem(where, "a case is a JSON object"))
    if "inputs" not in document or not set(document) <= CASE_KEYS:
        return EvaluationCase(where, inputs=document)  # a plain object of inputs
    problem = None
    for key in ("params", "inputs"):
        if not isinstance(document.get(key, {}), dict):
            problem = Problem(f"{where}.{key}", "must be a JSON object of names to values")
    period = document.get("period")
    case_id = document.get("id")
    return EvaluationCase(
        where,
        None if case_id is None else str(case_id),
        document.get("params", {}),
        document["inputs"],
        None if period is None else str(period),
        problem,
    )


def evaluate_case(
    version: ContractVersion,
    case: EvaluationCase,
    overrides: Mapping[str, Any],
    period: str | None,
) -> Evaluation:
    """One case's evaluation; the command line's --param values win over the case's params."""
    if case.problem is not None:
        raise RuleError([case.problem])
    try:
        return evaluate_contract(
            version,
            {**case.params, **overrides},
            case.inputs,
            period=period or case.period,
            sources=case.sources,
        )
    except RuleError as error:
        raise type(error)(p.located(case.where) for p in error.problems) from None

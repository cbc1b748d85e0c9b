"""Evaluate a contract version for one period: parameters in force, inputs, every definition in
order, then the payments; with a trace that explains each number and hashes to a fixed value.

Pure: values in, values out. The trace is the versioned JSON form a ledger entry can commit to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from contracts.document import json_value
from contracts.model import Clause, ContractVersion, Definition, Parameter, Period
from contracts.numbers import shown
from contracts.validate import value_of
from rules.canonical import canonical_json, content_hash, decimal_text, money_text
from rules.check import suggest
from rules.errors import EvaluationError, Problem, RuleError
from rules.evaluate import Budget, Environment, Reading, RoundingError, evaluate, round_decimal
from rules.syntax import names_used
from rules.types import MONEY, Scalar
from rules.values import Bands, Keyed, Points, RowSet, Value

TRACE_FORMAT = "settle.trace/v1"


@dataclass(frozen=True, slots=True)
class ResolvedParameter:
    parameter: Parameter
    value: Value
    source: str  # "contract", "override" or "default"
    effective: str  # ISO date the value took effect, or "" for overrides and defaults
    reference: str
    used: tuple[tuple[str, Value], ...] = ()


@dataclass(frozen=True, slots=True)
class Quantity:
    """One definition's result, with the clause and case that produced it and what it read."""

    definition: Definition
    value: Value
    clause: Clause
    case: int | None  # index of the case that applied; None for `expr` or `otherwise`
    used: tuple[tuple[str, Value], ...]
    rows: tuple[tuple[str, tuple[Value, ...]], ...]


@dataclass(frozen=True, slots=True)
class PaymentResult:
    name: str
    payer: str
    payer_account: str
    payee: str
    payee_account: str
    amount: Decimal
    unrounded: Decimal
    currency: str
    memo: str
    used: tuple[tuple[str, Value], ...]


@dataclass(frozen=True, slots=True)
class Evaluation:
    version: ContractVersion
    period: Period
    parameters: tuple[ResolvedParameter, ...]
    inputs: tuple[
        tuple[str, Value | None, str], ...
    ]  # name, value, "given" | "default" | "not given"
    quantities: tuple[Quantity, ...]
    payments: tuple[PaymentResult, ...]
    skipped_payments: tuple[tuple[str, str], ...]  # name, why not made

    def quantity(self, name: str) -> Value:
        """The value of the definition `name`; KeyError names the definitions there are."""
        for quantity in self.quantities:
            if quantity.definition.name == name:
                return quantity.value
        known = ", ".join(q.definition.name for q in self.quantities)
        raise KeyError(f"no quantity '{name}'; the quantities are: {known}")

    def trace(self) -> dict[str, Any]:
        """The explanation of every number, as a JSON value (format settle.trace/v1)."""
        return _trace(self)

    def trace_hash(self) -> str:
        return content_hash(canonical_json(self.trace()))

    def result(self) -> dict[str, Any]:
        """The `--json` result: contract hash, quantities, payments and trace."""
        trace = self.trace()
        return {
            "contract": self.version.content_hash,
            "period": self.period.id,
            "quantities": {q.definition.name: _quantity_json(q) for q in self.quantities},
            "payments": [_payment_json(p) for p in self.payments],
            "trace": trace,
            "trace_hash": content_hash(canonical_json(trace)),
        }


def evaluate_contract(
    version: ContractVersion,
    parameters: Mapping[str, Any],
    inputs: Mapping[str, Any],
    *,
    period: str | None = None,
    sources: Mapping[str, str] | None = None,
) -> Evaluation:
    """Every quantity and payment of `version` for `period` (default: its first period).

    `parameters` overrides the contract's parameter values by name; `inputs` gives the inputs
    (decimal strings or integers for numbers, lists of objects for rows); `sources` says where an
    input came from when not by hand (the trace shows "given" otherwise). Raises RuleError with
    every problem in the arguments, or EvaluationError where an expression cannot be evaluated.
    """
    contract = version.contract
    label = f"contract {contract.id}"
    problems: list[Problem] = []  # every problem in the arguments, reported together
    budget = Budget()  # one step budget for the whole evaluation
    chosen = contract.periods[0]
    resolved: tuple[ResolvedParameter, ...] = ()
    given: tuple[tuple[str, Value | None, str], ...] = ()
    not_given: list[str] = []
    values: dict[str, Value] = {}
    try:
        chosen = version.contract.period(period)
    except RuleError as error:
        problems.extend(p.located(label) for p in error.problems)
    try:
        resolved = _resolve_parameters(version, parameters, chosen, budget)
    except EvaluationError:
        raise
    except RuleError as error:
        problems.extend(error.problems)
    values.update((p.parameter.name, p.value) for p in resolved)
    try:
        given, not_given = _resolve_inputs(version, inputs, values, sources or {})
    except RuleError as error:
        problems.extend(error.problems)
    if problems:
        raise RuleError(problems)
    environment = Environment(values, frozenset(not_given), contract.rounding.mode, budget)
    quantities = []
    for definition in contract.definitions:
        try:
            quantity = _evaluate_definition(definition, environment)
        except EvaluationError as error:
            raise EvaluationError(p.located(label) for p in error.problems) from None
        values[definition.name] = quantity.value
        quantities.append(quantity)
    try:
        payments, skipped = _payments(version, environment)
    except EvaluationError as error:
        raise EvaluationError(p.located(label) for p in error.problems) from None
    return Evaluation(version, chosen, resolved, given, tuple(quantities), payments, skipped)


def parameter_values(
    version: ContractVersion, overrides: Mapping[str, Any], period: str | None
) -> dict[str, Value]:
    """The parameter values an evaluation of `period` uses: overrides, values in force, defaults.
    Raises RuleError as an evaluation would."""
    resolved = _resolve_parameters(version, overrides, version.contract.period(period), Budget())
    return {p.parameter.name: p.value for p in resolved}


def _resolve_parameters(
    version: ContractVersion, overrides: Mapping[str, Any], period: Period, budget: Budget
) -> tuple[ResolvedParameter, ...]:
    contract = version.contract
    by_name = {p.name: p for p in contract.parameters}
    problems = _unknown_names("parameter", overrides, by_name)
    resolved: list[ResolvedParameter] = []
    values: dict[str, Value] = {}
    failed_evaluation = False
    failed: set[str] = set(overrides) - set(by_name)
    for parameter in contract.parameters:
        if (
            parameter.default is not None
            and parameter.name not in overrides
            and any(name.name in failed for name in names_used(parameter.default.expr))
        ):
            failed.add(parameter.name)  # its own problem would only echo the one reported
            continue
        try:
            found = _resolve_parameter(
                parameter, overrides, period, values, contract.rounding.mode, budget
            )
        except RuleError as error:
            failed_evaluation |= isinstance(error, EvaluationError)
            problems.extend(error.problems)
            failed.add(parameter.name)
            continue
        if found is not None:
            resolved.append(found)
            values[parameter.name] = found.value
    if problems:
        error_type = EvaluationError if failed_evaluation else RuleError
        raise error_type(p.located(f"contract {contract.id}") for p in problems)
    return tuple(resolved)


def _resolve_parameter(
    parameter: Parameter,
    overrides: Mapping[str, Any],
    period: Period,
    values: Mapping[str, Value],
    rounding_mode: str,
    budget: Budget,
) -> ResolvedParameter | None:
    where = f"parameters.{parameter.name}"
    if parameter.name in overrides:
        try:
            value = value_of(parameter.type, overrides[parameter.name])
        except ValueError as error:
            raise RuleError(
                [Problem(where, f"override {shown(overrides[parameter.name])}: {error}")]
            ) from None
        if parameter.one_of and value not in parameter.one_of:
            raise RuleError(
                [
                    Problem(
                        where,
                        f"{shown(value)} is not one of " + ", ".join(map(repr, parameter.one_of)),
                    )
                ]
            )
        return ResolvedParameter(parameter, value, "override", "", "given for this evaluation")
    in_force = parameter.in_force(period.start)
    if in_force is not None:
        return ResolvedParameter(
            parameter,
            in_force.value,
            "contract",
            in_force.effective.isoformat(),
            in_force.reference,
        )
    if parameter.default is not None:
        environment = Environment(values, rounding_mode=rounding_mode, budget=budget)
        value, reading = _run(parameter.default, environment)
        return ResolvedParameter(
            parameter, value, "default", "", parameter.reference, _used(reading, values)
        )
    first = min((v.effective for v in parameter.values), default=None)
    raise RuleError(
        [
            Problem(
                where,
                f"no value in force on {period.start.isoformat()} "
                f"(period {period.id}); the first takes effect {first}",
            )
        ]
    )


def _resolve_inputs(
    version: ContractVersion,
    given: Mapping[str, Any],
    values: dict[str, Value],
    sources: Mapping[str, str],
) -> tuple[tuple[tuple[str, Value | None, str], ...], list[str]]:
    contract = version.contract
    declared = {i.name: i for i in contract.inputs}
    problems = _unknown_names("input", given, declared)
    resolved: list[tuple[str, Value | None, str]] = []
    not_given: list[str] = []
    for item in contract.inputs:
        if item.name in given:
            try:
                value = value_of(item.type, given[item.name])
            except ValueError as error:
                problems.append(Problem(f"inputs.{item.name}", str(error)))
                continue
            why = item.out_of_range(value)
            if why is not None:
                problems.append(Problem(f"inputs.{item.name}", why))
                continue
            resolved.append((item.name, value, sources.get(item.name, "given")))
            values[item.name] = value
        elif item.default is not None:
            resolved.append((item.name, item.default, "default"))
            values[item.name] = item.default
        elif item.optional:
            resolved.append((item.name, None, "not given"))
            not_given.append(item.name)
        else:
            problems.append(
                Problem(
                    f"inputs.{item.name}",
                    f"missing input '{item.name}' ({item.type}): {item.description}",
                )
            )
    if problems:
        raise RuleError(p.located(f"contract {contract.id}") for p in problems)
    return tuple(resolved), not_given


def _evaluate_definition(definition: Definition, environment: Environment) -> Quantity:
    if definition.expr is not None:
        return _quantity(definition, definition.expr, None, environment, Reading())
    before = Reading()
    for index, case in enumerate(definition.cases):
        holds, reading = _run(case.when, environment)
        for name in reading.names:
            before.read(name)
        if holds:
            return _quantity(definition, case.then, index, environment, before)
    assert definition.otherwise is not None
    return _quantity(definition, definition.otherwise, None, environment, before)


def _quantity(
    definition: Definition,
    clause: Clause,
    case: int | None,
    environment: Environment,
    before: Reading,
) -> Quantity:
    value, reading = _run(clause, environment)
    for name in reading.names:
        before.read(name)
    return Quantity(
        definition,
        value,
        clause,
        case,
        _used(before, environment.values),
        tuple(reading.row_values),
    )


def _run(clause: Clause, environment: Environment) -> tuple[Value, Reading]:
    """Evaluate one clause; a failure is placed at the clause's path (definitions.x.expr)."""
    try:
        return evaluate(clause.source, clause.expr, environment)
    except EvaluationError as error:
        raise EvaluationError(p.located(clause.path) for p in error.problems) from None


def _used(reading: Reading, values: Mapping[str, Value]) -> tuple[tuple[str, Value], ...]:
    return tuple((name, values[name]) for name in reading.names if name in values)


def _payments(
    version: ContractVersion, environment: Environment
) -> tuple[tuple[PaymentResult, ...], tuple[tuple[str, str], ...]]:
    contract = version.contract
    policy = contract.rounding
    made: list[PaymentResult] = []
    skipped: list[tuple[str, str]] = []
    for payment in contract.payments:
        reading = Reading()
        if payment.when is not None:
            holds, reading = _run(payment.when, environment)
            if not holds:
                skipped.append((payment.name, f"condition not met: {payment.when.source}"))
                continue
        unrounded, amount_reading = _run(payment.amount, environment)
        assert isinstance(unrounded, Decimal)
        for name in amount_reading.names:
            reading.read(name)
        try:
            amount = round_decimal(unrounded, policy.payment_places, policy.payment_mode)
        except RoundingError as error:
            where = f"payments.{payment.name}.amount"
            source, span = payment.amount.source, payment.amount.expr.span
            raise EvaluationError([Problem(where, str(error), source, span)]) from None
        if amount < 0:
            raise EvaluationError(
                [
                    Problem(
                        f"payments.{payment.name}.amount",
                        f"the amount is negative ({decimal_text(amount)}): a payment's direction "
                        "is set "
                        "by 'from' and 'to'; guard it with 'when'",
                        payment.amount.source,
                        payment.amount.expr.span,
                    )
                ]
            )
        if amount == 0:
            skipped.append((payment.name, "the amount rounds to zero"))
            continue
        payer, payee = contract.party(payment.payer), contract.party(payment.payee)
        made.append(
            PaymentResult(
                payment.name,
                payer.role,
                payer.account,
                payee.role,
                payee.account,
                amount,
                unrounded,
                contract.currency,
                payment.memo,
                _used(reading, environment.values),
            )
        )
    return tuple(made), tuple(skipped)


def _unknown_names(kind: str, given: Mapping[str, Any], known: Mapping[str, Any]) -> list[Problem]:
    """A problem for each given name the contract does not declare: nothing is silently ignored."""
    return [
        Problem(f"{kind}s.{name}", f"unknown {kind} '{name}'" + suggest(name, known))
        for name in given
        if name not in known
    ]


def _used_json(used: tuple[tuple[str, Value], ...]) -> dict[str, Any]:
    return {
        name: (
            f"({len(v)} rows)"
            if isinstance(v, RowSet)
            else "(table)"
            if isinstance(v, Points | Bands | Keyed)
            else json_value(v)
        )
        for name, v in used
    }


def _payment_json(payment: PaymentResult) -> dict[str, Any]:
    return {
        "name": payment.name,
        "from": payment.payer_account,
        "to": payment.payee_account,
        "amount": format(payment.amount, "f"),  # already quantized to the policy's places
        "currency": payment.currency,
        "memo": payment.memo,
    }


def _trace(evaluation: Evaluation) -> dict[str, Any]:
    contract = evaluation.version.contract
    policy = contract.rounding
    parameters = {p.parameter.name: p for p in evaluation.parameters}
    return {
        "format": TRACE_FORMAT,
        "contract": {
            "id": contract.id,
            "title": contract.title,
            "hash": evaluation.version.content_hash,
        },
        "period": {
            "id": evaluation.period.id,
            "start": evaluation.period.start.isoformat(),
            "end": evaluation.period.end.isoformat(),
        },
        "parameters": [
            {
                "name": p.parameter.name,
                "type": str(p.parameter.type) if isinstance(p.parameter.type, Scalar) else "table",
                "description": p.parameter.description,
                "value": json_value(p.value),
                "source": p.source,
                "effective": p.effective,
                "reference": p.reference,
                **(
                    {"expression": p.parameter.default.source, "used": _used_json(p.used)}
                    if p.source == "default" and p.parameter.default is not None
                    else {}
                ),
            }
            for p in sorted(evaluation.parameters, key=lambda p: p.parameter.name)
        ],
        "inputs": [
            {"name": name, "value": json_value(value), "source": source}
            for name, value, source in sorted(evaluation.inputs, key=lambda item: item[0])
        ],
        "quantities": [
            {
                "name": q.definition.name,
                "type": str(q.definition.type),
                "description": q.definition.description,
                "reference": q.definition.reference,
                "clause": q.clause.path,
                "expression": q.clause.source,
                "case": None
                if q.case is None
                else {"index": q.case, "when": q.definition.cases[q.case].when.source},
                "used": _used_json(q.used),
                "parameters": _parameters_used(q.used, parameters),
                "rows": [
                    {"expression": expression, "values": [json_value(v) for v in per_row]}
                    for expression, per_row in q.rows
                ],
                "value": _quantity_json(q),
            }
            for q in evaluation.quantities
        ],
        "payments": [
            {
                **_payment_json(p),
                "unrounded": decimal_text(p.unrounded),
                "rounding": {"places": policy.payment_places, "mode": policy.payment_mode},
                "used": _used_json(p.used),
            }
            for p in evaluation.payments
        ],
        "payments_not_made": [
            {"name": name, "why": why} for name, why in evaluation.skipped_payments
        ],
    }


def _quantity_json(quantity: Quantity) -> Any:
    """A quantity's value as JSON; money always to at least the cent ("12118222.50")."""
    if quantity.definition.type == MONEY and isinstance(quantity.value, Decimal):
        return money_text(quantity.value)
    return json_value(quantity.value)


def _parameters_used(
    used: tuple[tuple[str, Value], ...], parameters: Mapping[str, ResolvedParameter]
) -> dict[str, Any]:
    """The parameters a quantity read, each with where its value came from."""
    return {
        name: {
            "value": json_value(found.value),
            "source": found.source,
            "effective": found.effective,
            "reference": found.reference,
        }
        for name, _ in used
        if (found := parameters.get(name)) is not None
    }

"""Contract terms as immutable values: parties, periods, parameters, inputs, definitions, payments.

Built only by `contracts.validate`, which guarantees every expression here parsed and type-checked.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from rules.errors import Problem, RuleError
from rules.syntax import Expr
from rules.types import Type
from rules.values import Value


@dataclass(frozen=True, slots=True)
class Clause:
    """An expression as written in the contract, with where it stands and its parsed tree."""

    path: str
    source: str
    expr: Expr


@dataclass(frozen=True, slots=True)
class Party:
    role: str
    name: str
    account: str


@dataclass(frozen=True, slots=True)
class Period:
    id: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True, slots=True)
class ParameterValue:
    """One value of a parameter, in force from `effective`, citing the clause it comes from."""

    value: Value
    effective: dt.date
    reference: str


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    type: Type
    description: str
    values: tuple[ParameterValue, ...]
    default: Clause | None
    reference: str
    one_of: tuple[str, ...]

    def in_force(self, on: dt.date) -> ParameterValue | None:
        """The latest value whose effective date is on or before `on`."""
        current = None
        for candidate in self.values:
            if candidate.effective <= on and (
                current is None or candidate.effective >= current.effective
            ):
                current = candidate
        return current


@dataclass(frozen=True, slots=True)
class Aggregate:
    """An input computed from outcome events (by the outcomes package), declared here."""

    events: str
    measure: str
    field: str | None
    where: Clause | None
    group_by: tuple[str, ...]
    value_column: str | None
    weight_by: str | None
    per_person_cap: str | None
    population: str | None
    within: str | None = None  # "episode": claim lines of each episode's person in its window
    per_episode_cap: str | None = None
    episode_rule: str | None = None  # within episodes: only those this rule built


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    type: Type
    description: str
    optional: bool
    default: Value | None
    aggregate: Aggregate | None
    minimum: Decimal | None = None
    maximum: Decimal | None = None

    def out_of_range(self, value: Value) -> str | None:
        """Why `value` is outside the declared range, or None."""
        if not isinstance(value, Decimal):
            return None
        if self.minimum is not None and value < self.minimum:
            return f"{value} is below its minimum {self.minimum}"
        if self.maximum is not None and value > self.maximum:
            return f"{value} is above its maximum {self.maximum}"
        return None


@dataclass(frozen=True, slots=True)
class Case:
    when: Clause
    then: Clause


@dataclass(frozen=True, slots=True)
class Definition:
    """A named quantity: one expression, or cases tried in order with an `otherwise`."""

    name: str
    type: Type
    description: str
    reference: str
    expr: Clause | None
    cases: tuple[Case, ...]
    otherwise: Clause | None


@dataclass(frozen=True, slots=True)
class Payment:
    name: str
    when: Clause | None
    payer: str
    payee: str
    amount: Clause
    memo: str


@dataclass(frozen=True, slots=True)
class RoundingPolicy:
    """How payments are rounded, and the mode round() uses when an expression names none."""

    mode: str
    payment_places: int
    payment_mode: str


@dataclass(frozen=True, slots=True)
class Contract:
    id: str
    title: str
    description: str
    currency: str
    parties: tuple[Party, ...]
    periods: tuple[Period, ...]
    rounding: RoundingPolicy
    parameters: tuple[Parameter, ...]
    inputs: tuple[Input, ...]
    definitions: tuple[Definition, ...]
    payments: tuple[Payment, ...]

    def party(self, role: str) -> Party:
        return next(p for p in self.parties if p.role == role)

    def period(self, period_id: str | None) -> Period:
        """The period with this id (None: the first), or RuleError naming the periods there are."""
        if period_id is None:
            return self.periods[0]
        for candidate in self.periods:
            if candidate.id == period_id:
                return candidate
        known = ", ".join(p.id for p in self.periods)
        raise RuleError([Problem("period", f"the contract has no period '{period_id}'; its "
                                           f"periods are: {known}")])  # fmt: skip


@dataclass(frozen=True, slots=True)
class ContractVersion:
    """A validated contract and its identity: SHA-256 of the RFC 8785 canonical document."""

    contract: Contract
    content_hash: str
    canonical_json: bytes

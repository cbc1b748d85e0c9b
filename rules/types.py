"""The types of the rule language and the arithmetic between them.

money is an amount in the contract's currency; rate, count and score are dimensionless but kept
apart so that `money + rate` is refused; number is an untyped literal that takes the type of
whatever it meets. Tables and row sets are typed by their shape. Pure: no evaluation here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scalar:
    name: str

    def __str__(self) -> str:
        return self.name


MONEY = Scalar("money")
RATE = Scalar("rate")
COUNT = Scalar("count")
SCORE = Scalar("score")
NUMBER = Scalar("number")
DATE = Scalar("date")
BOOLEAN = Scalar("boolean")
TEXT = Scalar("text")

NUMERIC = frozenset({MONEY, RATE, COUNT, SCORE, NUMBER})
DIMENSIONLESS = frozenset({RATE, COUNT, SCORE, NUMBER})
SCALARS = {t.name: t for t in (MONEY, RATE, COUNT, SCORE, DATE, BOOLEAN, TEXT)}


@dataclass(frozen=True, slots=True)
class PointsTable:
    """(x, y) points for piecewise-linear interpolation, x ascending."""

    x: Scalar
    y: Scalar

    def __str__(self) -> str:
        return f"table of points ({self.x} -> {self.y})"


@dataclass(frozen=True, slots=True)
class BandsTable:
    """Marginal bands: each band [from, to) of a bound type earns its own rate."""

    bound: Scalar

    def __str__(self) -> str:
        return f"table of bands over {self.bound}"


@dataclass(frozen=True, slots=True)
class KeyedTable:
    """Rows keyed by text, each row a fixed set of typed columns."""

    columns: tuple[tuple[str, Scalar], ...]

    def column(self, name: str) -> Scalar | None:
        return dict(self.columns).get(name)

    def __str__(self) -> str:
        return "table keyed by text with columns " + ", ".join(c for c, _ in self.columns)


@dataclass(frozen=True, slots=True)
class Rows:
    """A set of rows (per episode, per member) with typed columns; for sum() and count()."""

    columns: tuple[tuple[str, Scalar], ...]

    def __str__(self) -> str:
        return "rows of (" + ", ".join(f"{c}: {t}" for c, t in self.columns) + ")"


Type = Scalar | PointsTable | BandsTable | KeyedTable | Rows


def unify(left: Type, right: Type) -> Type | None:
    """The common type of two values that must agree (an untyped number takes the other's type)."""
    if left == right:
        return left
    if left == NUMBER and right in NUMERIC:
        return right
    if right == NUMBER and left in NUMERIC:
        return left
    return None


def product_type(left: Type, right: Type) -> Type | None:
    """What `left * right` is: money scales by a dimensionless factor; money * money is refused."""
    if left == MONEY and right in DIMENSIONLESS:
        return MONEY
    if right == MONEY and left in DIMENSIONLESS:
        return MONEY
    if left in DIMENSIONLESS and right in DIMENSIONLESS:
        assert isinstance(left, Scalar) and isinstance(right, Scalar)
        return _dimensionless_product(left, right)
    return None


_PRODUCT_RANK = {NUMBER: 0, SCORE: 1, RATE: 2, COUNT: 3}


def _dimensionless_product(left: Scalar, right: Scalar) -> Scalar:
    # rate x score is a rate (the MSSP final sharing rate); count x rate is a count
    return left if _PRODUCT_RANK[left] >= _PRODUCT_RANK[right] else right


def quotient_type(left: Type, right: Type) -> Type | None:
    """What `left / right` is: money / money is a rate; money / count is money per member."""
    if left == MONEY and right == MONEY:
        return RATE
    if left == MONEY and right in DIMENSIONLESS:
        return MONEY
    if left in DIMENSIONLESS and right == NUMBER:
        return left
    if left in (COUNT, RATE, SCORE) and right == left:
        return RATE
    if left == NUMBER and right == NUMBER:
        return NUMBER
    return None

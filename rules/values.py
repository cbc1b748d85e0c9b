"""Run-time values of the rule language: Decimal numbers, booleans, text, dates, tables and rows.

Tables are immutable and check their own shape when built; numbers are never float.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from decimal import Decimal

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def iso_date(text: str) -> dt.date | None:
    """The calendar date written YYYY-MM-DD, else None (no week dates, times or other forms)."""
    if not _ISO_DATE.match(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Points:
    """Piecewise-linear points, x strictly ascending."""

    points: tuple[tuple[Decimal, Decimal], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("a points table needs at least one point")
        xs = [x for x, _ in self.points]
        for position, (before, after) in enumerate(itertools.pairwise(xs), start=1):
            if after <= before:
                raise ValueError(f"point {position + 1}: x {after} must be greater than {before}")

    def interpolate(self, x: Decimal) -> Decimal:
        """Linear between neighbouring points; flat beyond the first and last point.
        Finds the segment by bisection, so a call costs log(points), not points."""
        points = self.points
        if x <= points[0][0]:
            return points[0][1]
        if x >= points[-1][0]:
            return points[-1][1]
        right = bisect.bisect_left(points, x, key=lambda point: point[0])
        x1, y1 = points[right]
        if x == x1:
            return y1  # exact at a point, whatever the magnitudes around it
        x0, y0 = points[right - 1]
        return y0 + (x - x0) / (x1 - x0) * (y1 - y0)


@dataclass(frozen=True, slots=True)
class Band:
    lower: Decimal
    upper: Decimal | None
    rate: Decimal


@dataclass(frozen=True, slots=True)
class Bands:
    """Contiguous marginal bands from a lower bound of zero or more; the last may be open."""

    bands: tuple[Band, ...]

    def __post_init__(self) -> None:
        if not self.bands:
            raise ValueError("a bands table needs at least one band")
        if self.bands[0].lower < 0:
            raise ValueError("band 1: the first band must start at zero or above")
        for position, band in enumerate(self.bands, start=1):
            if band.upper is not None and band.upper <= band.lower:
                raise ValueError(f"band {position}: 'to' must be greater than 'from'")
            if band.upper is None and position != len(self.bands):
                raise ValueError(f"band {position}: only the last band may be open-ended")
            if position < len(self.bands) and self.bands[position].lower != band.upper:
                raise ValueError(f"band {position + 1}: must start where band {position} ends")

    def pieces(self, x: Decimal) -> tuple[Decimal, ...]:
        """Each band's share of x (rate times the part of |x| inside the band), signed like x."""
        magnitude = abs(x)
        sign = Decimal(-1) if x < 0 else Decimal(1)
        result = []
        for band in self.bands:
            top = magnitude if band.upper is None else min(magnitude, band.upper)
            inside = max(top - band.lower, Decimal(0))
            result.append(sign * band.rate * inside)
        return tuple(result)

    def apply(self, x: Decimal) -> Decimal:
        return sum(self.pieces(x), Decimal(0))


@dataclass(frozen=True, slots=True)
class Keyed:
    """Rows keyed by text; each row maps column names to values."""

    rows: tuple[tuple[str, tuple[tuple[str, Value], ...]], ...]
    _index: dict[str, dict[str, Value]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        self._index.update((key, dict(columns)) for key, columns in self.rows)

    def lookup(self, key: str, column: str) -> Value:
        """One cell, found by key in constant time; KeyError for an unknown key."""
        return self._index[key][column]

    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.rows)


@dataclass(frozen=True, slots=True)
class RowSet:
    """Rows of an input such as episodes or members; each row maps column names to values."""

    rows: tuple[tuple[tuple[str, Value], ...], ...]

    def __len__(self) -> int:
        return len(self.rows)


Value = Decimal | bool | str | dt.date | Points | Bands | Keyed | RowSet

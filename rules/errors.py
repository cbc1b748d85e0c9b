"""Errors and problems of the rule language: one root exception, and problems as values.

A `Problem` says what is wrong and where (contract, clause path, position in the expression);
it formats itself with a caret line under the offending text. Nothing here evaluates anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_CLAUSE_PATH = re.compile(r"^[A-Za-z0-9_.\[\]-]+$")


class SettleError(Exception):
    """The root of every error Settle raises on purpose."""


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open character range [start, end) in an expression's source text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rule definition or its inputs, with where it is."""

    where: str
    message: str
    source: str | None = None
    span: Span | None = None

    @property
    def line_column(self) -> tuple[int, int] | None:
        if self.source is None or self.span is None:
            return None
        before = self.source[: self.span.start]
        line = before.count("\n") + 1
        column = self.span.start - (before.rfind("\n") + 1) + 1
        return line, column

    def located(self, where: str) -> Problem:
        """The same problem, placed under an outer path (such as the contract and clause)."""
        if not self.where:
            joined = where
        elif _CLAUSE_PATH.match(where) and not self.where.startswith("contract "):
            joined = f"{where}.{self.where}"  # definitions + savings.expr
        else:
            joined = f"{where}, {self.where}"  # contract x, definitions.savings.expr
        return Problem(joined, self.message, self.source, self.span)

    def format(self) -> str:
        position = self.line_column
        head = self.where
        if position is not None:
            head = f"{head} at {position[0]}:{position[1]}"
        text = f"{head}: {self.message}" if head else self.message
        if self.source is None or self.span is None:
            return text
        return text + "\n" + _caret_lines(self.source, self.span)


def _caret_lines(source: str, span: Span) -> str:
    line_start = source.rfind("\n", 0, span.start) + 1
    line_end = source.find("\n", span.start)
    if line_end == -1:
        line_end = len(source)
    line = source[line_start:line_end]
    window_start = max(0, min(span.start - line_start - 60, len(line) - 160))
    shown = line[window_start : window_start + 160]
    if window_start > 0:
        shown = "…" + shown[1:]
    if window_start + 160 < len(line):
        shown = shown[:-1] + "…"
    offset = span.start - line_start - window_start
    width = max(1, min(span.end, line_end) - span.start)
    if offset > len(shown):
        offset, width = len(shown), 1
    return f"    {shown}\n    {' ' * offset}{'^' * min(width, max(1, len(shown) - offset + 1))}"


class RuleError(SettleError):
    """Raised when a rule definition or an evaluation cannot go on; carries every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problem.format() for problem in self.problems))


class EvaluationError(RuleError):
    """A well-typed expression met a value it cannot use (division by zero, a missing input)."""

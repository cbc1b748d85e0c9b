"""The rule expression language: limits, parsing into an immutable tree, and printing it back.

Parsing never executes anything: the grammar has no attribute access, no loops and no way to
name Python; the limits below bound the cost of every expression before it is looked at further.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache, lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer_NonRecursive, UnexpectedInput, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken
from lark.tree import Meta

from rules.errors import Problem, RuleError, Span

MAX_EXPRESSION_CHARS = 4000
MAX_NESTING_DEPTH = 64  # parentheses and calls inside one another
MAX_TREE_DEPTH = 200  # operators, including a long flat sum: bounds every recursive walk
MAX_LITERAL_DIGITS = 28  # in an expression and in a document value alike
MAX_NODES = 1000
KEYWORDS = frozenset({"if", "then", "else", "and", "or", "not", "in", "true", "false"})


@dataclass(frozen=True, slots=True)
class Number:
    """A decimal literal as written (`1_000.50`), or a percentage (`2.5%`, worth 0.025)."""

    digits: str
    percent: bool = False
    span: Span = field(default=Span(0, 0), compare=False, repr=False)

    @property
    def value(self) -> Decimal:
        number = Decimal(self.digits.replace("_", ""))
        return number.scaleb(-2) if self.percent else number


@dataclass(frozen=True, slots=True)
class Text:
    value: str
    span: Span = field(default=Span(0, 0), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Boolean:
    value: bool
    span: Span = field(default=Span(0, 0), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    span: Span = field(default=Span(0, 0), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Unary:
    op: str  # "-", "+" or "not"
    operand: Expr
    span: Span = field(default=Span(0, 0), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Binary:
    op: str  # + - * / == != < <= > >= and or
    left: Expr
    right: Expr
    span: Span = field(default=Span(0, 0), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MemberOf:
    operand: Expr
    options: tuple[Expr, ...]
    span: Span = field(default=Span(0, 0), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Conditional:
    condition: Expr
    then: Expr
    otherwise: Expr
    span: Span = field(default=Span(0, 0), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    span: Span = field(default=Span(0, 0), compare=False, repr=False)
    name_span: Span = field(default=Span(0, 0), compare=False, repr=False)


Expr = Number | Text | Boolean | Name | Unary | Binary | MemberOf | Conditional | Call


def children(node: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of a node, left to right."""
    match node:
        case Unary(operand=operand):
            return (operand,)
        case Binary(left=left, right=right):
            return (left, right)
        case MemberOf(operand=operand, options=options):
            return (operand, *options)
        case Conditional(condition=c, then=t, otherwise=o):
            return (c, t, o)
        case Call(args=args):
            return args
    return ()


def names_used(node: Expr) -> tuple[Name, ...]:
    """Every name the expression reads, in source order (calls' function names excluded)."""
    found: list[Name] = []
    stack: list[Expr] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Name):
            found.append(current)
        stack.extend(reversed(children(current)))
    return tuple(found)


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _span(meta_or_token: Token | Meta) -> Span:
    if isinstance(meta_or_token, Meta) and meta_or_token.empty:
        return Span(0, 0)
    start = meta_or_token.start_pos or 0
    return Span(start, meta_or_token.end_pos or start)


@v_args(meta=True)
class _ToTree(Transformer_NonRecursive):  # type: ignore[type-arg]
    """Lark parse tree -> immutable expression tree; iterative, so depth cannot overflow Python."""

    def number(self, meta: Meta, items: list[Token]) -> Number:
        return Number(str(items[0]), False, _span(items[0]))

    def percent(self, meta: Meta, items: list[Token]) -> Number:
        return Number(str(items[0])[:-1], True, _span(items[0]))

    def text(self, meta: Meta, items: list[Token]) -> Text:
        return Text(str(items[0])[1:-1], _span(items[0]))

    def true(self, meta: Meta, items: list[Token]) -> Boolean:
        return Boolean(True, _span(meta))

    def false(self, meta: Meta, items: list[Token]) -> Boolean:
        return Boolean(False, _span(meta))

    def name(self, meta: Meta, items: list[Token]) -> Name:
        return Name(str(items[0]), _span(items[0]))

    def call(self, meta: Meta, items: list[Token | Expr]) -> Call:
        function, *args = items
        assert isinstance(function, Token)
        arguments = tuple(a for a in args if a is not None and not isinstance(a, Token))
        return Call(str(function), arguments, _span(meta), _span(function))

    def sign(self, meta: Meta, items: list[Token | Expr]) -> Unary:
        return Unary(str(items[0]), items[1], _span(meta))  # type: ignore[arg-type]

    def negate(self, meta: Meta, items: list[Expr]) -> Unary:
        return Unary("not", items[0], _span(meta))

    def arithmetic(self, meta: Meta, items: list[Token | Expr]) -> Binary:
        left, op, right = items
        return Binary(str(op), left, right, _span(meta))  # type: ignore[arg-type]

    compare = arithmetic

    def either(self, meta: Meta, items: list[Expr]) -> Binary:
        return Binary("or", items[0], items[1], _span(meta))

    def both(self, meta: Meta, items: list[Expr]) -> Binary:
        return Binary("and", items[0], items[1], _span(meta))

    def member_of(self, meta: Meta, items: list[Expr]) -> MemberOf:
        return MemberOf(items[0], tuple(items[1:]), _span(meta))

    def conditional(self, meta: Meta, items: list[Expr]) -> Conditional:
        return Conditional(items[0], items[1], items[2], _span(meta))


def parse(source: str) -> Expr:
    """Parse one expression, or raise RuleError with every limit or syntax problem and its span."""
    parsed = _parse_once(source)
    if isinstance(parsed, RuleError):
        raise RuleError(parsed.problems)
    return parsed


@lru_cache(maxsize=4096)
def _parse_once(source: str) -> Expr | RuleError:
    """Cached by source text, failures included: trees are immutable, and a contract names each
    clause more than once (a hostile one, to make it parsed again and again)."""
    try:
        _check_size_before_parsing(source)
        try:
            tree = _parser().parse(source)
        except UnexpectedInput as error:
            raise RuleError([_syntax_problem(source, error)]) from None
        expr: Expr = _ToTree().transform(tree)
        _check_tree_limits(source, expr)
    except RuleError as error:
        return error
    return expr


def _check_size_before_parsing(source: str) -> None:
    if len(source) > MAX_EXPRESSION_CHARS:
        raise RuleError(
            [
                Problem(
                    "",
                    f"expression is {len(source):,} characters long; the limit is "
                    f"{MAX_EXPRESSION_CHARS:,}: split it into named definitions",
                    source,
                    Span(MAX_EXPRESSION_CHARS, MAX_EXPRESSION_CHARS + 1),
                )
            ]
        )
    depth = 0
    quote = ""
    for offset, char in enumerate(source):
        if quote:
            quote = "" if char == quote else quote  # parentheses inside text do not nest
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
            if depth > MAX_NESTING_DEPTH:
                raise RuleError([_too_deep(source, Span(offset, offset + 1), MAX_NESTING_DEPTH)])
        elif char == ")":
            depth -= 1


def _too_deep(source: str, span: Span, limit: int) -> Problem:
    return Problem(
        "",
        f"expression nests deeper than {limit} levels: split it into named definitions",
        source,
        span,
    )


def _check_tree_limits(source: str, expr: Expr) -> None:
    problems: list[Problem] = []
    nodes = 0
    stack: list[tuple[Expr, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if depth > MAX_TREE_DEPTH:
            problems.append(_too_deep(source, node.span, MAX_TREE_DEPTH))
            break
        if isinstance(node, Number):
            digit_count = sum(ch.isdigit() for ch in node.digits)
            if digit_count > MAX_LITERAL_DIGITS:
                problems.append(
                    Problem(
                        "",
                        f"number literal has {digit_count} digits; the limit is "
                        f"{MAX_LITERAL_DIGITS}",
                        source,
                        node.span,
                    )
                )
        if isinstance(node, Name) and node.name.startswith("__"):
            problems.append(
                Problem(
                    "",
                    f"names beginning with '__' are not allowed: '{node.name}'",
                    source,
                    node.span,
                )
            )
        if isinstance(node, Call) and node.function.startswith("__"):
            problems.append(
                Problem(
                    "",
                    f"names beginning with '__' are not allowed: '{node.function}'",
                    source,
                    node.name_span,
                )
            )
        stack.extend((child, depth + 1) for child in children(node))
    if nodes > MAX_NODES:
        problems.append(
            Problem(
                "",
                f"expression has {nodes:,} parts; the limit is "
                f"{MAX_NODES:,}: split it into named definitions",
                source,
                expr.span,
            )
        )
    if problems:
        raise RuleError(problems)


def _syntax_problem(source: str, error: UnexpectedInput) -> Problem:
    if isinstance(error, UnexpectedToken):
        token = error.token
        at_end = token.type == "$END"
        position = len(source) if at_end or token.start_pos is None else token.start_pos
        found = "end of the expression" if at_end else f"'{token}'"
        span = Span(position, max(position + 1, token.end_pos or position + 1))
        return Problem(
            "", _unexpected_message(source, position, found, error.expected), source, span
        )
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        char = source[position]
        message = f"unexpected character {char!r}"
        if char == ".":
            message += ": there is no attribute access; use the name of a parameter or input"
        elif char in "[]{}":
            message += ": there are no lists or indexing; use a table parameter and lookup()"
        elif char in "=":
            message += ": compare with '==', there is no assignment"
        return Problem("", message, source, Span(position, position + 1))
    if isinstance(error, UnexpectedEOF):
        end = len(source)
        return Problem("", "the expression ends too early", source, Span(end, end + 1))
    start = error.pos_in_stream or 0
    return Problem("", str(error).splitlines()[0], source, Span(start, start + 1))


def _unexpected_message(source: str, position: int, found: str, expected: set[str]) -> str:
    if source.startswith("**", position) or (
        position > 0 and source[position - 1 : position + 1] == "**"
    ):
        return "there is no power operator '**': write the multiplication out or use a parameter"
    if found.strip("'") in KEYWORDS:
        return f"unexpected keyword {found}"
    if found.strip("'") in ("==", "!=", "<", "<=", ">", ">="):
        return f"unexpected {found}: comparisons do not chain; write a < b and b < c"
    readable = sorted(_TOKEN_WORDS.get(name, name.lower().strip('"')) for name in expected)
    hint = f" (expected {', '.join(readable)})" if readable else ""
    return f"unexpected {found}{hint}"


_TOKEN_WORDS = {
    "NUMBER": "a number",
    "PERCENT": "a percentage",
    "STRING": "a quoted text",
    "NAME": "a name",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*' or '/'",
    "COMPARE": "a comparison",
    "IF": "'if'",
    "THEN": "'then'",
    "ELSE": "'else'",
    "NOT": "'not'",
    "TRUE": "'true'",
    "FALSE": "'false'",
    "AND": "'and'",
    "OR": "'or'",
    "IN": "'in'",
    "$END": "the end",
}

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "not": 3,
    "==": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
}
_ATOM = 8


def to_source(expr: Expr, shown: Mapping[str, str] | None = None) -> str:
    """Print an expression with the fewest parentheses that parse back to the same tree.

    With `shown`, names found in it print as the text it gives (values, for a worked calculation).
    """
    return _print(expr, shown or {})[0]


def _print(expr: Expr, shown: Mapping[str, str]) -> tuple[str, int]:
    match expr:
        case Number(digits=digits, percent=percent):
            return digits + ("%" if percent else ""), _ATOM
        case Text(value=value):
            quote = "'" if '"' in value else '"'
            return f"{quote}{value}{quote}", _ATOM
        case Boolean(value=value):
            return ("true" if value else "false"), _ATOM
        case Name(name=name):
            if name in shown:
                value = shown[name]
                return value, (_ATOM if not value.startswith("-") else 7)
            return name, _ATOM
        case Call(function=function, args=args):
            return f"{function}({', '.join(_print(a, shown)[0] for a in args)})", _ATOM
        case Unary(op="not", operand=operand):
            return f"not {_wrap(operand, 3, shown)}", 3
        case Unary(op=op, operand=operand):
            return f"{op}{_wrap(operand, 8, shown)}", 7
        case Binary(op=op, left=left, right=right):
            level = _PRECEDENCE[op]
            if level == 4:  # comparisons do not chain: both sides must bind tighter
                return f"{_wrap(left, 5, shown)} {op} {_wrap(right, 5, shown)}", level
            return f"{_wrap(left, level, shown)} {op} {_wrap(right, level + 1, shown)}", level
        case MemberOf(operand=operand, options=options):
            listed = ", ".join(_print(o, shown)[0] for o in options)
            return f"{_wrap(operand, 5, shown)} in ({listed})", 4
        case Conditional(condition=c, then=t, otherwise=o):
            parts = (_print(c, shown)[0], _print(t, shown)[0], _print(o, shown)[0])
            return "if {} then {} else {}".format(*parts), 0
    raise TypeError(f"not an expression: {expr!r}")


def _wrap(expr: Expr, needed: int, shown: Mapping[str, str]) -> str:
    text, level = _print(expr, shown)
    return text if level >= needed else f"({text})"

"""Hostile and broken contract terms are refused with their problem, clause path and position, fast.

Each case puts one bad expression (or parameter value, or input) into a small valid contract and
loads it with `check_contract`: no version comes back, the problem names the clause and the
character where it is, and the answer takes well under a second. All of them together in one
document are reported together. Each case that once got through is kept as a regression guard.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import yaml

from contracts.document import read_text
from contracts.evaluation import evaluate_contract
from contracts.validate import check_contract
from rules.errors import EvaluationError, Problem, RuleError

FAST = 1.0  # seconds: every hostile case is answered in well under this
REFERENCE = "Hostile-input test agreement, section 1"
CONTRACT_LABEL = "contract t"

Contract = dict[str, Any]
Placer = Callable[[Contract, str], None]


def _values(value: Any) -> list[dict[str, Any]]:
    return [{"value": value, "effective": "2020-01-01", "reference": REFERENCE}]


def _small_contract() -> Contract:
    """Savings shared at a rate, with a text, a keyed table, a count and an optional input."""
    return {
        "settle": "settle.contract/v1",
        "id": "t",
        "title": "Hostile definitions",
        "currency": "USD",
        "parties": {
            "payer": {"name": "Payer", "account": "payer:p"},
            "provider": {"name": "Provider", "account": "provider:p"},
        },
        "periods": [{"id": "P2020", "start": "2020-01-01", "end": "2020-12-31"}],
        "rounding": {"mode": "half_even", "payments": {"places": 2}},
        "parameters": {
            "sharing_rate": {"type": "rate", "description": "Share", "values": _values("0.5")},
            "track": {"type": "text", "description": "Track", "values": _values("A")},
            "terms": {
                "type": "table",
                "description": "Terms by track",
                "table": {"kind": "keyed", "columns": {"rate": "rate"}},
                "values": _values({"A": {"rate": "0.1"}}),
            },
        },
        "inputs": {
            "benchmark": {"type": "money", "description": "Benchmark"},
            "expenditure": {"type": "money", "description": "Expenditure"},
            "members": {"type": "count", "description": "Assigned members"},
            "bonus": {"type": "money", "description": "Bonus", "optional": True},
        },
        "definitions": [
            {
                "name": "savings",
                "type": "money",
                "description": "Benchmark minus expenditure",
                "expr": "benchmark - expenditure",
            }
        ],
        "payments": [
            {
                "name": "shared_savings_payment",
                "when": "savings > 0",
                "from": "payer",
                "to": "provider",
                "amount": "savings * sharing_rate",
                "memo": "Shared savings",
            }
        ],
    }


@pytest.fixture
def contract() -> Contract:
    return _small_contract()


# --- where a hostile text goes: each placer adds it under `name` ---------------------------------


def definition(expr: str, type_: str = "money") -> Placer:
    def place(raw: Contract, name: str) -> None:
        raw["definitions"].append(
            {"name": name, "type": type_, "description": "Hostile", "expr": expr}
        )

    return place


def definitions(*exprs: str) -> Placer:
    """Several money definitions, `{name}`, `{name}_b`, …, each expression naming the others."""

    def place(raw: Contract, name: str) -> None:
        for suffix, expr in zip(("", "_b", "_c"), exprs, strict=False):
            raw["definitions"].append(
                {
                    "name": f"{name}{suffix}",
                    "type": "money",
                    "description": "Hostile",
                    "expr": expr.replace("{name}", name),
                }
            )

    return place


def parameter_value(value: Any, type_: str = "rate") -> Placer:
    def place(raw: Contract, name: str) -> None:
        raw["parameters"][name] = {
            "type": type_,
            "description": "Hostile",
            "values": _values(value),
        }

    return place


def parameter_defaults(*exprs: str) -> Placer:
    def place(raw: Contract, name: str) -> None:
        for suffix, expr in zip(("", "_b"), exprs, strict=False):
            raw["parameters"][f"{name}{suffix}"] = {
                "type": "rate",
                "description": "Hostile",
                "default": expr.replace("{name}", name),
            }

    return place


def input_default(value: Any, type_: str = "money") -> Placer:
    def place(raw: Contract, name: str) -> None:
        raw["inputs"][name] = {"type": type_, "description": "Hostile", "default": value}

    return place


def aggregate(**spec: Any) -> Placer:
    def place(raw: Contract, name: str) -> None:
        raw["inputs"][name] = {"type": "money", "description": "Hostile", "aggregate": spec}

    return place


def _deep(prefix: str, core: str, suffix: str, depth: int) -> str:
    return prefix * depth + core + suffix * depth


HUNDRED_THOUSAND_CHARACTERS = " + ".join(["savings"] * 10_000).ljust(100_000)
LENGTH_LIMIT = "characters long; the limit is 4,000"
TOO_DEEP = "nests deeper than 64 levels"  # parentheses and calls
TOO_DEEP_TREE = "nests deeper than 200 levels"  # operators
NO_ATTRIBUTES = "there is no attribute access"
EXPR = "definitions.{name}.expr"
VALUE = "parameters.{name}.values.0.value"


def case(
    case_id: str,
    place: Placer,
    message: str,
    path: str,
    position: tuple[int, int] | None,
) -> Any:
    """One row: where the hostile text goes, the problem it must raise, its path and position.

    `{name}` in the message and path stands for the hostile clause's name.
    """
    return pytest.param(place, message, path, position, id=case_id)


# A table: one row a line where it fits, so it is kept as written.
# fmt: off
CASES = [
    # Python's builtins are not functions of the language, whatever they are called with.
    case("builtin-eval", definition('eval("1")'), "unknown function 'eval'", EXPR, (1, 1)),
    case("builtin-exec", definition('exec("import os")'), "unknown function 'exec'", EXPR, (1, 1)),
    case("builtin-open", definition('open("/etc/hosts")'), "unknown function 'open'", EXPR, (1, 1)),
    case(
        "builtin-__import__", definition('__import__("os")'),
        "names beginning with '__' are not allowed: '__import__'", EXPR, (1, 1),
    ),
    case(
        "builtin-getattr", definition('getattr(savings, "__class__")'),
        "unknown function 'getattr'", EXPR, (1, 1),
    ),
    case("builtin-globals", definition("globals()"), "unknown function 'globals'", EXPR, (1, 1)),
    case(
        "builtin-named-without-a-call", definition("savings + eval"), "unknown name 'eval'", EXPR,
        (1, 11),
    ),
    case(
        "dunder-name", definition("__builtins__"), "names beginning with '__' are not allowed",
        EXPR, (1, 1),
    ),
    # No attribute access, indexing or Python syntax beyond the grammar.
    case("dunder-attribute", definition("savings.__class__"), NO_ATTRIBUTES, EXPR, (1, 8)),
    case(
        "empty-tuple-class-bases", definition("().__class__.__bases__"), "unexpected ')'", EXPR,
        (1, 2),
    ),
    case(
        "import-os-system", definition('__import__("os").system("ls")'), NO_ATTRIBUTES, EXPR,
        (1, 17),
    ),
    case("attribute-a-b", definition("a.b"), NO_ATTRIBUTES, EXPR, (1, 2)),
    case("indexing", definition("savings[0]"), "there are no lists or indexing", EXPR, (1, 8)),
    case(
        "power-10**10**10", definition("10**10**10"), "there is no power operator '**'", EXPR,
        (1, 4),
    ),
    case("lambda", definition("lambda: 1"), "unexpected character ':'", EXPR, (1, 7)),
    case(
        "list-comprehension", definition("[x for x in y]"), "there are no lists or indexing", EXPR,
        (1, 1),
    ),
    case(
        "semicolon-two-statements", definition("savings; savings"), "unexpected character ';'",
        EXPR, (1, 8),
    ),
    case(
        "newline-two-statements", definition("savings\nsavings"), "unexpected 'savings'", EXPR,
        (2, 1),
    ),
    case(
        "assignment", definition("x = savings"), "compare with '==', there is no assignment", EXPR,
        (1, 3),
    ),
    case(
        "chained-comparison", definition("1 < 2 < 3", "boolean"), "unexpected '<'", EXPR, (1, 7)
    ),
    case(
        "python-conditional-expression", definition("savings if true else savings"),
        "unexpected keyword 'if'", EXPR, (1, 9),
    ),
    case("exponent-notation", definition("savings * 1e3"), "unexpected 'e3'", EXPR, (1, 12)),
    case("nul-character", definition("savings\x00"), "unexpected character '\\x00'", EXPR, (1, 8)),
    case(
        "bidi-override-character", definition("savings\u202e + 1"),
        "unexpected character '\\u202e'", EXPR, (1, 8),
    ),
    case(
        "cyrillic-letter-in-a-name", definition("s\u0430vings"), "unexpected character", EXPR,
        (1, 2),
    ),
    case(
        "arabic-indic-digits", definition("savings * \u0660.\u0665"), "unexpected character", EXPR,
        (1, 11),
    ),
    # Text: no escapes, one kind of quote per text, one line.
    case(
        "backslash-escaped-quote", definition('track == "a\\"b"', "boolean"),
        "unexpected character '\"'", EXPR, (1, 10),
    ),
    case(
        "mismatched-quotes", definition("track == \"A'", "boolean"), "unexpected character '\"'",
        EXPR, (1, 10),
    ),
    case(
        "doubled-quote-as-escape", definition("track == 'it''s'", "boolean"), "unexpected ''s''",
        EXPR, (1, 14),
    ),
    case(
        "text-across-a-newline", definition('track == "A\nB"', "boolean"),
        "unexpected character '\"'", EXPR, (1, 10),
    ),
    # Size and depth are bounded before anything looks further.
    case(
        "parentheses-10000-deep", definition(_deep("(", "savings", ")", 10_000)), LENGTH_LIMIT,
        EXPR, (1, 4001),
    ),
    case(
        "parentheses-1990-deep-within-the-length-limit",
        definition(_deep("(", "savings", ")", 1_990)), TOO_DEEP, EXPR, (1, 65),
    ),
    case(
        "unary-minus-10000-deep", definition(_deep("-", "savings", "", 10_000)), LENGTH_LIMIT,
        EXPR, (1, 4001),
    ),
    case(
        "unary-minus-3990-deep-within-the-length-limit",
        definition(_deep("-", "savings", "", 3_990)), TOO_DEEP_TREE, EXPR, (1, 201),
    ),
    case(
        "not-10000-deep", definition(_deep("not ", "true", "", 10_000), "boolean"), LENGTH_LIMIT,
        EXPR, (1, 4001),
    ),
    case(
        "not-990-deep-within-the-length-limit",
        definition(_deep("not ", "true", "", 990), "boolean"), TOO_DEEP_TREE, EXPR, (1, 801),
    ),
    case("number-of-10000-digits", definition("1" * 10_000), LENGTH_LIMIT, EXPR, (1, 4001)),
    case(
        "number-of-3000-digits-within-the-length-limit", definition("savings * " + "1" * 3_000),
        "number literal has 3000 digits; the limit is 28", EXPR, (1, 11),
    ),
    case(
        "number-of-29-digits", definition("savings * 0." + "0" * 27 + "1"),
        "number literal has 29 digits", EXPR, (1, 11),
    ),
    case(
        "expression-of-100000-characters", definition(HUNDRED_THOUSAND_CHARACTERS),
        "expression is 100,000 characters long", EXPR, (1, 4001),
    ),
    case(
        "expression-of-1101-parts", definition("min(" + ",".join(["1"] * 1_100) + ")"),
        "expression has 1,101 parts; the limit is 1,000", EXPR, (1, 1),
    ),
    case(
        "parameter-value-of-10000-digits", parameter_value("1" * 10_000), "more than 28 digits",
        VALUE, None,
    ),
    # Order: a definition may use only what is written before it, and never itself.
    case(
        "cycle-a-b-a", definitions("{name}_b + savings", "{name}"),
        "definitions refer to each other in a cycle: {name} -> {name}_b -> {name}",
        EXPR, (1, 1),
    ),
    case(
        "self-reference-is-a-cycle", definitions("{name} + savings"),
        "definitions refer to each other in a cycle: {name} -> {name}", EXPR, (1, 1),
    ),
    case(
        "self-reference-late-in-the-expression-is-a-cycle", definitions("savings + {name}"),
        "definitions refer to each other in a cycle: {name} -> {name}", EXPR, (1, 11),
    ),
    case(
        "forward-reference", definitions("savings + {name}_b", "savings"),
        "'{name}_b' is defined after this definition", EXPR, (1, 11),
    ),
    case(
        "parameter-default-cycle", parameter_defaults("{name}_b", "{name} * 2"),
        "parameter defaults refer to each other in a cycle: {name} -> {name}_b -> {name}",
        "parameters.{name}.default", (1, 1),
    ),
    # Types.
    case(
        "money-plus-rate", definition("savings + sharing_rate"), "cannot add rate to money", EXPR,
        (1, 1),
    ),
    case(
        "money-times-money", definition("savings * savings"), "cannot multiply money by money",
        EXPR, (1, 1),
    ),
    case(
        "if-on-money", definition("if savings then savings else 0"),
        "'if' needs a condition (boolean), not money", EXPR, (1, 4),
    ),
    case(
        "text-compared-with-money", definition("savings > 0 and track == savings", "boolean"),
        "cannot compare text with money", EXPR, (1, 17),
    ),
    case(
        "wrong-declared-type", definition("savings", "rate"), "is money, but must be rate", EXPR,
        (1, 1),
    ),
    case(
        "unknown-function-with-a-suggestion", definition("maxx(savings, 0)"),
        "unknown function 'maxx' (did you mean 'max'?)", EXPR, (1, 1),
    ),
    case(
        "unknown-name-with-a-suggestion", definition("bencmark - expenditure"),
        "unknown name 'bencmark' (did you mean 'benchmark'?)", EXPR, (1, 1),
    ),
    case(
        "wrong-arity-min", definition("min(savings)"), "min() takes 2 or more arguments, got 1",
        EXPR, (1, 1),
    ),
    case(
        "wrong-arity-clamp", definition("savings - clamp(savings, 0)"),
        "clamp() takes 3 arguments, got 2", EXPR, (1, 11),
    ),
    case(
        "round-with-an-unknown-mode", definition('round(savings, 2, "bankers")'),
        "round() mode must be one of", EXPR, (1, 19),
    ),
    case(
        "round-with-places-not-a-literal", definition("round(savings, members)"),
        "round() places must be a whole number", EXPR, (1, 16),
    ),
    case(
        "round-with-too-many-places", definition("round(savings, 13)"),
        "round() places must be a whole number from 0 to 12", EXPR, (1, 16),
    ),
    case(
        "lookup-of-an-unknown-column", definition('lookup(terms, track, "rat")', "rate"),
        "the table has no column 'rat' (did you mean 'rate'?)", EXPR, (1, 22),
    ),
    case(
        "given-of-a-required-input", definition("given(benchmark)", "boolean"),
        "given() takes the name of an optional input", EXPR, (1, 7),
    ),
    # Values and inputs.
    case(
        "python-float-parameter-value", parameter_value(0.1),
        'write decimal numbers as strings, such as "0.5"', VALUE, None,
    ),
    case(
        "json-float-1e400-parameter-value",
        parameter_value(json.loads("1e400", parse_float=Decimal)), "exponent", VALUE, None,
    ),
    case(
        "input-default-not-a-number", input_default("lots"), "not a decimal number",
        "inputs.{name}.default", None,
    ),
    case(
        "aggregate-of-an-unknown-event-type",
        aggregate(events="claim_lines", measure="sum", field="paid_amount"),
        "unknown event type 'claim_lines'", "inputs.{name}.aggregate.events", None,
    ),
    case(
        "aggregate-filter-on-an-unknown-field",
        aggregate(events="claim_line", measure="sum", field="paid_amount", where='claim_typ != ""'),
        "unknown name 'claim_typ' (did you mean 'claim_type'?)", "inputs.{name}.aggregate.where",
        (1, 1),
    ),
    case(
        "aggregate-filter-on-arithmetic",
        aggregate(events="claim_line", measure="sum", field="paid_amount",
                  where="paid_amount + 1 > 100"),
        "a filter compares an event field with a literal", "inputs.{name}.aggregate.where", None,
    ),
    case(
        "aggregate-within-episodes-of-eligibility",
        aggregate(events="eligibility", measure="member_months", within="episode"),
        "within: episode sums a money field of claim lines", "inputs.{name}.aggregate.within",
        None,
    ),
    case(
        "aggregate-episode-cap-without-episodes",
        aggregate(events="claim_line", measure="sum", field="paid_amount",
                  per_episode_cap="sharing_rate"),
        "'sharing_rate' must be a money parameter", "inputs.{name}.aggregate.per_episode_cap",
        None,
    ),
    case(
        "aggregate-person-cap-on-a-count",
        aggregate(events="claim_line", measure="count", per_person_cap="sharing_rate"),
        "a per-person cap truncates an ungrouped sum of money",
        "inputs.{name}.aggregate.per_person_cap", None,
    ),
    case(
        "aggregate-weighted-by-months-of-claims",
        aggregate(events="claim_line", measure="weighted_average", field="paid_amount",
                  weight_by="member_months"),
        "member_months weights events that last a span and name a person",
        "inputs.{name}.aggregate.weight_by", None,
    ),
    case(
        "aggregate-weighted-by-text",
        aggregate(events="claim_line", measure="weighted_average", field="paid_amount",
                  weight_by="claim_type"),
        "'weighted_average' needs 'weight_by', a count field or member_months",
        "inputs.{name}.aggregate.weight_by", None,
    ),
    case(
        "aggregate-attributed-quality",
        aggregate(events="quality_result", measure="value", field="score",
                  population="attributed"),
        "'quality_result' events name no person to attribute",
        "inputs.{name}.aggregate.population", None,
    ),
    case(
        "aggregate-grouped-by-a-claim-field-within-episodes",
        aggregate(events="claim_line", measure="sum", field="paid_amount", within="episode",
                  group_by=["claim_type"], value_column="spend"),
        "'episode' has no field 'claim_type'", "inputs.{name}.aggregate.group_by", None,
    ),
]
# fmt: on


def _clause_path(problem: Problem) -> str:
    """The problem's path inside the contract: `contract t, definitions.x.expr` -> the rest."""
    assert problem.where.startswith(CONTRACT_LABEL), problem.where
    return problem.where[len(CONTRACT_LABEL) :].lstrip(",. ")


def _the_problem(problems: tuple[Problem, ...], message: str) -> Problem:
    found = [p for p in problems if message in p.message]
    assert found, f"no problem says {message!r}; got: {[p.format()[:300] for p in problems]}"
    return found[0]


def _check_timed(raw: Contract) -> tuple[Any, tuple[Problem, ...], float]:
    started = time.perf_counter()
    version, problems = check_contract(raw)
    return version, problems, time.perf_counter() - started


def test_the_small_contract_is_valid_before_anything_hostile_is_added(contract):
    version, problems = check_contract(contract)

    assert problems == ()
    assert version is not None


@pytest.mark.parametrize(("place", "message", "path", "position"), CASES)
def test_a_hostile_definition_is_refused_with_its_problem_path_and_position_fast(
    contract, place, message, path, position
):
    place(contract, "bad")

    version, problems, seconds = _check_timed(contract)

    assert version is None
    problem = _the_problem(problems, message.replace("{name}", "bad"))
    assert _clause_path(problem) == path.replace("{name}", "bad")
    assert problem.line_column == position
    assert seconds < FAST


def _document_case_name(case_id: str) -> str:
    return "h_" + re.sub(r"[^a-z0-9]+", "_", case_id.lower()).strip("_")[:40]


def test_a_document_of_every_hostile_case_reports_all_their_problems_together_fast(contract):
    cases = list(CASES)
    for case in cases:
        place = case.values[0]
        place(contract, _document_case_name(case.id))

    version, problems, seconds = _check_timed(contract)

    assert version is None
    missing = []
    for case in cases:
        _, message, path, position = case.values
        name = _document_case_name(case.id)
        wanted = (path.replace("{name}", name), position)
        reported = [
            (_clause_path(p), p.line_column)
            for p in problems
            if message.replace("{name}", name) in p.message
        ]
        if wanted not in reported:
            missing.append(case.id)
    assert missing == []
    assert seconds < FAST


def test_a_shape_problem_does_not_hide_the_problems_of_the_expressions(contract):
    parameter_value(0.1)(contract, "float_value")
    definition("savings * savings")(contract, "squared")

    _, problems = check_contract(contract)

    assert sorted(_clause_path(p) for p in problems) == [
        "definitions.squared.expr",
        "parameters.float_value.values.0.value",
    ]


def test_every_cycle_in_a_document_is_reported(contract):
    definitions("{name}_b + savings", "{name}")(contract, "first")
    definitions("{name} + savings")(contract, "second")
    parameter_defaults("{name}_b", "{name}")(contract, "third")
    parameter_defaults("{name} * 2")(contract, "fourth")

    _, problems = check_contract(contract)

    cycles = {p.message.rsplit(": ", 1)[-1] for p in problems if "cycle" in p.message}
    assert cycles == {
        "first -> first_b -> first",
        "second -> second",
        "third -> third_b -> third",
        "fourth -> fourth",
    }


def test_a_value_built_of_shared_references_is_refused_fast(contract):
    # What a YAML "billion laughs" of aliases loads as: 10**6 leaves from a few hundred bytes.
    laughs: Any = ["lol"] * 10
    for _ in range(5):
        laughs = [laughs] * 10
    parameter_value(laughs)(contract, "bad")

    version, problems, seconds = _check_timed(contract)

    assert version is None
    assert _clause_path(_the_problem(problems, "not a decimal number")) == (
        "parameters.bad.values.0.value"
    )
    assert seconds < FAST


def test_a_problem_with_a_hostile_value_does_not_repeat_the_whole_value(contract):
    laughs: Any = ["lol"] * 10
    for _ in range(5):
        laughs = [laughs] * 10
    parameter_value(laughs)(contract, "bad")

    _, problems = check_contract(contract)

    assert max(len(p.message) for p in problems) < 200


class _Leaf:
    """A value that counts how often a message writes it out."""

    def __init__(self) -> None:
        self.written = 0

    def __repr__(self) -> str:
        self.written += 1
        return "'lol'"


def test_quoting_a_hostile_value_in_a_problem_does_work_only_for_what_is_shown(contract):
    leaf = _Leaf()
    laughs: Any = [leaf] * 10
    for _ in range(4):
        laughs = [laughs] * 10
    parameter_value(laughs)(contract, "bad")

    check_contract(contract)

    assert leaf.written < 100  # of 100,000 leaves; a 60-character quote shows about ten


# --- run time: what passes the check but cannot be computed stops with its clause and position --


def test_a_division_by_zero_at_run_time_names_the_definition_and_the_division(contract):
    definition("savings + savings / members")(contract, "bad")
    version, problems = check_contract(contract)
    assert problems == ()
    evaluation = None

    with pytest.raises(EvaluationError) as raised:
        evaluation = evaluate_contract(
            version, {}, {"benchmark": "100", "expenditure": "40", "members": 0}
        )

    assert evaluation is None
    (problem,) = raised.value.problems
    assert _clause_path(problem) == "definitions.bad.expr"
    assert problem.message == "division by zero: members is 0"
    assert problem.line_column == (1, 11)
    assert problem.format().endswith("    savings + savings / members\n              " + "^" * 17)


def test_a_division_by_zero_in_a_payment_names_the_payment(contract):
    contract["payments"][0]["amount"] = "savings / members"
    version, _ = check_contract(contract)

    with pytest.raises(EvaluationError) as raised:
        evaluate_contract(version, {}, {"benchmark": "100", "expenditure": "40", "members": 0})

    (problem,) = raised.value.problems
    assert _clause_path(problem) == "payments.shared_savings_payment.amount"
    assert problem.line_column == (1, 1)


def test_a_division_by_zero_in_a_parameter_default_is_an_evaluation_error(contract):
    contract["parameters"]["zero"] = {"type": "rate", "description": "Z", "values": _values("0")}
    contract["parameters"]["derived"] = {
        "type": "rate",
        "description": "Derived",
        "default": "sharing_rate / zero",
    }
    version, _ = check_contract(contract)

    with pytest.raises(EvaluationError) as raised:
        evaluate_contract(version, {}, {"benchmark": "100", "expenditure": "40", "members": 1})

    (problem,) = raised.value.problems
    assert _clause_path(problem) == "parameters.derived.default"


def test_rounding_a_result_too_long_to_hold_stops_with_its_position(contract):
    definition("round(members * members, 12)", "count")(contract, "bad")
    version, _ = check_contract(contract)
    inputs = {"benchmark": "100", "expenditure": "40", "members": 10**27}

    with pytest.raises(EvaluationError) as raised:
        evaluate_contract(version, {}, inputs)

    (problem,) = raised.value.problems
    assert _clause_path(problem) == "definitions.bad.expr"
    assert problem.line_column == (1, 1)


def test_a_payment_too_large_to_round_stops_with_the_payment_named(contract):
    contract["payments"][0]["amount"] = "savings * members"
    version, _ = check_contract(contract)
    inputs = {"benchmark": str(10**27), "expenditure": "0", "members": 10**27}

    with pytest.raises(EvaluationError) as raised:
        evaluate_contract(version, {}, inputs)

    (problem,) = raised.value.problems
    assert _clause_path(problem) == "payments.shared_savings_payment.amount"


def test_an_overflow_stops_the_evaluation_with_the_definition_named(contract):
    definition("members" + " * members" * 60, "count")(contract, "big")
    definition("big" + " * big" * 60, "count")(contract, "bigger")
    definition("bigger" + " * bigger" * 60, "count")(contract, "biggest")
    version, _ = check_contract(contract)

    with pytest.raises(EvaluationError) as raised:
        evaluate_contract(version, {}, {"benchmark": "1", "expenditure": "0", "members": 10**27})

    (problem,) = raised.value.problems
    assert _clause_path(problem) == "definitions.biggest.expr"
    assert problem.message.startswith("the result is too large")
    assert problem.line_column == (1, 1)


# --- the document's text: YAML and JSON numbers, nesting and keys -------------------------------


def _yaml_with_sharing_rate(scalar: str) -> str:
    raw = _small_contract()
    raw["parameters"]["sharing_rate"]["values"][0]["value"] = "SHARING_RATE"
    return yaml.safe_dump(raw, sort_keys=False).replace("SHARING_RATE", scalar)


def _problems_of_text(text: str) -> tuple[Any, tuple[Problem, ...]]:
    try:
        raw = read_text(text, name="hostile.yaml")
    except RuleError as error:
        return None, error.problems
    return check_contract(raw)


def test_a_yaml_decimal_parameter_value_is_read_exactly():
    version, problems = _problems_of_text(_yaml_with_sharing_rate("0.1"))

    assert problems == ()
    (value,) = version.contract.parameters[0].values
    assert value.value == Decimal("0.1")
    assert value.value != Decimal.from_float(0.1)  # the float nearest 0.1 never came into being
    quoted, _ = _problems_of_text(_yaml_with_sharing_rate("'0.1'"))
    assert version.content_hash == quoted.content_hash


def _billion_laughs(depth: int) -> str:
    text = "&l0 [" + ", ".join(["lol"] * 10) + "]"
    for level in range(1, depth + 1):
        text = f"&l{level} [{text}" + f", *l{level - 1}" * 9 + "]"
    return text


def _with_duplicate_parameter(text: str) -> str:
    duplicate = (
        "  sharing_rate:\n    type: rate\n    description: Share\n    values:\n"
        "    - {value: '0.9', effective: '2020-01-01', reference: r}\n"
    )
    return text.replace("parameters:\n", "parameters:\n" + duplicate, 1)


UNREADABLE = "not readable as YAML or JSON"
NOT_A_NUMBER = "not a decimal number"
DUPLICATE_JSON_PARAMETER = json.dumps(_small_contract()).replace(
    '"parameters": {', '"parameters": {"sharing_rate": {"type": "rate"}, ', 1
)

# (document text, problem message): each refused as a problem, never as another exception.
HOSTILE_TEXTS = [
    pytest.param(
        json.dumps(_small_contract()).replace('"0.5"', "1" * 10_000),
        UNREADABLE,
        id="json-10000-digit-integer",
    ),
    pytest.param(_yaml_with_sharing_rate("1" * 10_000), UNREADABLE, id="yaml-10000-digit-integer"),
    pytest.param('{"settle": "settle.contract/v1", "id": ', UNREADABLE, id="json-cut-short"),
    pytest.param(_yaml_with_sharing_rate("[unclosed"), UNREADABLE, id="yaml-unclosed-list"),
    pytest.param(
        _yaml_with_sharing_rate(_billion_laughs(4)), NOT_A_NUMBER, id="yaml-billion-laughs"
    ),
    pytest.param(_yaml_with_sharing_rate(".inf"), NOT_A_NUMBER, id="yaml-infinity"),
    pytest.param(_yaml_with_sharing_rate(".nan"), NOT_A_NUMBER, id="yaml-not-a-number"),
    pytest.param(_yaml_with_sharing_rate("1.0e+400"), NOT_A_NUMBER, id="yaml-exponent-float"),
    pytest.param(
        json.dumps(_small_contract()).replace('"0.5"', "1e400"),
        "write numbers out in full",
        id="json-exponent-float-1e400",
    ),
    pytest.param(
        json.dumps(_small_contract()).replace('"0.5"', "NaN"), "NaN", id="json-not-a-number"
    ),
    pytest.param(
        _yaml_with_sharing_rate("[" * 10_000 + "]" * 10_000),
        "nested deeper than 64 levels",
        id="yaml-nested-10000-deep",
    ),
    pytest.param(
        json.dumps(_small_contract()).replace('"0.5"', "[" * 100_000 + "]" * 100_000),
        "nested deeper than 64 levels",
        id="json-nested-100000-deep",
    ),
    # A reviewer reads the first sharing_rate; a reader that kept the last would use another.
    pytest.param(
        _with_duplicate_parameter(yaml.safe_dump(_small_contract(), sort_keys=False)),
        "the key 'sharing_rate' appears twice",
        id="yaml-duplicate-key",
    ),
    pytest.param(
        DUPLICATE_JSON_PARAMETER, "the key 'sharing_rate' appears twice", id="json-duplicate-key"
    ),
    pytest.param(
        _yaml_with_sharing_rate('!!python/object/apply:os.system ["echo pwned"]'),
        UNREADABLE,
        id="yaml-python-object-tag",
    ),
    pytest.param(
        _yaml_with_sharing_rate("!!python/name:builtins.eval"),
        UNREADABLE,
        id="yaml-python-name-tag",
    ),
    pytest.param(_yaml_with_sharing_rate("1:30"), NOT_A_NUMBER, id="yaml-sexagesimal-1:30"),
    pytest.param(_yaml_with_sharing_rate("0x10"), NOT_A_NUMBER, id="yaml-hexadecimal-0x10"),
]


@pytest.mark.parametrize(("text", "message"), HOSTILE_TEXTS)
def test_a_hostile_document_text_is_refused_as_problems_fast(text, message):
    started = time.perf_counter()

    version, problems = _problems_of_text(text)

    assert version is None
    _the_problem(problems, message)
    assert time.perf_counter() - started < FAST


def test_a_yaml_number_with_a_leading_zero_is_read_as_the_decimal_written():
    # YAML 1.1 reads 010 as octal 8; a contract means ten.
    version, problems = _problems_of_text(_yaml_with_sharing_rate("010"))

    assert problems == ()
    assert version.contract.parameters[0].values[0].value == Decimal(10)


def test_a_hostile_raw_document_is_not_mutated_by_checking(contract):
    definition("savings.__class__")(contract, "bad")
    before = copy.deepcopy(contract)

    check_contract(contract)

    assert contract == before


def test_deep_nesting_is_refused_even_after_py_ecc_raised_the_recursion_limit():
    """py_ecc sets the recursion limit to 100,000 when imported (for signing); deep YAML would
    then overflow the C stack instead of raising RecursionError. The nesting pre-scan must hold."""
    import py_ecc.bls  # noqa: F401  (raises sys.getrecursionlimit() for the process)

    with pytest.raises(RuleError, match="nested deeper than 64 levels"):
        read_text("a: " + "[" * 5_000 + "]" * 5_000, name="deep.yaml")
    with pytest.raises(RuleError, match="indented 300 columns"):
        read_text("a:\n" + " " * 300 + "b: 1\n", name="indented.yaml")

"""The rule language as docs/rule-language.md states it: each row of the types table, each
function's meaning, and problems that point at the offending text with a caret and a suggestion.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from contracts.evaluation import evaluate_contract
from contracts.validate import check_contract
from rules.check import Scope, check
from rules.errors import EvaluationError, Problem, RuleError
from rules.evaluate import Environment, evaluate
from rules.syntax import parse
from rules.types import (
    BOOLEAN,
    COUNT,
    DATE,
    MONEY,
    RATE,
    SCORE,
    TEXT,
    BandsTable,
    KeyedTable,
    PointsTable,
    Rows,
)
from rules.values import Band, Bands, Keyed, Points, RowSet

SCOPE = Scope(
    {
        "savings": MONEY,
        "benchmark": MONEY,
        "bonus": MONEY,
        "sharing_rate": RATE,
        "members": COUNT,
        "quality": SCORE,
        "track": TEXT,
        "start": DATE,
        "met": BOOLEAN,
        "msr_table": PointsTable(COUNT, RATE),
        "brackets": BandsTable(MONEY),
        "terms": KeyedTable((("rate", RATE), ("two_sided", BOOLEAN))),
        "episodes": Rows((("episode_id", TEXT), ("spend", MONEY))),
    },
    optional=frozenset({"bonus"}),
)

VALUES: dict[str, Any] = {
    "savings": Decimal("1000"),
    "benchmark": Decimal("10000"),
    "sharing_rate": Decimal("0.5"),
    "members": Decimal("4"),
    "quality": Decimal("0.9"),
    "track": "A",
    "start": dt.date(2020, 1, 1),
    "met": True,
    "msr_table": Points(((Decimal(5000), Decimal("0.039")), (Decimal(6000), Decimal("0.036")))),
    "brackets": Bands(
        (
            Band(Decimal(0), Decimal(1000), Decimal("0.1")),
            Band(Decimal(1000), Decimal(5000), Decimal("0.2")),
            Band(Decimal(5000), None, Decimal("0.3")),
        )
    ),
    "terms": Keyed(
        (
            ("A", (("rate", Decimal("0.1")), ("two_sided", False))),
            ("B+", (("rate", Decimal("0.3")), ("two_sided", True))),
        )
    ),
    "episodes": RowSet(
        (
            (("episode_id", "e1"), ("spend", Decimal("50"))),
            (("episode_id", "e2"), ("spend", Decimal("150"))),
            (("episode_id", "e3"), ("spend", Decimal("300"))),
        )
    ),
}


def _checked(source: str) -> tuple[Any, tuple[Problem, ...]]:
    return check(source, parse(source), SCOPE)


def type_of(source: str) -> str:
    found, problems = _checked(source)
    assert problems == (), [p.format() for p in problems]
    return str(found)


def problem_of(source: str) -> Problem:
    found, problems = _checked(source)
    assert found is None
    assert len(problems) == 1, [p.format() for p in problems]
    return problems[0]


def value_of(source: str, *, given: bool = False, rounding_mode: str = "half_even") -> Any:
    expr = parse(source)
    _, problems = check(source, expr, SCOPE)
    assert problems == (), [p.format() for p in problems]
    values = {**VALUES, "bonus": Decimal("25")} if given else VALUES
    not_given = frozenset() if given else frozenset({"bonus"})
    value, _ = evaluate(source, expr, Environment(values, not_given, rounding_mode))
    return value


def failure_of(source: str) -> Problem:
    with pytest.raises(EvaluationError) as raised:
        value_of(source)
    (problem,) = raised.value.problems
    return problem


# --- the types table, row by row ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("savings + benchmark", "money"),
        ("savings - benchmark", "money"),
        ("savings * sharing_rate", "money"),
        ("savings * members", "money"),
        ("savings * quality", "money"),
        ("savings * 0.98", "money"),
        ("sharing_rate * savings", "money"),
        ("savings / benchmark", "rate"),
        ("savings / members", "money"),
        ("savings / sharing_rate", "money"),
        ("members / members", "rate"),
        ("quality / quality", "rate"),
        ("sharing_rate / sharing_rate", "rate"),
        ("sharing_rate * quality", "rate"),
        ("quality * sharing_rate", "rate"),
        ("members * sharing_rate", "count"),
        ("members * quality", "count"),
        ("savings > benchmark", "boolean"),
        ('track == "A"', "boolean"),
        ('start <= date("2020-06-30")', "boolean"),
        ("met == true", "boolean"),
        ("1 - sharing_rate", "rate"),
        ("2.5%", "rate"),
        ("-savings", "money"),
        ("if met then savings else 0", "money"),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else None,
)
def test_each_row_of_the_types_table_gives_its_type(source, expected):
    assert type_of(source) == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("savings + sharing_rate", "cannot add rate to money: savings + sharing_rate"),
        ("savings + members", "cannot add count to money"),
        ("savings - quality", "cannot subtract score from money"),
        ("savings * benchmark", "cannot multiply money by money: savings * benchmark"),
        ("savings + 2%", "cannot add rate to money"),
        ("sharing_rate / members", "cannot divide rate by count"),
        ("1 / savings", "cannot divide number by money"),
        ("savings < sharing_rate", "cannot compare money with rate"),
        ("track == savings", "cannot compare text with money"),
        ("met < true", "'<' needs numbers or dates, not boolean"),
        ('track < "B"', "'<' needs numbers or dates, not text"),
        ("if savings then 1 else 0", "'if' needs a condition (boolean), not money: savings"),
        ("if met then savings else sharing_rate", "the branches of 'if' must have one type"),
        ("not savings", "'not' needs a condition (boolean), not money"),
        ("met and savings", "'and' needs a condition (boolean), not money"),
        ("-track", "'-' needs a number, not text"),
    ],
    ids=lambda value: value if isinstance(value, str) and "cannot" not in value else None,
)
def test_what_the_types_table_refuses_is_a_problem_at_the_expression(source, message):
    problem = problem_of(source)

    assert message in problem.message


def test_a_number_literal_takes_the_type_it_meets():
    assert type_of("savings * 0.98") == "money"
    assert type_of("0.98 * savings") == "money"
    assert type_of("1 - sharing_rate") == "rate"
    assert type_of("members + 1") == "count"
    assert type_of("min(savings, 0)") == "money"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("min(savings, benchmark, 0)", "money"),
        ("clamp(sharing_rate, 0%, 1)", "rate"),
        ("abs(savings)", "money"),
        ("round(sharing_rate, 2)", "rate"),
        ("interpolate(msr_table, members)", "rate"),
        ("bands(brackets, savings)", "money"),
        ('lookup(terms, track, "two_sided")', "boolean"),
        ("given(bonus)", "boolean"),
        ("sum(episodes, spend)", "money"),
        ("count(episodes)", "count"),
        ("count(episodes, spend > 100)", "count"),
        ('date("2020-01-01")', "date"),
        ('track in ("A", "B")', "boolean"),
    ],
)
def test_each_function_has_the_type_the_functions_table_gives(source, expected):
    assert type_of(source) == expected


# --- what each function means -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("min(3, 1, 2)", Decimal(1)),
        ("max(3, 1, 2)", Decimal(3)),
        ("max(savings, benchmark)", Decimal(10000)),
        ("min(savings - benchmark, 0)", Decimal(-9000)),
        ("clamp(5, 1, 3)", Decimal(3)),
        ("clamp(0, 1, 3)", Decimal(1)),
        ("clamp(2, 1, 3)", Decimal(2)),
        ("clamp(1, 1, 1)", Decimal(1)),
        ("abs(-2.5)", Decimal("2.5")),
        ("abs(savings - benchmark)", Decimal(9000)),
        ("abs(0)", Decimal(0)),
        ("2.5%", Decimal("0.025")),
        ("1_000_000.50", Decimal("1000000.50")),
    ],
)
def test_min_max_clamp_and_abs(source, expected):
    assert value_of(source) == expected


def test_clamp_with_its_low_bound_above_its_high_bound_stops_at_the_call():
    problem = failure_of("1 + clamp(2, 3, 1)")

    assert problem.message == "clamp() low bound 3 is above its high bound 1"
    assert problem.line_column == (1, 5)


@pytest.mark.parametrize(
    ("x", "mode", "expected"),
    [
        ("2.5", "half_even", "2"),
        ("3.5", "half_even", "4"),
        ("2.5", "half_up", "3"),
        ("2.5", "half_down", "2"),
        ("2.5", "down", "2"),
        ("2.5", "up", "3"),
        ("2.5", "floor", "2"),
        ("2.5", "ceiling", "3"),
        ("-2.5", "half_even", "-2"),
        ("-3.5", "half_even", "-4"),
        ("-2.5", "half_up", "-3"),
        ("-2.5", "half_down", "-2"),
        ("-2.5", "down", "-2"),
        ("-2.5", "up", "-3"),
        ("-2.5", "floor", "-3"),
        ("-2.5", "ceiling", "-2"),
        ("2.4", "up", "3"),
        ("2.6", "down", "2"),
    ],
    ids=lambda value: str(value),
)
def test_round_to_whole_units_by_each_mode_on_the_half(x, mode, expected):
    assert value_of(f'round({x}, 0, "{mode}")') == Decimal(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('round(0.125, 2, "half_even")', "0.12"),
        ('round(0.135, 2, "half_even")', "0.14"),
        ('round(0.125, 2, "half_up")', "0.13"),
        ('round(0.125, 2, "down")', "0.12"),
        ('round(-0.125, 2, "half_up")', "-0.13"),
        ("round(1, 2)", "1.00"),
        ("round(1234.5678, 0)", "1235"),
    ],
)
def test_round_to_places(source, expected):
    rounded = value_of(source)

    assert rounded == Decimal(expected)
    assert str(rounded) == expected  # to exactly `places` decimals


def test_round_without_a_mode_uses_the_contracts_rounding_mode():
    assert value_of("round(0.125, 2)", rounding_mode="half_even") == Decimal("0.12")
    assert value_of("round(0.125, 2)", rounding_mode="half_up") == Decimal("0.13")


def _rounding_contract(mode: str) -> dict[str, Any]:
    reference = "Rounding test"
    return {
        "settle": "settle.contract/v1",
        "id": "r",
        "title": "Rounding",
        "currency": "USD",
        "parties": {
            "payer": {"name": "Payer", "account": "payer:p"},
            "provider": {"name": "Provider", "account": "provider:p"},
        },
        "periods": [{"id": "P2020", "start": "2020-01-01", "end": "2020-12-31"}],
        "rounding": {"mode": mode, "payments": {"places": 2}},
        "parameters": {
            "base_rate": {
                "type": "rate",
                "description": "Base",
                "values": [{"value": "0.125", "effective": "2020-01-01", "reference": reference}],
            },
            "rounded_rate": {
                "type": "rate",
                "description": "Rounded by the contract's mode",
                "default": "round(base_rate, 2)",
            },
        },
        "definitions": [
            {
                "name": "rounded_in_a_definition",
                "type": "rate",
                "description": "Rounded by the contract's mode",
                "expr": "round(base_rate, 2)",
            }
        ],
    }


def test_round_in_a_parameter_default_uses_the_contracts_rounding_mode_too():
    version, problems = check_contract(_rounding_contract("half_up"))
    assert problems == ()

    evaluation = evaluate_contract(version, {}, {})

    assert evaluation.quantity("rounded_in_a_definition") == Decimal("0.13")
    (rounded,) = [p.value for p in evaluation.parameters if p.parameter.name == "rounded_rate"]
    assert rounded == Decimal("0.13")


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ("5000", "0.039"),
        ("5500", "0.0375"),
        ("5750", "0.03675"),
        ("6000", "0.036"),
        ("1", "0.039"),  # flat before the first point
        ("99999", "0.036"),  # and after the last
    ],
)
def test_interpolate_is_linear_between_points_and_flat_beyond(x, expected):
    assert value_of(f"interpolate(msr_table, {x})") == Decimal(expected)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ("0", "0"),
        ("500", "50"),  # 0.1 x 500
        ("1000", "100"),
        ("3000", "500"),  # 100 + 0.2 x 2000
        ("7000", "1500"),  # 100 + 800 + 0.3 x 2000 in the open band
        ("-7000", "-1500"),  # with the sign of x
    ],
)
def test_bands_is_the_marginal_tax_bracket_sum(x, expected):
    assert value_of(f"bands(brackets, {x})") == Decimal(expected)


def test_lookup_reads_one_cell_of_a_keyed_table():
    assert value_of('lookup(terms, track, "rate")') == Decimal("0.1")
    assert value_of('lookup(terms, "B+", "two_sided")') is True


def test_lookup_of_a_row_the_table_lacks_stops_at_the_key_and_names_the_rows():
    problem = failure_of('lookup(terms, "C", "rate")')

    assert problem.message == "the table has no row 'C' (rows: A, B+)"
    assert problem.line_column == (1, 15)


def test_given_says_whether_an_optional_input_was_supplied():
    assert value_of("given(bonus)") is False
    assert value_of("given(bonus)", given=True) is True
    assert value_of("if given(bonus) then bonus else 0") == Decimal(0)
    assert value_of("if given(bonus) then bonus else 0", given=True) == Decimal(25)


def test_an_optional_input_used_without_given_stops_where_it_is_read():
    problem = failure_of("savings + bonus")

    assert "the optional input 'bonus' was not given" in problem.message
    assert "guard the use with given()" in problem.message
    assert problem.line_column == (1, 11)


def test_given_of_a_name_that_is_not_an_optional_input_is_refused():
    assert problem_of("given(savings)").message == "given() takes the name of an optional input"
    assert problem_of("given(1)").line_column == (1, 7)


def test_sum_adds_the_expression_over_every_row_with_the_columns_as_names():
    assert value_of("sum(episodes, spend)") == Decimal(500)
    assert value_of("sum(episodes, spend * sharing_rate)") == Decimal(250)
    assert value_of("sum(episodes, if spend > 100 then spend else 0)") == Decimal(450)


def test_count_counts_rows_or_the_rows_for_which_the_condition_holds():
    assert value_of("count(episodes)") == Decimal(3)
    assert value_of("count(episodes, spend > 100)") == Decimal(2)
    assert value_of('count(episodes, episode_id == "none")') == Decimal(0)


def test_a_row_column_is_not_a_name_outside_its_sum():
    assert problem_of("sum(episodes, spend) + spend").message.startswith("unknown name 'spend'")


def test_date_is_a_calendar_date_that_compares_in_time():
    assert value_of('date("2020-02-29")') == dt.date(2020, 2, 29)
    assert value_of('start < date("2021-01-01")') is True
    assert value_of('start in (date("2020-01-01"), date("2021-01-01"))') is True


@pytest.mark.parametrize("text", ['"2019-02-29"', '"2020-1-1"', '"20200101"', "2020", '"tomorrow"'])
def test_date_of_anything_but_a_quoted_iso_date_is_refused(text):
    problem = problem_of(f"date({text})")

    assert problem.message == 'date() takes a quoted ISO date, such as date("2018-01-01")'
    assert problem.line_column == (1, 6)


def test_date_of_an_iso_week_date_is_refused():
    problem_of('date("2020-W01-1")')


def test_in_compares_with_each_option():
    assert value_of('track in ("A", "B")') is True
    assert value_of('track in ("B")') is False
    assert value_of("members in (1, 4)") is True  # 4 == 4.0: decimals compare by value


def test_and_or_and_if_do_not_evaluate_the_side_they_do_not_need():
    assert value_of("true or savings / 0 > 0") is True
    assert value_of("false and savings / 0 > 0") is False
    assert value_of("if met then savings else savings / 0") == Decimal(1000)


def test_a_division_by_zero_stops_at_the_division():
    problem = failure_of("savings + savings / (members - 4)")

    assert problem.message == "division by zero: members - 4 is 0"
    assert problem.line_column == (1, 11)


def test_arithmetic_is_exact_decimal_not_float():
    assert value_of("0.1 + 0.2 == 0.3") is True
    assert value_of("1 / 3 * 3") == Decimal("0.9999999999999999999999999999999999")  # 34 digits


def test_parentheses_inside_a_text_are_not_nesting():
    assert type_of('track == "' + "(" * 65 + '"') == "boolean"


# --- problems point at the text, with a caret, and suggest the name meant -----------------------


def _contract_with(expr: str) -> dict[str, Any]:
    contract = _rounding_contract("half_even")
    contract["inputs"] = {"benchmark": {"type": "money", "description": "Benchmark"}}
    contract["definitions"] = [
        {"name": "bad", "type": "money", "description": "Under test", "expr": expr}
    ]
    return contract


def _only_problem(expr: str) -> Problem:
    version, problems = check_contract(_contract_with(expr))
    assert version is None
    (problem,) = problems
    return problem


def test_a_problem_formats_with_its_path_position_and_a_caret_under_the_text():
    problem = _only_problem("benchmark * base_rate + base_rate")

    assert problem.format() == (
        "contract r, definitions.bad.expr at 1:1: cannot add rate to money: "
        "benchmark * base_rate + base_rate\n"
        "    benchmark * base_rate + base_rate\n"
        "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^"
    )


def test_the_caret_is_under_the_line_where_the_problem_is():
    problem = _only_problem("benchmark +\n  bencmark")

    assert problem.line_column == (2, 3)
    assert problem.format().splitlines()[1:] == ["      bencmark", "      ^^^^^^^^"]


def test_the_caret_of_an_expression_cut_short_stands_after_its_end():
    problem = _only_problem("benchmark *")

    assert "unexpected end of the expression" in problem.message
    assert problem.line_column == (1, 12)
    assert problem.format().splitlines()[1:] == ["    benchmark *", "               ^"]


def test_a_rule_error_reads_as_its_problems_formatted():
    problems = (_only_problem("benchmark * benchmark"), _only_problem("bencmark"))

    assert str(RuleError(problems)) == "\n".join(p.format() for p in problems)


@pytest.mark.parametrize(
    ("source", "suggestion"),
    [
        ("bencmark - savings", "unknown name 'bencmark' (did you mean 'benchmark'?)"),
        ("savings * sharing_rat", "unknown name 'sharing_rat' (did you mean 'sharing_rate'?)"),
        ("maxx(savings, 0)", "unknown function 'maxx' (did you mean 'max'?)"),
        ('lookpu(terms, track, "rate")', "unknown function 'lookpu' (did you mean 'lookup'?)"),
        ('lookup(terms, track, "rat")', "the table has no column 'rat' (did you mean 'rate'?)"),
    ],
)
def test_a_typo_is_answered_with_the_name_meant(source, suggestion):
    assert suggestion in problem_of(source).message


def test_an_unknown_function_lists_the_functions_there_are():
    message = problem_of("pow(savings, 2)").message

    assert message == (
        "unknown function 'pow'; the functions are: abs, bands, clamp, count, date, given, "
        "interpolate, lookup, max, min, round, sum"
    )


def test_a_name_far_from_any_other_gets_no_suggestion():
    assert problem_of("zzzz + savings").message == "unknown name 'zzzz'"


def test_a_function_used_as_a_name_says_how_to_call_it():
    message = problem_of("savings + round").message

    assert message == "'round' is a function: call it as round(x, places[, mode])"


def test_a_name_called_as_a_function_is_refused_at_the_name():
    problem = problem_of("1 + savings(2)")

    assert problem.message == "'savings' is not a function"
    assert problem.line_column == (1, 5)


def test_an_unknown_override_at_evaluation_suggests_the_parameter_meant():
    version, _ = check_contract(_contract_with("benchmark * base_rate"))

    with pytest.raises(RuleError) as raised:
        evaluate_contract(version, {"base_rat": "0.1"}, {"benchmark": "1"})

    (problem,) = raised.value.problems
    assert problem.message == "unknown parameter 'base_rat' (did you mean 'base_rate'?)"


def test_an_unknown_input_at_evaluation_suggests_the_input_meant():
    version, _ = check_contract(_contract_with("benchmark * base_rate"))

    with pytest.raises(RuleError) as raised:
        evaluate_contract(version, {}, {"benchmark": "1", "benchmarc": "1"})

    (problem,) = raised.value.problems
    assert problem.message == "unknown input 'benchmarc' (did you mean 'benchmark'?)"


def test_every_problem_in_the_arguments_of_an_evaluation_is_reported_together():
    version, _ = check_contract(_contract_with("benchmark * base_rate"))

    with pytest.raises(RuleError) as raised:
        evaluate_contract(version, {"base_rat": "0.1"}, {"benchmarc": "1"})

    assert sorted(p.message.split(" (")[0] for p in raised.value.problems) == [
        "missing input 'benchmark'",
        "unknown input 'benchmarc'",
        "unknown parameter 'base_rat'",
    ]


def test_the_trace_lists_a_parameter_read_inside_sum_as_used():
    contract = _contract_with("sum(episodes, spend * base_rate)")
    contract["inputs"] = {
        "episodes": {"type": "rows", "description": "Episodes", "columns": {"spend": "money"}}
    }
    version, problems = check_contract(contract)
    assert problems == ()

    evaluation = evaluate_contract(version, {}, {"episodes": [{"spend": "10"}, {"spend": "30"}]})

    (quantity,) = [q for q in evaluation.trace()["quantities"] if q["name"] == "bad"]
    assert quantity["value"] == "5.00"  # money, to the cent
    assert "base_rate" in quantity["used"]

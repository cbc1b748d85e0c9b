"""The evaluation trace explains every number and hashes to fixed bytes; contracts stay bounded."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.document import read_file, read_text
from contracts.evaluation import evaluate_contract
from contracts.validate import check_contract, load_contract_file
from rules.canonical import canonical_json, content_hash
from rules.errors import RuleError

ROOT = Path(__file__).resolve().parents[2]
MSSP = ROOT / "contracts" / "templates" / "mssp.yaml"
A1037 = json.loads((ROOT / "fixtures" / "mssp" / "aco-a1037-py2018.json").read_text())


@pytest.fixture(scope="module")
def settled():
    version = load_contract_file(MSSP)
    return evaluate_contract(version, A1037["params"], A1037["inputs"], period="PY2018")


def test_the_trace_hash_is_the_sha256_of_the_trace_canonical_json(settled):
    trace = settled.trace()
    assert trace["format"] == "settle.trace/v1"
    assert settled.trace_hash() == content_hash(canonical_json(trace))
    assert settled.result()["trace_hash"] == settled.trace_hash()


def test_a_different_input_gives_a_different_trace_hash(settled):
    version = settled.version
    other = evaluate_contract(
        version, A1037["params"], {**A1037["inputs"], "quality_score": "0.9027"}, period="PY2018"
    )
    assert other.trace_hash() != settled.trace_hash()


def test_each_quantity_records_its_clause_case_values_used_and_parameters_in_force(settled):
    (fsr,) = [q for q in settled.trace()["quantities"] if q["name"] == "final_sharing_rate"]
    assert fsr["clause"] == "definitions.final_sharing_rate.cases.0.then"
    assert fsr["case"] == {"index": 0, "when": 'quality_rule == "score" and quality_standard_met'}
    assert fsr["used"]["quality_score"] == "0.9026"
    assert fsr["parameters"]["quality_rule"] == {
        "value": "score",
        "source": "contract",
        "effective": "2012-01-01",
        "reference": "42 CFR 425.502 (through PY2020)",
    }
    assert fsr["parameters"]["max_sharing_rate"]["source"] == "default"
    assert fsr["value"] == "0.67695"


def test_payments_not_made_are_in_the_trace_with_why(settled):
    assert settled.trace()["payments_not_made"] == [
        {"name": "shared_losses_repayment", "why": "condition not met: shared_losses > 0"}
    ]


def test_the_parameter_value_in_force_is_the_latest_on_or_before_the_period_start():
    version = load_contract_file(MSSP)
    inputs = A1037["inputs"]
    by_year = {
        period: evaluate_contract(version, A1037["params"], inputs, period=period)
        for period in ("PY2020", "PY2021", "PY2023")
    }
    rules = {
        period: next(p.value for p in e.parameters if p.parameter.name == "quality_rule")
        for period, e in by_year.items()
    }
    assert rules == {"PY2020": "score", "PY2021": "standard_met", "PY2023": "sliding_scale"}


def test_a_sum_inside_a_sum_is_refused_as_unbounded_cost():
    raw = read_file(ROOT / "contracts" / "templates" / "bundle.yaml")
    definition = raw["definitions"][0]
    definition["expr"] = "sum(episodes, sum(episodes, actual_spend))"
    definition["type"] = "money"
    _, problems = check_contract(raw)
    assert any("cannot stand inside another sum() or count()" in p.message for p in problems)


def test_a_document_over_two_million_characters_is_refused_before_it_is_parsed():
    with pytest.raises(RuleError, match="the limit is 2,000,000"):
        read_text("x: " + "1" * 2_000_001, name="big.yaml")


def test_more_than_a_thousand_definitions_are_refused():
    raw = read_file(MSSP)
    raw["definitions"] = [
        {"name": f"d{i}", "type": "money", "description": "d", "expr": "0"} for i in range(1001)
    ]
    _, problems = check_contract(raw)
    assert any(p.where.endswith("definitions") and "1000" in p.message for p in problems)


def test_an_error_inside_sum_names_the_row_it_happened_in():
    version = load_contract_file(ROOT / "contracts" / "templates" / "bundle.yaml")
    episodes = [
        {"episode_id": "E1", "ms_drg_code": "470", "benchmark_price": "25000", "actual_spend": "1"},
        {"episode_id": "E2", "ms_drg_code": "999", "benchmark_price": "25000", "actual_spend": "1"},
    ]
    with pytest.raises(
        RuleError, match=r"row 2 of episodes \(episode_id 'E2'\): the table has no row '999'"
    ):
        evaluate_contract(version, {}, {"episodes": episodes, "composite_quality_score": "14"},
                          period="PY2021")  # fmt: skip


def test_a_parameter_with_no_value_in_force_in_a_period_is_caught_at_validation():
    raw = read_file(MSSP)
    raw["parameters"]["sequestration_rate"]["values"][0]["effective"] = "2019-01-01"
    _, problems = check_contract(raw)
    assert [p.message for p in problems if "sequestration_rate" in p.where] == [
        "no value in force on 2018-01-01 (period PY2018); the first takes effect 2019-01-01"
    ]


def test_a_rate_value_may_be_written_as_a_percentage():
    version = load_contract_file(MSSP)
    evaluation = evaluate_contract(
        version, {**A1037["params"], "sequestration_rate": "2%"}, A1037["inputs"], period="PY2018"
    )
    assert evaluation.quantity("shared_savings") == Decimal("7239566.08")


def test_a_bad_override_is_reported_once_without_echoes_in_the_defaults_that_use_it():
    version = load_contract_file(MSSP)
    with pytest.raises(RuleError) as raised:
        evaluate_contract(version, {"track": "4"}, A1037["inputs"], period="PY2018")
    assert [p.where for p in raised.value.problems] == ["contract mssp-template, parameters.track"]
    assert "'4' is not one of" in raised.value.problems[0].message

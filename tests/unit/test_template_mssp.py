"""The MSSP template against CMS's published PY2018 results (docs/cms-methods.md 1.6).

Each row is a real ACO from the MSSP PY2018 public use file. Savings rows must match within
0.00005 x generated savings (the quality score is published to 4 decimals); loss rows within $1.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.evaluation import Evaluation, evaluate_contract
from contracts.validate import load_contract_file
from rules.errors import EvaluationError, RuleError

ROOT = Path(__file__).resolve().parents[2]
MSSP = ROOT / "contracts" / "templates" / "mssp.yaml"
CASES = ROOT / "fixtures" / "mssp" / "py2018-published.jsonl"

# ACO id -> (published MSR, published EarnSaveLoss), from the PY2018 PUF rows in cms-methods 1.6.
PUBLISHED = {
    "A1001": ("0.02", 50_087_988),
    "A1002": ("0.030860861", 5_071_450),
    "A1409": ("0.037645646", 12_118_223),
    "A1083": ("0", 6_605_249),
    "A1037": ("0.02", 7_239_220),
    "A1033": ("0", 15_673_670),
    "A1215": ("0.005", -6_101_212),
    "A2032": ("0", -1_283_929),
    "A1071": ("0.04568034", 0),
    "A1021": ("0.0210037", 0),
}


@pytest.fixture(scope="module")
def mssp():
    return load_contract_file(MSSP)


def _cases():
    return {case["id"]: case for case in map(json.loads, CASES.read_text().splitlines())}


def _settle(mssp, aco: str, **changes) -> Evaluation:
    case = _cases()[aco]
    return evaluate_contract(
        mssp, case["params"], {**case["inputs"], **changes}, period=case["period"]
    )


@pytest.mark.parametrize("aco", list(PUBLISHED))
def test_each_published_py2018_row_is_reproduced_within_the_stated_tolerance(mssp, aco):
    published_msr, published_result = PUBLISHED[aco]
    result = _settle(mssp, aco)
    net = result.quantity("net_to_provider")
    generated = abs(result.quantity("generated_savings_losses"))
    # Savings rows: 0.00005 x generated savings (QualScore has 4 decimals); loss rows: $1.
    tolerance = generated * Decimal("0.00005") if published_result > 0 else Decimal(1)
    assert abs(net - published_result) <= tolerance, (aco, net, published_result)
    # The PUF prints the MSR to nine decimals.
    assert result.quantity("minimum_savings_rate").quantize(Decimal("1e-9")) == Decimal(
        published_msr
    ).quantize(Decimal("1e-9"))


def test_a1409_is_held_to_the_performance_payment_limit_of_ten_percent_of_the_benchmark(mssp):
    # PUF A1409: 0.10 x 121,182,225 = 12,118,222.5, published (rounded to the dollar) 12,118,223.
    result = _settle(mssp, "A1409")
    assert result.quantity("shared_savings_before_limit") > result.quantity(
        "performance_payment_cap"
    )
    assert result.quantity("shared_savings") == Decimal("12118222.50")


def test_the_variable_msr_interpolates_within_its_band_of_assigned_beneficiaries(mssp):
    # cms-methods 1.2: N = 9,139 gives 3.1% - 139/999 x 0.1% = 3.0860861% (PUF 0.030860861).
    result = _settle(mssp, "A1002")
    expected = Decimal("0.031") - Decimal(139) / Decimal(999) * Decimal("0.001")
    assert abs(result.quantity("minimum_savings_rate") - expected) < Decimal("1e-30")


def test_a_one_sided_aco_with_losses_owes_nothing(mssp):
    # PUF A1071: Track 1, savings rate -11.9%: one-sided, EarnSaveLoss 0.
    result = _settle(mssp, "A1071")
    assert result.quantity("savings") < 0
    assert result.quantity("shared_losses") == 0
    assert result.payments == ()


def test_savings_below_the_msr_earn_nothing(mssp):
    # PUF A1021: savings rate -0.08% is inside the 2.10037% corridor: GenSaveLoss 0.
    result = _settle(mssp, "A1021")
    assert result.quantity("generated_savings_losses") == 0
    assert result.quantity("net_to_provider") == 0


def test_track_3_losses_are_shared_at_the_forty_percent_floor_less_the_disaster_adjustment(mssp):
    # PUF A1215: 1 - 0.6663 = 0.3337 is below the 40% floor; 15,259,669 x 0.40 - 2,655.
    result = _settle(mssp, "A1215")
    assert result.quantity("shared_loss_rate") == Decimal("0.4")
    assert result.quantity("shared_losses") == Decimal("6101212.60")
    (repayment,) = result.payments
    assert (repayment.payer, repayment.payee) == ("provider", "payer")
    assert repayment.amount == Decimal("6101212.60")


def test_an_aco_that_misses_the_quality_standard_owes_losses_at_the_track_maximum(mssp):
    # cms-methods 1.5: a Track 3 ACO that fails the quality standard has FSR 0 and owes at 75%.
    result = _settle(mssp, "A2032", quality_standard_met=False)
    assert result.quantity("final_sharing_rate") == 0
    assert result.quantity("shared_loss_rate") == Decimal("0.75")


def test_a_track_default_can_be_overridden_by_a_parameter(mssp):
    case = _cases()["A1037"]
    result = evaluate_contract(
        mssp, {**case["params"], "max_sharing_rate": "0.6"}, case["inputs"], period="PY2018"
    )
    assert result.quantity("final_sharing_rate") == Decimal("0.6") * Decimal("0.9026")


def test_losses_are_capped_at_the_loss_sharing_limit(mssp):
    # Track 3, loss limit 15% of the benchmark: a 50% loss is capped at 0.15 x B.
    result = evaluate_contract(
        mssp,
        {"track": "3", "msr": "0"},
        {
            "benchmark": "1000000",
            "expenditure": "1500000",
            "assigned_beneficiaries": 6000,
            "quality_score": "0.9",
        },
        period="PY2018",
    )
    assert result.quantity("shared_losses") == Decimal("150000.00")


def test_a_revenue_based_loss_limit_applies_when_it_is_the_lesser(mssp):
    # BASIC-E: 8% of participant revenue (8% x 400,000 = 32,000), capped at 4% of B (40,000).
    result = evaluate_contract(
        mssp,
        {"track": "BASIC-E", "msr": "0"},
        {
            "benchmark": "1000000",
            "expenditure": "1500000",
            "assigned_beneficiaries": 6000,
            "quality_score": "0.9",
            "participant_revenue": "400000",
        },
        period="PY2019",
    )
    assert result.quantity("loss_sharing_cap") == Decimal("32000.00")
    assert result.quantity("shared_losses") == Decimal("32000.00")


def test_under_the_table_floor_the_given_msr_is_required(mssp):
    case = _cases()["A1071"]
    inputs = {k: v for k, v in case["inputs"].items() if k != "minimum_savings_rate_given"}
    with pytest.raises(EvaluationError) as raised:
        evaluate_contract(mssp, case["params"], inputs, period="PY2018")
    message = str(raised.value)
    assert "definitions.minimum_savings_rate.cases.0.then" in message
    assert "minimum_savings_rate_given" in message


def test_the_json_result_carries_amounts_as_exact_decimal_strings(mssp):
    result = _settle(mssp, "A1037").result()
    assert result["quantities"]["savings_rate"] == "0.07117479179221014834343782736108616"
    assert result["payments"] == [
        {
            "name": "shared_savings_payment",
            "from": "payer:cms:mssp",
            "to": "provider:aco",
            "amount": "7239566.08",
            "currency": "USD",
            "memo": "MSSP shared savings payment",
        }
    ]


@pytest.mark.parametrize(("agreement_year", "limit"), [("1", "50000.00"), ("2", "75000.00"),
                                                       ("3", "100000.00")])  # fmt: skip
def test_the_track_2_loss_limit_rises_with_the_year_of_the_agreement_period(
    mssp, agreement_year, limit
):
    # cms-methods 1.4: Track 2 loss sharing limit 5% / 7.5% / 10% of B in PY1 / PY2 / PY3.
    result = evaluate_contract(
        mssp,
        {"track": "2", "msr": "0", "agreement_year": agreement_year},
        {
            "benchmark": "1000000",
            "expenditure": "1500000",
            "assigned_beneficiaries": 6000,
            "quality_score": "0.9",
        },
        period="PY2018",
    )
    assert result.quantity("shared_losses") == Decimal(limit)


@pytest.mark.parametrize(
    ("period", "final_sharing_rate"),
    [
        # PY2021-2022 (42 CFR 425.512(a)(4)): no alternative standard yet: nothing is earned.
        ("PY2022", "0"),
        # PY2023+ sliding scale: score 0.6 against a 40th percentile of 0.8: 75% x 0.75.
        ("PY2023", "0.5625"),
    ],
)
def test_the_alternative_quality_standard_scales_the_sharing_rate_from_py2023_only(
    mssp, period, final_sharing_rate
):
    result = evaluate_contract(
        mssp,
        {"track": "ENHANCED", "msr": "0.02"},
        {
            "benchmark": "1000000",
            "expenditure": "900000",
            "assigned_beneficiaries": 6000,
            "quality_score": "0.6",
            "quality_standard_met": False,
            "quality_alternative_standard_met": True,
            "quality_40th_percentile": "0.8",
        },
        period=period,
    )
    assert result.quantity("final_sharing_rate") == Decimal(final_sharing_rate)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quality_score": "1.5"}, "inputs.quality_score: 1.5 is above its maximum 1"),
        ({"benchmark": "-5"}, "inputs.benchmark: -5 is below its minimum 0"),
        ({"assigned_beneficiaries": -3}, "a count is a whole number, zero or more"),
    ],
)
def test_inputs_outside_their_declared_range_are_refused(mssp, changes, message):
    with pytest.raises(RuleError, match=message):
        _settle(mssp, "A1037", **changes)

"""The ACO REACH style capitation template (contracts/templates/capitation.yaml), worked by hand.

Unless a test says otherwise the ACO has a benchmark of $1,000 PMPM x 10,000 member months x risk
score 1 = $10,000,000, no capitation and a total quality score of 0 (nothing of the withhold earned
back), in PY2025. Its performance benchmark is then 10,000,000 x (1 - 3.5% - 2%) = 9,450,000 under
Global and 10,000,000 x (1 - 0% - 2%) = 9,800,000 under Professional. Every expected number is
worked by hand.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.evaluation import Evaluation, evaluate_contract
from contracts.model import ContractVersion
from contracts.validate import load_contract_file

TEMPLATE = Path(__file__).resolve().parents[2] / "contracts" / "templates" / "capitation.yaml"


@functools.cache
def _capitation() -> ContractVersion:
    return load_contract_file(TEMPLATE)


def _settle(
    risk_arrangement: str,
    fee_for_service_expenditure: str,
    *,
    period: str = "PY2025",
    benchmark_pmpm: str = "1000",
    capitation_pmpm: str = "0",
    member_months: int = 10_000,
    risk_score: str = "1",
    total_quality_score: str = "0",
) -> Evaluation:
    return evaluate_contract(
        _capitation(),
        {"risk_arrangement": risk_arrangement},
        {
            "benchmark_pmpm": benchmark_pmpm,
            "capitation_pmpm": capitation_pmpm,
            "member_months": member_months,
            "risk_score": risk_score,
            "fee_for_service_expenditure": fee_for_service_expenditure,
            "total_quality_score": total_quality_score,
        },
        period=period,
    )


def _paid(evaluation: Evaluation) -> dict[str, tuple[str, str, Decimal]]:
    return {p.name: (p.payer, p.payee, p.amount) for p in evaluation.payments}


def test_the_template_validates_with_its_performance_years() -> None:
    version = _capitation()

    assert [p.id for p in version.contract.periods] == ["PY2024", "PY2025"]
    assert version.content_hash


def test_cms_methods_3_1_a_global_aco_saving_30_percent_keeps_27_5_percent() -> None:
    """The REACH worked example of cms-methods 3.1: Global with s = 30% keeps
    25% x 100% + 5% x 50% = 27.5% of B.

    Performance benchmark 9,450,000; spending 9,450,000 x 0.70 = 6,615,000, so gross savings are
    2,835,000 and s = 30%. Shared savings 0.275 x 9,450,000 = 2,598,750.
    """
    evaluation = _settle("global", "6615000")

    assert evaluation.quantity("performance_benchmark") == Decimal("9450000")
    assert evaluation.quantity("gross_savings") == Decimal("2835000")
    assert evaluation.quantity("savings_rate") == Decimal("0.30")
    assert evaluation.quantity("kept_share") == Decimal("0.275")
    assert evaluation.quantity("shared_savings") == Decimal("2598750")
    assert _paid(evaluation)["shared_savings_payment"] == (
        "payer",
        "provider",
        Decimal("2598750.00"),
    )


def test_cms_methods_3_1_a_professional_aco_saving_12_percent_keeps_4_55_percent() -> None:
    """The REACH worked example of cms-methods 3.1: Professional with s = 12% keeps
    5% x 50% + 5% x 35% + 2% x 15% = 4.55% of B.

    Performance benchmark 9,800,000; spending 9,800,000 x 0.88 = 8,624,000, so gross savings are
    1,176,000 and s = 12%. Shared savings 0.0455 x 9,800,000 = 445,900.
    """
    evaluation = _settle("professional", "8624000")

    assert evaluation.quantity("performance_benchmark") == Decimal("9800000")
    assert evaluation.quantity("savings_rate") == Decimal("0.12")
    assert evaluation.quantity("kept_share") == Decimal("0.0455")
    assert evaluation.quantity("shared_savings") == Decimal("445900")
    assert _paid(evaluation)["shared_savings_payment"] == (
        "payer",
        "provider",
        Decimal("445900.00"),
    )


def test_a_global_aco_losing_30_percent_owes_27_5_percent_of_the_benchmark() -> None:
    """The mirror of the Global example: spending 9,450,000 x 1.30 = 12,285,000, s = -30%,
    shared losses 0.275 x 9,450,000 = 2,598,750 owed by the ACO."""
    evaluation = _settle("global", "12285000")

    assert evaluation.quantity("savings_rate") == Decimal("-0.30")
    assert evaluation.quantity("kept_share") == Decimal("-0.275")
    assert evaluation.quantity("shared_savings") == Decimal("0")
    assert evaluation.quantity("shared_losses") == Decimal("2598750")
    assert _paid(evaluation)["shared_losses_repayment"] == (
        "provider",
        "payer",
        Decimal("2598750.00"),
    )
    assert "shared_savings_payment" not in _paid(evaluation)


def test_a_professional_aco_losing_12_percent_owes_4_55_percent_of_the_benchmark() -> None:
    """The mirror of the Professional example: spending 9,800,000 x 1.12 = 10,976,000, s = -12%,
    shared losses 0.0455 x 9,800,000 = 445,900 owed by the ACO."""
    evaluation = _settle("professional", "10976000")

    assert evaluation.quantity("savings_rate") == Decimal("-0.12")
    assert evaluation.quantity("shared_losses") == Decimal("445900")
    assert _paid(evaluation)["shared_losses_repayment"] == (
        "provider",
        "payer",
        Decimal("445900.00"),
    )


def test_savings_past_the_last_professional_corridor_keep_5_percent_of_the_excess() -> None:
    """Professional with s = 20%: 5% x 50% + 5% x 35% + 5% x 15% + 5% x 5% = 5.25% of B.
    Spending 9,800,000 x 0.80 = 7,840,000; shared savings 0.0525 x 9,800,000 = 514,500."""
    evaluation = _settle("professional", "7840000")

    assert evaluation.quantity("kept_share") == Decimal("0.0525")
    assert evaluation.quantity("shared_savings") == Decimal("514500")


def test_the_earned_back_withhold_enters_the_benchmark_before_the_corridors() -> None:
    """cms-methods 3.1: reconciliation benchmark = B x (1 - discount) - withhold + earned back.
    Withhold 0.02 x 10,000,000 = 200,000; a total quality score of 0.85 earns back
    0.85 x 200,000 = 170,000, so the performance benchmark is 10,000,000 - 200,000 + 170,000 =
    9,970,000. Spending 9,800,000 saves 170,000 (s = 1.7%), and a Professional ACO keeps 50% of
    it in the first corridor: 85,000.00."""
    evaluation = _settle("professional", "9800000", total_quality_score="0.85")

    assert evaluation.quantity("quality_withhold") == Decimal("200000")
    assert evaluation.quantity("quality_earn_back") == Decimal("170000")
    assert evaluation.quantity("performance_benchmark") == Decimal("9970000")
    assert _paid(evaluation) == {
        "shared_savings_payment": ("payer", "provider", Decimal("85000.00"))
    }


def test_a_quality_score_of_zero_earns_nothing_back() -> None:
    evaluation = _settle("professional", "9800000", total_quality_score="0")

    assert evaluation.quantity("quality_earn_back") == Decimal("0")
    assert evaluation.payments == ()


@pytest.mark.parametrize(
    ("risk_arrangement", "period", "discount", "performance_benchmark"),
    [
        # 10,000,000 x (1 - 0.035 - 0.02) = 9,450,000
        ("global", "PY2025", "0.035", "9450000"),
        # 10,000,000 x (1 - 0.03 - 0.02) = 9,500,000
        ("global", "PY2024", "0.03", "9500000"),
        # 10,000,000 x (1 - 0 - 0.02) = 9,800,000
        ("professional", "PY2025", "0", "9800000"),
        ("professional", "PY2024", "0", "9800000"),
    ],
)
def test_the_discount_depends_on_the_risk_arrangement_and_the_performance_year(
    risk_arrangement: str, period: str, discount: str, performance_benchmark: str
) -> None:
    evaluation = _settle(risk_arrangement, "9000000", period=period)

    discount_parameter = next(p for p in evaluation.parameters if p.parameter.name == "discount")
    assert discount_parameter.value == Decimal(discount)
    assert discount_parameter.source == "default"
    assert evaluation.quantity("discount_amount") == Decimal(discount) * Decimal("10000000")
    assert evaluation.quantity("performance_benchmark") == Decimal(performance_benchmark)


def test_capitation_is_the_pmpm_times_member_months_times_the_risk_score() -> None:
    """250.00 x 12,000 member months x 1.05 = 3,150,000.00, paid to the ACO. The benchmark is
    1,000 x 12,000 x 1.05 = 12,600,000; performance benchmark 12,600,000 x 0.98 = 12,348,000.
    Capitation counts as spending: 8,000,000 + 3,150,000 = 11,150,000, savings 1,198,000."""
    evaluation = _settle(
        "professional",
        "8000000",
        capitation_pmpm="250.00",
        member_months=12_000,
        risk_score="1.05",
    )

    assert evaluation.quantity("capitation") == Decimal("3150000")
    assert evaluation.quantity("benchmark") == Decimal("12600000")
    assert evaluation.quantity("total_cost_of_care") == Decimal("11150000")
    assert evaluation.quantity("gross_savings") == Decimal("1198000")
    assert _paid(evaluation)["capitation_payment"] == ("payer", "provider", Decimal("3150000.00"))


def test_for_a_global_aco_inside_the_first_corridor_capitation_is_an_advance_on_savings() -> None:
    """Fee-for-service spending 8,000,000 against 9,450,000. Without capitation the ACO gets
    savings 1,450,000 (s = 15.3%, all kept). With 50 PMPM (500,000) of capitation its savings
    fall to 950,000: 500,000 + 950,000 = 1,450,000."""
    without = _settle("global", "8000000")
    with_capitation = _settle("global", "8000000", capitation_pmpm="50")

    assert without.quantity("shared_savings") == Decimal("1450000")
    assert with_capitation.quantity("shared_savings") == Decimal("950000")
    assert without.quantity("net_to_provider") == Decimal("1450000")
    assert with_capitation.quantity("net_to_provider") == Decimal("1450000")


@settings(max_examples=60, deadline=None)
@given(
    risk_arrangement=st.sampled_from(["global", "professional"]),
    period=st.sampled_from(["PY2024", "PY2025"]),
    fee_for_service=st.decimals(min_value=0, max_value=25_000_000, places=2),
    capitation_pmpm=st.decimals(min_value=0, max_value=900, places=2),
    risk_score=st.decimals(min_value="0.5", max_value="2.5", places=4),
    total_quality_score=st.decimals(min_value=0, max_value=1, places=3),
)
def test_payments_balance_with_the_net_and_are_never_negative(
    risk_arrangement: str,
    period: str,
    fee_for_service: Decimal,
    capitation_pmpm: Decimal,
    risk_score: Decimal,
    total_quality_score: Decimal,
) -> None:
    evaluation = _settle(
        risk_arrangement,
        str(fee_for_service),
        period=period,
        capitation_pmpm=str(capitation_pmpm),
        risk_score=str(risk_score),
        total_quality_score=str(total_quality_score),
    )

    signed = Decimal(0)
    for payment in evaluation.payments:
        assert isinstance(payment.amount, Decimal)
        assert payment.amount > 0
        assert payment.amount == payment.amount.quantize(Decimal("0.01"))
        direction = (payment.payer, payment.payee)
        assert direction in {("payer", "provider"), ("provider", "payer")}
        signed += payment.amount if direction == ("payer", "provider") else -payment.amount
    names = {p.name for p in evaluation.payments}
    assert not {"shared_savings_payment", "shared_losses_repayment"} <= names
    assert signed == evaluation.quantity("net_to_provider")
    assert abs(evaluation.quantity("kept_share")) <= abs(evaluation.quantity("savings_rate"))

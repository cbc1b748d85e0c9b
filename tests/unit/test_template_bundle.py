"""The episode-based bundle template (contracts/templates/bundle.yaml), worked by hand.

Every expected number is worked out by hand in the test, from the template's parameters:
PY2020 high episode spending caps MS-DRG 469 $62,000 and 470 $38,000 (PY2021: $63,500, $39,000);
quality categories below acceptable (< 5.0) 3.0%/3.0% and no payment, acceptable (5.0 to < 13.2)
3.0%/2.0%, good (13.2 to 15.0) 2.0%/1.0%, excellent (> 15.0) 1.5%/0.5% (payment/repayment
discount); stop-gain and stop-loss 20% of the target amount.
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

TEMPLATE = Path(__file__).resolve().parents[2] / "contracts" / "templates" / "bundle.yaml"


@functools.cache
def _bundle() -> ContractVersion:
    return load_contract_file(TEMPLATE)


def _episode(
    episode_id: str, ms_drg_code: str, benchmark_price: str, actual_spend: str
) -> dict[str, str]:
    return {
        "episode_id": episode_id,
        "ms_drg_code": ms_drg_code,
        "benchmark_price": benchmark_price,
        "actual_spend": actual_spend,
    }


def _reconcile(
    episodes: list[dict[str, str]],
    composite_quality_score: str,
    *,
    period: str = "PY2020",
) -> Evaluation:
    return evaluate_contract(
        _bundle(),
        {},
        {"episodes": episodes, "composite_quality_score": composite_quality_score},
        period=period,
    )


def _paid(evaluation: Evaluation) -> dict[str, tuple[str, str, Decimal]]:
    return {p.name: (p.payer, p.payee, p.amount) for p in evaluation.payments}


# Benchmark prices 117,000, spending 101,000 (no cap binds).
UNDER_TARGET = [
    _episode("E1", "470", "30000", "24000"),
    _episode("E2", "470", "32000", "27000"),
    _episode("E3", "469", "55000", "50000"),
]
# Benchmark prices 80,000, spending 85,000 (no cap binds).
OVER_TARGET = [_episode("E1", "470", "30000", "33000"), _episode("E2", "469", "50000", "52000")]
# Benchmark prices 95,000; E1 (MS-DRG 469) spent 95,000, above its cap.
WITH_A_HIGH_COST_EPISODE = [
    _episode("E1", "469", "60000", "95000"),
    _episode("E2", "470", "35000", "25000"),
]


def test_the_template_validates_with_two_performance_years() -> None:
    version = _bundle()

    assert [p.id for p in version.contract.periods] == ["PY2020", "PY2021"]
    assert version.content_hash


def test_spending_below_the_target_amount_is_paid_to_the_participant() -> None:
    """Acceptable quality (10.0): payment discount 3%.

    Benchmark prices 30,000 + 32,000 + 55,000 = 117,000; target amount 117,000 x 0.97 = 113,490.
    Spending 24,000 + 27,000 + 50,000 = 101,000 (no cap binds).
    Reconciliation 113,490 - 101,000 = 12,490, under the stop-gain 0.20 x 113,490 = 22,698.
    """
    evaluation = _reconcile(UNDER_TARGET, "10.0")

    assert evaluation.quantity("quality_category") == "acceptable"
    assert evaluation.quantity("target_amount") == Decimal("113490")
    assert evaluation.quantity("capped_spend") == Decimal("101000")
    assert evaluation.quantity("reconciliation_amount") == Decimal("12490")
    assert evaluation.quantity("stop_gain_limit") == Decimal("22698")
    assert evaluation.quantity("net_to_provider") == Decimal("12490")
    assert _paid(evaluation) == {
        "reconciliation_payment": ("payer", "provider", Decimal("12490.00"))
    }


def test_spending_above_the_target_amount_is_repaid_at_the_repayment_discount() -> None:
    """Good quality (13.2, the lowest good score): repayment discount 1%.

    Benchmark prices 30,000 + 50,000 = 80,000; target amount 80,000 x 0.99 = 79,200.
    Spending 33,000 + 52,000 = 85,000. Reconciliation 79,200 - 85,000 = -5,800,
    under the stop-loss 0.20 x 79,200 = 15,840: the participant repays 5,800.
    """
    evaluation = _reconcile(OVER_TARGET, "13.2")

    assert evaluation.quantity("quality_category") == "good"
    assert evaluation.quantity("target_amount") == Decimal("79200")
    assert evaluation.quantity("reconciliation_amount") == Decimal("-5800")
    assert evaluation.quantity("stop_loss_limit") == Decimal("15840")
    assert evaluation.quantity("repayment") == Decimal("5800")
    assert evaluation.quantity("net_to_provider") == Decimal("-5800")
    assert _paid(evaluation) == {"repayment": ("provider", "payer", Decimal("5800.00"))}


def test_the_stop_gain_limits_a_payment_to_20_percent_of_the_target_amount() -> None:
    """Excellent quality (16.0): payment discount 1.5%.

    Target amount (40,000 + 40,000) x 0.985 = 78,800; spending 20,000 + 22,000 = 42,000.
    Reconciliation 78,800 - 42,000 = 36,800; stop-gain 0.20 x 78,800 = 15,760 binds.
    """
    evaluation = _reconcile(
        [_episode("E1", "470", "40000", "20000"), _episode("E2", "470", "40000", "22000")],
        "16.0",
    )

    assert evaluation.quantity("quality_category") == "excellent"
    assert evaluation.quantity("reconciliation_amount") == Decimal("36800")
    assert evaluation.quantity("stop_gain_limit") == Decimal("15760")
    assert evaluation.quantity("reconciliation_payment") == Decimal("15760")
    assert _paid(evaluation) == {
        "reconciliation_payment": ("payer", "provider", Decimal("15760.00"))
    }


def test_the_stop_loss_limits_a_repayment_to_20_percent_of_the_target_amount() -> None:
    """Acceptable quality (8.0): repayment discount 2%.

    Target amount (20,000 + 20,000) x 0.98 = 39,200; spending 30,000 + 31,000 = 61,000.
    Reconciliation 39,200 - 61,000 = -21,800; stop-loss 0.20 x 39,200 = 7,840 binds.
    """
    evaluation = _reconcile(
        [_episode("E1", "470", "20000", "30000"), _episode("E2", "470", "20000", "31000")],
        "8.0",
    )

    assert evaluation.quantity("reconciliation_amount") == Decimal("-21800")
    assert evaluation.quantity("stop_loss_limit") == Decimal("7840")
    assert evaluation.quantity("repayment") == Decimal("7840")
    assert _paid(evaluation) == {"repayment": ("provider", "payer", Decimal("7840.00"))}


def test_below_acceptable_quality_gets_no_reconciliation_payment() -> None:
    """Below acceptable (4.9): discount 3%. The episodes of the first savings case give the same
    reconciliation amount, 113,490 - 101,000 = 12,490, but nothing is paid."""
    evaluation = _reconcile(UNDER_TARGET, "4.9")

    assert evaluation.quantity("quality_category") == "below_acceptable"
    assert evaluation.quantity("payment_allowed") is False
    assert evaluation.quantity("reconciliation_amount") == Decimal("12490")
    assert evaluation.quantity("reconciliation_payment") == Decimal("0")
    assert evaluation.payments == ()


def test_below_acceptable_quality_still_repays_at_the_full_3_percent_discount() -> None:
    """Below acceptable (0): repayment discount 3%. Target amount 80,000 x 0.97 = 77,600;
    spending 85,000; repayment 85,000 - 77,600 = 7,400 (stop-loss 15,520 does not bind)."""
    evaluation = _reconcile(OVER_TARGET, "0")

    assert evaluation.quantity("target_amount") == Decimal("77600")
    assert _paid(evaluation) == {"repayment": ("provider", "payer", Decimal("7400.00"))}


def test_a_high_cost_episode_counts_only_up_to_the_cap_of_its_ms_drg() -> None:
    """PY2021, good quality (14.0): discounts 2% / 1%.

    E1 (MS-DRG 469) spent 95,000, capped at 63,500; E2 (470) spent 25,000, under its cap.
    Capped spending 63,500 + 25,000 = 88,500 (uncapped it would be 120,000, a repayment).
    Target amount (60,000 + 35,000) x 0.98 = 93,100; payment 93,100 - 88,500 = 4,600.
    """
    evaluation = _reconcile(WITH_A_HIGH_COST_EPISODE, "14.0", period="PY2021")

    assert evaluation.quantity("episode_count") == Decimal("2")
    assert evaluation.quantity("capped_episode_count") == Decimal("1")
    assert evaluation.quantity("capped_spend") == Decimal("88500")
    assert evaluation.quantity("target_amount") == Decimal("93100")
    assert _paid(evaluation) == {
        "reconciliation_payment": ("payer", "provider", Decimal("4600.00"))
    }


def test_the_high_cost_cap_is_the_one_in_force_in_the_period() -> None:
    """The same episodes in PY2020: E1 is capped at 62,000, so capped spending is 87,000 and
    the payment 93,100 - 87,000 = 6,100."""
    evaluation = _reconcile(WITH_A_HIGH_COST_EPISODE, "14.0", period="PY2020")

    assert evaluation.quantity("capped_spend") == Decimal("87000")
    assert evaluation.quantity("reconciliation_payment") == Decimal("6100")


def test_spending_between_the_payment_and_repayment_target_amounts_owes_nothing() -> None:
    """Acceptable quality (6.0): target amount 50,000 x 0.97 = 48,500 for a payment and
    50,000 x 0.98 = 49,000 for a repayment; spending 48,750 lies between, so neither is owed."""
    evaluation = _reconcile([_episode("E1", "469", "50000", "48750")], "6.0")

    assert evaluation.quantity("target_amount_for_payment") == Decimal("48500")
    assert evaluation.quantity("target_amount_for_repayment") == Decimal("49000")
    assert evaluation.quantity("reconciliation_amount") == Decimal("0")
    assert evaluation.payments == ()


@pytest.mark.parametrize(
    ("score", "category"),
    [
        ("4.99", "below_acceptable"),
        ("5.0", "acceptable"),
        ("13.19", "acceptable"),
        ("13.2", "good"),
        ("15.0", "good"),
        ("15.01", "excellent"),
    ],
)
def test_the_quality_category_follows_the_cjr_thresholds(score: str, category: str) -> None:
    evaluation = _reconcile([_episode("E1", "470", "30000", "30000")], score)

    assert evaluation.quantity("quality_category") == category


_money = st.decimals(min_value=1000, max_value=120000, places=2).map(str)
_episodes = st.lists(
    st.tuples(st.sampled_from(["469", "470", "521", "522"]), _money, _money),
    min_size=0,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(
    episodes=_episodes,
    score=st.decimals(min_value=0, max_value=20, places=1).map(str),
    period=st.sampled_from(["PY2020", "PY2021"]),
)
def test_payments_balance_with_the_net_and_are_never_negative(
    episodes: list[tuple[str, str, str]], score: str, period: str
) -> None:
    evaluation = _reconcile(
        [_episode(f"E{i}", drg, price, spend) for i, (drg, price, spend) in enumerate(episodes)],
        score,
        period=period,
    )

    signed = Decimal(0)
    for payment in evaluation.payments:
        assert isinstance(payment.amount, Decimal)
        assert payment.amount > 0
        assert payment.amount == payment.amount.quantize(Decimal("0.01"))
        direction = (payment.payer, payment.payee)
        assert direction in {("payer", "provider"), ("provider", "payer")}
        signed += payment.amount if direction == ("payer", "provider") else -payment.amount
    assert len(evaluation.payments) <= 1
    assert signed == evaluation.quantity("net_to_provider")
    assert evaluation.quantity("reconciliation_payment") <= evaluation.quantity("stop_gain_limit")
    assert evaluation.quantity("repayment") <= evaluation.quantity("stop_loss_limit")

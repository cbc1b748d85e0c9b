"""Per-episode spend, grouped rows, risk scores weighted by member months and quality score
lookups, as a contract declares them, computed in SQLite and PostgreSQL from loaded events."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from contracts.model import Aggregate
from contracts.validate import load_contract_file
from outcomes.aggregates import Window, anchor_lines, compute, input_value
from outcomes.episodes import EpisodeRule, build_episodes
from outcomes.store import EventStore
from rules.errors import RuleError
from rules.values import RowSet


def header(contract_id: str, year: int) -> str:
    """A contract's parties, one year's period and its rounding, for the tests' contracts."""
    return f"""\
settle: settle.contract/v1
id: {contract_id}
title: Aggregates computed from events
description: The inputs a contract computes from outcome events.
currency: USD
parties:
  payer: {{name: Payer, account: "payer:p"}}
  provider: {{name: Hospital, account: "provider:h"}}
periods:
  - {{id: Y{year}, start: "{year}-01-01", end: "{year}-12-31"}}
rounding:
  mode: half_even
  payments: {{places: 2, mode: half_even}}
"""


CONTRACT = (
    header("events-contract", 2020)
    + """\
parameters:
  episode_cap:
    type: money
    description: High episode spending cap
    values:
      - {value: "30000.00", effective: "2020-01-01", reference: "test"}
inputs:
  episodes:
    type: rows
    description: Each episode ending in the year, with its capped spend
    columns: {episode_id: text, ms_drg_code: text, actual_spend: money}
    aggregate:
      events: claim_line
      within: episode
      measure: sum
      field: paid_amount
      group_by: [episode_id, ms_drg_code]
      value_column: actual_spend
      per_episode_cap: episode_cap
  capped_spend:
    type: money
    description: The episodes' spend, each capped, summed
    aggregate: {events: claim_line, within: episode, measure: sum, field: paid_amount,
                per_episode_cap: episode_cap}
  spend_by_person:
    type: rows
    description: Paid per person in the year
    columns: {patient_id: text, paid: money}
    aggregate: {events: claim_line, measure: sum, field: paid_amount, group_by: [patient_id],
                value_column: paid}
  risk_score:
    type: score
    description: Risk scores weighted by eligible months
    aggregate: {events: risk_score, measure: weighted_average, field: score,
                weight_by: member_months, where: 'model == "CMS-HCC"'}
  readmission_rate:
    type: score
    description: The readmission measure's score
    aggregate: {events: quality_result, measure: value, field: score,
                where: 'measure_id == "readmission"'}
definitions:
  - name: total
    type: money
    description: Capped spend
    expr: sum(episodes, actual_spend)
payments:
  - {name: pay, memo: test, from: payer, to: provider, amount: total}
"""
)

CLAIMS = """\
claim_id,claim_line_number,claim_type,patient_id,claim_start_date,claim_end_date,admission_date,discharge_date,bill_type_code,ms_drg_code,facility_npi,paid_amount
a1,1,institutional,p1,2020-02-03,2020-02-06,2020-02-03,2020-02-06,111,470,1000000001,21000.00
a1,2,institutional,p1,2020-02-03,2020-02-06,,,111,470,1000000001,1500.50
pt,1,professional,p1,2020-03-01,2020-03-01,,,,,,400.25
late,1,professional,p1,2020-05-07,2020-05-07,,,,,,999.00
a2,1,institutional,p2,2020-08-20,2020-08-24,2020-08-20,2020-08-24,111,469,1000000002,52000.00
other,1,professional,p3,2020-02-10,2020-02-10,,,,,,75.00
"""


def load(store: EventStore, folder: Path, name: str, kind: str, text: str) -> None:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    store.load(path, kind)


@pytest.fixture
def loaded(upgraded_engine, tmp_path):
    store = EventStore(upgraded_engine)
    load(store, tmp_path, "claims.csv", "claim_line", CLAIMS)
    rule = EpisodeRule("LEJR", frozenset({"469", "470"}), 90)
    now = dt.datetime.now(dt.UTC)
    episodes = tmp_path / "episodes.csv"
    episodes.write_bytes(build_episodes(rule, anchor_lines(upgraded_engine, rule, now)).csv_bytes())
    store.load(episodes, "episode")
    load(store, tmp_path, "eligibility.csv", "eligibility", """\
        patient_id,payer,plan,enrollment_start_date,enrollment_end_date
        p1,medicare,ffs,2019-06-01,2020-12-31
        p2,medicare,ffs,2020-07-15,2021-03-31
        """)  # fmt: skip
    load(store, tmp_path, "risk.csv", "risk_score", """\
        patient_id,model,period_start,period_end,score
        p1,CMS-HCC,2020-01-01,2020-12-31,1.200
        p2,CMS-HCC,2020-01-01,2020-12-31,0.800
        p2,ESRD,2020-01-01,2020-12-31,5.000
        """)  # fmt: skip
    load(store, tmp_path, "quality.csv", "quality_result", """\
        measure_id,provider_id,period_start,period_end,score
        readmission,h,2020-01-01,2020-12-31,0.1525
        mortality,h,2020-01-01,2020-12-31,0.0300
        """)  # fmt: skip
    contract_file = tmp_path / "contract.yaml"
    contract_file.write_text(CONTRACT)
    version = load_contract_file(contract_file)
    window = Window(dt.date(2020, 1, 1), dt.date(2020, 12, 31), dt.datetime.now(dt.UTC))
    inputs = {i.name: i.aggregate for i in version.contract.inputs}
    parameters = {"episode_cap": Decimal("30000.00")}

    def value(name: str):
        return compute(upgraded_engine, inputs[name], window, parameters)

    return value


def rows(value: RowSet) -> list[dict]:
    return [dict(row) for row in value.rows]


def test_each_episode_sums_its_persons_claims_inside_its_window_capped(loaded):
    # LEJR-a1 (p1), 2020-02-03 to 2020-05-06: 21,000.00 + 1,500.50 + 400.25 = 22,900.75; the
    # claim of 2020-05-07 is the day after, and the claim of p3 another person's.
    # LEJR-a2 (p2), 2020-08-20 to 2020-11-22: 52,000.00, capped at 30,000.00.
    assert rows(loaded("episodes")) == [
        {"episode_id": "LEJR-a1", "ms_drg_code": "470", "actual_spend": Decimal("22900.75")},
        {"episode_id": "LEJR-a2", "ms_drg_code": "469", "actual_spend": Decimal("30000")},
    ]
    assert loaded("capped_spend") == Decimal("52900.75")


def test_grouped_rows_are_one_per_person_in_order(loaded):
    assert rows(loaded("spend_by_person")) == [
        {"patient_id": "p1", "paid": Decimal("23899.75")},
        {"patient_id": "p2", "paid": Decimal("52000")},
        {"patient_id": "p3", "paid": Decimal("75")},
    ]


def test_risk_scores_are_weighted_by_eligible_months_in_the_period(loaded):
    # p1 eligible all 12 months of 2020, p2 from July (6 months); the ESRD score is filtered out.
    # (1.2 x 12 + 0.8 x 6) / 18 = 19.2 / 18, divided to 34 significant digits
    assert str(loaded("risk_score")) == "1.066666666666666666666666666666667"


def test_a_quality_score_is_looked_up_by_its_measure(loaded):
    assert loaded("readmission_rate") == Decimal("0.1525")


def test_the_computed_inputs_are_what_the_contract_takes(loaded):
    assert input_value(loaded("episodes"))[1] == {
        "episode_id": "LEJR-a2", "ms_drg_code": "469", "actual_spend": "30000"}  # fmt: skip


def test_an_episode_ending_next_year_is_reconciled_next_year(upgraded_engine, tmp_path):
    store = EventStore(upgraded_engine)
    load(store, tmp_path, "episodes.csv", "episode", """\
        episode_id,patient_id,window_start,window_end,ms_drg_code
        E1,p1,2020-11-01,2021-01-30,470
        """)  # fmt: skip
    spec = load_contract_file(_contract(tmp_path)).contract.inputs[0].aggregate
    now = dt.datetime.now(dt.UTC)
    in_2020 = compute(upgraded_engine, spec, Window(dt.date(2020, 1, 1), dt.date(2020, 12, 31),
                                                    now), {"episode_cap": Decimal(1)})  # fmt: skip
    in_2021 = compute(upgraded_engine, spec, Window(dt.date(2021, 1, 1), dt.date(2021, 12, 31),
                                                    now), {"episode_cap": Decimal(1)})  # fmt: skip
    assert (len(in_2020), len(in_2021)) == (0, 1)
    assert rows(in_2021)[0]["actual_spend"] == 0  # an episode without claims is still reconciled


def test_a_lookup_that_finds_none_or_several_says_so(upgraded_engine, tmp_path):
    store = EventStore(upgraded_engine)
    version = load_contract_file(_contract(tmp_path))
    lookup = next(i.aggregate for i in version.contract.inputs if i.name == "readmission_rate")
    window = Window(dt.date(2020, 1, 1), dt.date(2020, 12, 31), dt.datetime.now(dt.UTC))
    with pytest.raises(RuleError, match='no quality_result events where measure_id == '
                                        '"readmission" with a score in the period'):  # fmt: skip
        compute(upgraded_engine, lookup, window, {})
    load(store, tmp_path, "q.csv", "quality_result", """\
        measure_id,provider_id,period_start,period_end,score
        readmission,h,2020-01-01,2020-06-30,0.1
        readmission,h,2020-07-01,2020-12-31,0.2
        """)  # fmt: skip
    window = Window(window.start, window.end, dt.datetime.now(dt.UTC))
    with pytest.raises(RuleError, match=r"2 quality_result events .* a value lookup needs "
                                        r"exactly one"):  # fmt: skip
        compute(upgraded_engine, lookup, window, {})


def test_episodes_are_built_from_the_claims_known_at_the_cutoff(upgraded_engine, tmp_path):
    """A replacement that recodes the anchor stay's MS-DRG removes its episode, from the time the
    replacement was learned; built as of before, the episode is there."""
    store = EventStore(upgraded_engine)
    load(store, tmp_path, "claims.csv", "claim_line", CLAIMS)
    between = dt.datetime.now(dt.UTC)
    load(store, tmp_path, "fix.csv", "claim_line", """\
        claim_id,claim_line_number,claim_type,patient_id,claim_start_date,ms_drg_code,paid_amount,claim_status,adjusted_claim_id
        a1r,1,institutional,p1,2020-02-03,066,22500.50,replacement,a1
        """)  # fmt: skip
    rule = EpisodeRule("LEJR", frozenset({"469", "470"}), 90)
    before = build_episodes(rule, anchor_lines(upgraded_engine, rule, between))
    after = build_episodes(rule, anchor_lines(upgraded_engine, rule, dt.datetime.now(dt.UTC)))
    assert [e.episode_id for e in before.episodes] == ["LEJR-a1", "LEJR-a2"]
    assert [e.episode_id for e in after.episodes] == ["LEJR-a2"]


def _contract(folder: Path) -> Path:
    path = folder / "contract.yaml"
    path.write_text(CONTRACT)
    return path


MEMBER_MONTHS = (
    header("member-months", 2018)
    + """\
parameters: {}
inputs:
  member_months:
    type: count
    description: Member months
    aggregate: {events: eligibility, measure: member_months}
  months_by_payer:
    type: rows
    description: Member months per payer
    columns: {payer: text, months: count}
    aggregate: {events: eligibility, measure: member_months, group_by: [payer],
                value_column: months}
definitions:
  - {name: months, type: count, description: Months, expr: member_months}
payments: []
"""
)


def _member_months(engine, folder: Path) -> dict:
    path = folder / "mm.yaml"
    path.write_text(MEMBER_MONTHS)
    inputs = {i.name: i.aggregate for i in load_contract_file(path).contract.inputs}
    window = Window(dt.date(2018, 1, 1), dt.date(2018, 12, 31), dt.datetime.now(dt.UTC))
    return {name: compute(engine, spec, window, {}) for name, spec in inputs.items()}


def test_the_tuva_eligibility_gives_820_member_months_in_2018(upgraded_engine, tmp_path):
    # 820 = distinct (person, payer, plan, month) of the 219 spans inside 2018, counted by hand
    # from fixtures/tuva/eligibility.csv; 100 people.
    tuva = Path(__file__).resolve().parents[2] / "fixtures" / "tuva" / "eligibility.csv"
    EventStore(upgraded_engine).load(tuva, "eligibility")
    counted = _member_months(upgraded_engine, tmp_path)
    assert counted["member_months"] == 820
    assert rows(counted["months_by_payer"]) == [{"payer": "medicare", "months": 820}]


def test_a_month_counts_once_per_person_payer_and_plan(upgraded_engine, tmp_path):
    load(EventStore(upgraded_engine), tmp_path, "eligibility.csv", "eligibility", """\
        patient_id,payer,plan,enrollment_start_date,enrollment_end_date
        p1,medicare,ffs,2018-01-01,2018-01-15
        p1,medicare,ffs,2018-01-16,2018-03-31
        p1,medicaid,state,2018-03-01,2018-04-10
        p2,medicare,ffs,2017-11-01,2018-01-31
        """)  # fmt: skip
    counted = _member_months(upgraded_engine, tmp_path)
    # p1 medicare Jan-Mar (January once, not twice) 3; p1 medicaid Mar-Apr 2; p2 January 1.
    assert counted["member_months"] == 6
    assert rows(counted["months_by_payer"]) == [{"payer": "medicaid", "months": 2},
                                                {"payer": "medicare", "months": 4}]  # fmt: skip


def test_sums_too_large_for_exact_integers_are_refused_not_rounded(upgraded_engine, tmp_path):
    load(EventStore(upgraded_engine), tmp_path, "claims.csv", "claim_line", """\
        claim_id,claim_line_number,claim_type,patient_id,claim_start_date,paid_amount,service_unit_quantity
        c1,1,professional,p1,2020-01-05,900000000000.00,2000
        c2,1,professional,p1,2020-01-06,1.00,3
        """)  # fmt: skip
    spec = Aggregate("claim_line", "weighted_average", "paid_amount", None, (), None,
                     "service_unit_quantity", None, None)  # fmt: skip
    window = Window(dt.date(2020, 1, 1), dt.date(2020, 12, 31), dt.datetime.now(dt.UTC))
    with pytest.raises(RuleError, match="too large to compute exactly in 64-bit integers"):
        compute(upgraded_engine, spec, window, {})


def test_an_episode_in_two_visible_batches_is_refused_not_counted_twice(upgraded_engine, tmp_path):
    store = EventStore(upgraded_engine)
    load(store, tmp_path, "claims.csv", "claim_line", CLAIMS)
    for name, provider in (("first.csv", "1"), ("second.csv", "2")):  # the same id, other content
        load(store, tmp_path, name, "episode", f"""\
            episode_id,patient_id,window_start,window_end,provider_id
            E1,p1,2020-02-03,2020-05-06,{provider}
            """)  # fmt: skip
    spec = Aggregate("claim_line", "sum", "paid_amount", None, (), None, None, None, None,
                     "episode")  # fmt: skip
    window = Window(dt.date(2020, 1, 1), dt.date(2020, 12, 31), dt.datetime.now(dt.UTC))
    with pytest.raises(RuleError, match=r"episodes in more than one visible batch: E1 \(2 "
                                        r"batches\); retract all but one"):  # fmt: skip
        compute(upgraded_engine, spec, window, {})


def test_rebuilding_a_rules_episodes_supersedes_its_batch_or_does_nothing(
    upgraded_engine, tmp_path
):
    store = EventStore(upgraded_engine)
    load(store, tmp_path, "claims.csv", "claim_line", CLAIMS)
    rule = EpisodeRule("LEJR", frozenset({"469", "470"}), 90)

    def rebuild():
        now = dt.datetime.now(dt.UTC)
        return store.rebuild_episodes(build_episodes(rule, anchor_lines(upgraded_engine, rule,
                                                                        now)), now)  # fmt: skip

    first = rebuild()
    assert first.loaded is not None and first.loaded.rows == 2 and not first.retracted
    assert rebuild().unchanged == first.loaded  # the same episodes: nothing loaded
    load(store, tmp_path, "void.csv", "claim_line", """\
        claim_id,claim_line_number,claim_type,patient_id,claim_start_date,paid_amount,claim_status,adjusted_claim_id
        a2v,1,institutional,p2,2020-08-20,0,void,a2
        """)  # fmt: skip
    second = rebuild()
    assert second.loaded is not None and second.loaded.rows == 1
    assert [b.batch_id for b in second.retracted] == [first.loaded.batch_id]
    assert "superseded by episodes batch" in second.retracted[0].retraction_reason
    assert list(store.live_episodes("LEJR")) == [second.loaded.batch_id]

"""Episodes built from claims, clause by clause of the rule "an inpatient stay with MS-DRG 469 or
470, to 90 days after discharge" (CJR lower-extremity joint replacement, 42 CFR 510.210)."""

from __future__ import annotations

import datetime as dt

import pytest

from outcomes.episodes import EpisodeRule, EpisodeRuleError, build_episodes

LEJR = EpisodeRule("LEJR", frozenset({"469", "470"}), 90)


def stay(claim_id, person, admitted, discharged, drg="470", *, bill_type="111", line=1, **more):
    return {"claim_id": claim_id, "claim_line_number": line, "claim_type": "institutional",
            "patient_id": person, "bill_type_code": bill_type, "ms_drg_code": drg,
            "admission_date": dt.date.fromisoformat(admitted) if admitted else None,
            "discharge_date": dt.date.fromisoformat(discharged) if discharged else None,
            "claim_start_date": dt.date.fromisoformat(admitted or discharged),
            "claim_end_date": dt.date.fromisoformat(discharged or admitted),
            "facility_npi": "1000000001", "billing_npi": None, **more}  # fmt: skip


def test_an_episode_runs_from_admission_to_ninety_days_after_discharge():
    (episode,) = build_episodes(LEJR, [stay("c1", "p1", "2020-03-02", "2020-03-05")]).episodes
    assert (episode.window_start, episode.window_end) == (dt.date(2020, 3, 2), dt.date(2020, 6, 3))
    assert episode.episode_id == "LEJR-c1"
    assert (episode.patient_id, episode.anchor_claim_id, episode.ms_drg_code) == ("p1", "c1", "470")
    assert episode.provider_id == "1000000001"


def test_only_inpatient_stays_with_the_rules_ms_drgs_anchor_an_episode():
    lines = [
        stay("c1", "p1", "2020-03-02", "2020-03-05", drg="291"),  # heart failure: not LEJR
        stay("c2", "p2", "2020-03-02", "2020-03-05", bill_type="131"),  # outpatient bill type
        {**stay("c3", "p3", "2020-03-02", "2020-03-05"), "claim_type": "professional"},
        stay("c4", "p4", "2020-03-02", "2020-03-05", drg="469"),
    ]
    assert [e.episode_id for e in build_episodes(LEJR, lines).episodes] == ["LEJR-c4"]


def test_a_stay_admitted_during_a_running_episode_is_a_readmission_within_it():
    built = build_episodes(LEJR, [
        stay("c1", "p1", "2020-01-10", "2020-01-14"),   # episode to 2020-04-13
        stay("c2", "p1", "2020-04-13", "2020-04-15"),   # admitted on its last day: inside
        stay("c3", "p1", "2020-04-14", "2020-04-16"),   # the day after: a new episode
    ])  # fmt: skip
    assert [e.episode_id for e in built.episodes] == ["LEJR-c1", "LEJR-c3"]
    assert [(a.anchor_claim_id, a.episode_id) for a in built.absorbed] == [("c2", "LEJR-c1")]


def test_a_stay_of_several_lines_takes_the_earliest_admission_and_the_latest_discharge():
    lines = [stay("c1", "p1", "2020-05-01", "2020-05-03", line=1),
             stay("c1", "p1", None, "2020-05-06", line=2)]  # fmt: skip
    (episode,) = build_episodes(LEJR, lines).episodes
    assert (episode.window_start, episode.window_end) == (dt.date(2020, 5, 1), dt.date(2020, 8, 4))


def test_the_same_claims_in_any_order_give_the_same_file():
    lines = [stay(f"c{i}", f"p{i % 3}", f"2020-0{1 + i % 9}-01", f"2020-0{1 + i % 9}-04")
             for i in range(12)]  # fmt: skip
    forward = build_episodes(LEJR, lines).csv_bytes()
    assert forward == build_episodes(LEJR, list(reversed(lines))).csv_bytes()
    assert forward.splitlines()[0] == (
        b"episode_id,patient_id,window_start,window_end,provider_id,anchor_claim_id,ms_drg_code,rule"
    )


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([stay("c1", "p1", "2020-03-05", "2020-03-02")], "claim c1: discharged 2020-03-02 before "
                                                          "admitted 2020-03-05"),
        ([stay("c1", "p1", "2020-03-02", "2020-03-05"), stay("c1", "p2", "2020-03-02",
                                                              "2020-03-05", line=2)],
         "claim c1: its lines name 2 people"),
    ],
)  # fmt: skip
def test_a_claim_that_cannot_be_a_stay_is_refused_by_name(lines, message):
    with pytest.raises(EpisodeRuleError, match=message):
        build_episodes(LEJR, lines)


@pytest.mark.parametrize(
    ("name", "drgs", "days", "message"),
    [
        ("LEJR", set(), 90, "name at least one MS-DRG"),
        ("LEJR", {"47"}, 90, "MS-DRG codes are three digits, not '47'"),
        ("LEJR", {"470"}, 400, "days after discharge must be 0 to 365, not 400"),
        ("a b", {"470"}, 90, "letters, digits, - and _"),
    ],
)
def test_a_rule_that_cannot_be_applied_is_refused(name, drgs, days, message):
    with pytest.raises(EpisodeRuleError, match=message):
        EpisodeRule(name, frozenset(drgs), days)


def test_the_provider_and_bill_type_do_not_depend_on_line_order_or_form():
    lines = [stay("c1", "p1", "2020-03-02", "2020-03-05", facility_npi="2000000002"),
             stay("c1", "p1", "2020-03-02", "2020-03-05", line=2, facility_npi="1000000001"),
             stay("c2", "p2", "2020-03-02", "2020-03-05", bill_type="0111")]  # fmt: skip
    forward = build_episodes(LEJR, lines).episodes
    assert forward == build_episodes(LEJR, list(reversed(lines))).episodes
    providers = [(e.episode_id, e.provider_id) for e in forward]
    assert providers == [("LEJR-c1", "1000000001"), ("LEJR-c2", "1000000001")]


def test_every_claim_that_cannot_be_a_stay_is_reported_together():
    lines = [stay("c1", "p1", "2020-03-05", "2020-03-02"),
             stay("c2", "p1", "2020-04-05", "2020-04-02")]  # fmt: skip
    reported = r"2 anchor claim\(s\) cannot be a stay: claim c1: .*; claim c2: "
    with pytest.raises(EpisodeRuleError, match=reported):
        build_episodes(LEJR, lines)

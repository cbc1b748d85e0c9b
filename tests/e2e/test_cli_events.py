"""The outcome-event commands as a user runs them: load, reload, list, retract, aggregate."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTLE = Path(sys.executable).with_name("settle")
CLAIMS = ROOT / "fixtures" / "tuva" / "medical_claim.csv"
MSSP = ROOT / "contracts" / "templates" / "mssp.yaml"


def run(folder: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETTLE_")}
    env["SETTLE_DATABASE_URL"] = f"sqlite:///{folder / 'settle.db'}"
    return subprocess.run([str(SETTLE), *map(str, args)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def test_a_payer_loads_claims_and_attribution_and_the_contract_aggregates_them(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    first = run(tmp_path, "events", "load", CLAIMS, "--type", "claim_line")
    assert first.returncode == 0 and "loaded: " in first.stdout and "6,075 rows" in first.stdout
    again = run(tmp_path, "events", "load", CLAIMS, "--type", "claim_line")
    assert "already loaded (nothing changed)" in again.stdout
    (tmp_path / "attribution.csv").write_text(
        "patient_id,provider_id,period_start,period_end\n10133,aco,2018-01-01,2018-12-31\n"
    )
    assert (
        run(tmp_path, "events", "load", "attribution.csv", "--type", "attribution").returncode == 0
    )
    result = run(tmp_path, "aggregates", MSSP, "--period", "PY2018")
    assert result.returncode == 0, result.stderr
    assert "assigned_beneficiaries = 1" in result.stdout
    batch = run(tmp_path, "events", "batches").stdout.split()[0]
    retracted = run(tmp_path, "events", "retract", batch, "--reason", "sent twice")
    assert retracted.returncode == 0 and "retracted" in retracted.stdout
    assert "expenditure = 0" in run(tmp_path, "aggregates", MSSP, "--period", "PY2018").stdout


def test_a_broken_file_is_refused_with_every_problem_and_exit_2(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    (tmp_path / "bad.csv").write_text(
        "claim_id,claim_line_number,claim_type,patient_id,claim_start_date,paid_amount\n"
        "c1,1,professional,p1,2018-01-02,1e3\nc2,x,professional,p1,2018-01-02,5.00\n"
    )
    result = run(tmp_path, "events", "load", "bad.csv", "--type", "claim_line")
    assert result.returncode == 2
    assert "nothing was loaded: 2 problem(s)" in result.stderr
    assert "bad.csv:2: column paid_amount = '1e3'" in result.stderr
    assert "bad.csv:3: column claim_line_number = 'x'" in result.stderr
    assert "no batches" in run(tmp_path, "events", "batches").stdout


CONTRACT_FROM_EVENTS = """\
settle: settle.contract/v1
id: hf-episodes
title: Heart-failure episodes settled from the claims
description: The payer pays each heart-failure episode's spend, capped, built from the Tuva claims.
currency: USD
parties:
  payer: {name: Payer, account: "payer:p"}
  provider: {name: Hospital, account: "provider:h"}
periods:
  - {id: Y2018, start: "2018-01-01", end: "2018-12-31"}
rounding:
  mode: half_even
  payments: {places: 2, mode: half_even}
parameters:
  episode_cap:
    type: money
    description: High episode spending cap
    values:
      - {value: "20000.00", effective: "2018-01-01", reference: "test"}
  rate:
    type: rate
    description: Share paid
    values:
      - {value: "0.5", effective: "2018-01-01", reference: "test"}
inputs:
  episodes:
    type: rows
    description: Episodes ending in the year and their capped spend
    columns: {episode_id: text, actual_spend: money}
    aggregate: {events: claim_line, within: episode, measure: sum, field: paid_amount,
                group_by: [episode_id], value_column: actual_spend, per_episode_cap: episode_cap}
  members:
    type: count
    description: Member months
    aggregate: {events: eligibility, measure: member_months}
definitions:
  - {name: spend, type: money, description: Capped spend, expr: "sum(episodes, actual_spend)"}
payments:
  - {name: share, memo: test, from: payer, to: provider, amount: spend * rate}
"""


def test_episodes_are_built_from_claims_and_a_contract_is_settled_from_the_events(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "events", "load", CLAIMS, "--type", "claim_line").returncode == 0
    eligibility = ROOT / "fixtures" / "tuva" / "eligibility.csv"
    assert run(tmp_path, "events", "load", eligibility, "--type", "eligibility").returncode == 0
    built = run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "291",
                "--drg", "292", "--drg", "293", "--days", "90", "--out", "hf.csv")  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert "HF: inpatient stay with MS-DRG 291/292/293 + 90 days" in built.stdout
    assert "1 episodes" in built.stdout and "loaded: " in built.stdout
    assert (
        (tmp_path / "hf.csv")
        .read_text()
        .splitlines()[1]
        .startswith("HF-274373,11221,2018-07-29,2018-10-29,1093718728,274373,293,HF,20")
    )
    again = run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "291",
                "--drg", "292", "--drg", "293")  # fmt: skip
    assert "unchanged: the rule's current batch" in again.stdout
    (tmp_path / "contract.yaml").write_text(CONTRACT_FROM_EVENTS)
    settled = run(tmp_path, "evaluate", "contract.yaml", "--events", "--json")
    assert settled.returncode == 0, settled.stderr
    assert "inputs episodes, members computed from the events known as of" in settled.stderr
    result = json.loads(settled.stdout)
    assert result["quantities"]["spend"] == "20000.00"  # the one episode, capped
    assert [p["amount"] for p in result["payments"]] == ["10000.00"]
    lower = run(tmp_path, "evaluate", "contract.yaml", "--events", "--param", "episode_cap=5000",
                "--json")  # fmt: skip
    assert json.loads(lower.stdout)["quantities"]["spend"] == "5000.00"  # the cap the trace shows
    (tmp_path / "inputs.json").write_text('{"members": "3"}')
    both = run(tmp_path, "evaluate", "contract.yaml", "--events", "--inputs", "inputs.json")
    assert both.returncode == 2
    assert "inputs.members: given in the inputs and computed from events" in both.stderr
    neither = run(tmp_path, "evaluate", "contract.yaml")
    assert neither.returncode == 2 and "give --inputs FILE, or --events" in neither.stderr


def test_an_episode_rule_that_cannot_be_applied_is_refused_cleanly(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    refused = run(tmp_path, "events", "build-episodes", "--name", "LEJR", "--drg", "47")
    assert refused.returncode == 2
    assert "MS-DRG codes are three digits, not '47'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_settlement_rerun_with_the_same_cutoff_sees_the_same_events(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "events", "load", CLAIMS, "--type", "claim_line").returncode == 0
    assert run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "293").returncode == 0
    (tmp_path / "contract.yaml").write_text(CONTRACT_FROM_EVENTS)
    time.sleep(1.1)
    cutoff = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.1)

    def settled(*cutoff_option: str) -> dict:
        result = run(tmp_path, "evaluate", "contract.yaml", "--events", *cutoff_option, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    before = settled("--as-of", cutoff)
    (tmp_path / "late.csv").write_text(  # eligibility learned after the cutoff
        "patient_id,payer,enrollment_start_date,enrollment_end_date\n"
        "11221,medicare,2018-01-01,2018-12-31\n"
    )
    assert run(tmp_path, "events", "load", "late.csv", "--type", "eligibility").returncode == 0
    again = settled("--as-of", cutoff)
    assert again == before  # the same bytes, trace hash included
    assert members(before) == "0"
    assert members(settled()) == "12"  # as of now, the late span counts


def members(result: dict) -> str:
    return next(i["value"] for i in result["trace"]["inputs"] if i["name"] == "members")


def test_a_settlement_from_events_is_recorded_and_replayed_offline_by_an_auditor(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "events", "load", CLAIMS, "--type", "claim_line").returncode == 0
    assert run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "293").returncode == 0
    (tmp_path / "contract.yaml").write_text(CONTRACT_FROM_EVENTS)
    recorded = run(tmp_path, "evaluate", "contract.yaml", "--events", "--record", "--json")
    assert recorded.returncode == 0, recorded.stderr
    assert "recorded as ledger main entry 0" in recorded.stderr
    sources = {i["name"]: i["source"] for i in json.loads(recorded.stdout)["trace"]["inputs"]}
    assert sources["episodes"].startswith("events as of 20")  # the trace says where it came from
    for party in ("service", "payer"):
        assert run(tmp_path, "keys", "new", "--party", party, "--out", "keys").returncode == 0
    assert run(tmp_path, "ledger", "checkpoint", "--key", "keys/service.key").returncode == 0
    assert run(tmp_path, "ledger", "cosign", "--key", "keys/payer.key").returncode == 0
    trusted = (tmp_path / "keys" / "service.pub").read_text()
    (tmp_path / "trusted.txt").write_text(trusted + (tmp_path / "keys" / "payer.pub").read_text())
    exported = run(tmp_path, "audit", "export", "--contract", "hf-episodes", "--period", "Y2018",
                   "--out", "bundle.json")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    verified = run(tmp_path, "audit", "verify", "bundle.json", "--trusted", "trusted.txt",
                   "--threshold", "2")  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "1 settlements replayed to the same trace" in verified.stdout


def test_a_rebuild_supersedes_the_rules_earlier_episodes(tmp_path):
    """A void of the anchor stay removes its episode: the rebuild retracts the rule's batch; an
    episode rebuilt after new claims is the same batch; another rule's episodes are apart."""
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "events", "load", CLAIMS, "--type", "claim_line").returncode == 0
    assert run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "293").returncode == 0
    assert run(tmp_path, "events", "build-episodes", "--name", "SEPSIS",
               "--drg", "872").returncode == 0  # fmt: skip
    (tmp_path / "contract.yaml").write_text(CONTRACT_FROM_EVENTS.replace(
        "within: episode,", "within: episode, episode_rule: HF,"))  # fmt: skip

    def spend() -> str:
        result = run(tmp_path, "evaluate", "contract.yaml", "--events", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["quantities"]["spend"]

    assert spend() == "20000.00"  # HF's one episode, capped; the sepsis episodes are not HF's
    (tmp_path / "void.csv").write_text(
        "claim_id,claim_line_number,claim_type,patient_id,claim_start_date,paid_amount,"
        "claim_status,adjusted_claim_id\n274373-void,1,institutional,11221,2018-07-29,0,void,274373\n"
    )
    assert run(tmp_path, "events", "load", "void.csv", "--type", "claim_line").returncode == 0
    rebuilt = run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "293")
    assert "0 episodes" in rebuilt.stdout and "retracted: " in rebuilt.stdout
    assert spend() == "0.00"


def test_a_rebuild_from_earlier_claims_than_the_current_batch_is_refused(tmp_path):
    assert run(tmp_path, "db", "upgrade").returncode == 0
    assert run(tmp_path, "events", "load", CLAIMS, "--type", "claim_line").returncode == 0
    time.sleep(1.1)
    earlier = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.1)
    assert run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "293").returncode == 0
    again = run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "293", "--days",
                "30", "--as-of", earlier)  # fmt: skip
    assert again.returncode == 2
    assert "a rebuild from earlier claims would replace newer episodes" in again.stderr
    future = run(tmp_path, "events", "build-episodes", "--name", "HF", "--drg", "293",
                 "--as-of", "2999-01-01")  # fmt: skip
    assert future.returncode == 2 and "is in the future" in future.stderr

"""The `settle` contract, evaluate, explain and demo commands, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTLE = Path(sys.executable).with_name("settle")
MSSP = ROOT / "contracts" / "templates" / "mssp.yaml"
A1037 = ROOT / "fixtures" / "mssp" / "aco-a1037-py2018.json"
PUBLISHED = ROOT / "fixtures" / "mssp" / "py2018-published.jsonl"


def settle(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SETTLE_")}
    return subprocess.run(
        [str(SETTLE), *map(str, args)],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_shipped_template_validates_and_prints_its_version_hash():
    templates = sorted((ROOT / "contracts" / "templates").glob("*.yaml"))
    result = settle("contract", "validate", *templates)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" is valid, version ") == len(templates)


def test_a_typo_in_a_definition_is_reported_with_its_clause_position_and_a_suggestion(tmp_path):
    broken = tmp_path / "broken.yaml"
    text = MSSP.read_text().replace("expr: savings / benchmark", "expr: savings / benchmrk")
    broken.write_text(text)
    result = settle("contract", "validate", broken)
    assert result.returncode == 2
    assert (
        "contract mssp-template, definitions.savings_rate.expr at 1:11: unknown name "
        "'benchmrk' (did you mean 'benchmark'?)" in result.stderr
    )
    assert "    savings / benchmrk\n              ^^^^^^^^" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_reproduces_the_published_track_3_example_as_json():
    # CMS MSSP PY2018 PUF, ACO A1037: EarnSaveLoss 7,239,220 (tolerance 0.00005 x 10,912,641).
    result = settle("evaluate", MSSP, "--param", "track=3", "--inputs", A1037, "--json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) >= {"contract", "quantities", "payments", "trace"}
    assert len(output["contract"]) == 64
    net = Decimal(output["quantities"]["net_to_provider"])
    assert abs(net - 7_239_220) <= Decimal("0.00005") * 10_912_641
    assert output["payments"][0]["amount"] == "7239566.08"
    assert output["trace"]["format"] == "settle.trace/v1"


def test_json_output_is_the_same_bytes_on_every_run():
    first = settle("evaluate", MSSP, "--inputs", A1037, "--json")
    second = settle("evaluate", MSSP, "--inputs", A1037, "--json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


def test_a_jsonl_file_gives_one_line_per_case_in_order_and_a_bad_case_does_not_stop_the_others(
    tmp_path,
):
    lines = PUBLISHED.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["id"] = "BROKEN"
    bad["inputs"]["benchmark"] = "12.345.6"
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join([lines[0], json.dumps(bad), *lines[1:], "{not json"]) + "\n")
    result = settle("evaluate", MSSP, "--inputs", cases, "--json")
    assert result.returncode == 1
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["case"] for o in out] == [
        "A1001",
        "BROKEN",
        *[json.loads(x)["id"] for x in lines[1:]],
        "12",
    ]
    assert "inputs.benchmark" in out[1]["error"][0] and "12.345.6" in out[1]["error"][0]
    assert "not valid JSON" in out[-1]["error"][0]
    assert all("quantities" in o for o in out if o["case"] not in ("BROKEN", "12"))
    assert "2 case(s) failed" in result.stderr


def test_explain_prints_a_worked_calculation_with_clause_references():
    result = settle("explain", MSSP, "--inputs", A1037)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "max_sharing_rate = 0.75 (75%)   default lookup(track_terms, track, " in text
    assert "savings = benchmark - expenditure\n               = 153321713 - 142409072" in text
    assert "[42 CFR 425.604(d)-(e)]" in text
    assert "shared_savings_payment: payer:cms:mssp -> provider:aco  7,239,566.08 USD" in text
    assert "shared_losses_repayment: not made (condition not met: shared_losses > 0)" in text


def test_diff_shows_an_amendment_clause_by_clause(tmp_path):
    amended = tmp_path / "amended.yaml"
    text = MSSP.read_text()
    text = text.replace(
        '{value: "0.02", effective: "2013-04-01"', '{value: "0.0", effective: "2013-04-01"'
    )
    text = text.replace("expr: savings / benchmark", "expr: (benchmark - expenditure) / benchmark")
    amended.write_text(text)
    result = settle("contract", "diff", MSSP, amended)
    assert result.returncode == 0, result.stderr
    assert (
        'parameters.sequestration_rate\n  ~ values[2013-04-01].value: "0.02" -> "0"'
        in result.stdout
    )
    assert (
        'definitions.savings_rate\n  ~ expr: "savings / benchmark" -> '
        '"(benchmark - expenditure) / benchmark"' in result.stdout
    )


def test_an_unknown_parameter_override_is_refused_with_a_suggestion():
    result = settle("evaluate", MSSP, "--param", "trak=3", "--inputs", A1037)
    assert result.returncode == 2
    assert "parameters.trak: unknown parameter 'trak' (did you mean 'track'?)" in result.stderr


def test_the_demo_validates_the_templates_and_explains_an_mssp_settlement(tmp_path):
    result = settle("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "mssp.yaml: valid" in result.stdout
    assert "net_to_provider = shared_savings - shared_losses" in result.stdout
    assert "trace sha256 " in result.stdout
    # Step 7, counted by hand from the fixture files: the 75 attributed people's 2018 claims and
    # their distinct (person, payer, month) eligibility.
    assert "fee_for_service_expenditure = 3555150.66" in result.stdout
    assert "member_months = 619" in result.stdout


def test_storing_a_contract_before_the_schema_exists_says_to_run_db_upgrade(tmp_path):
    result = settle("contract", "add", MSSP, cwd=tmp_path)
    assert result.returncode == 2
    assert "has `settle db upgrade` been run" in result.stderr
    assert "Traceback" not in result.stderr

"""The outcome-event commands as a user runs them: load, reload, list, retract, aggregate."""

from __future__ import annotations

import os
import subprocess
import sys
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
        "claim_id,claim_line_number,claim_type,patient_id,paid_amount\n"
        "c1,1,professional,p1,1e3\nc2,x,professional,p1,5.00\n"
    )
    result = run(tmp_path, "events", "load", "bad.csv", "--type", "claim_line")
    assert result.returncode == 2
    assert "nothing was loaded: 2 problem(s)" in result.stderr
    assert "bad.csv:2: column paid_amount = '1e3'" in result.stderr
    assert "bad.csv:3: column claim_line_number = 'x'" in result.stderr
    assert "no batches" in run(tmp_path, "events", "batches").stdout

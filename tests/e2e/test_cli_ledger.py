"""The ledger as a user drives it: record a settlement, checkpoint and co-sign it, verify it, and
hand an auditor a bundle they check offline; tampering is caught and named."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTLE = Path(sys.executable).with_name("settle")
MSSP = ROOT / "contracts" / "templates" / "mssp.yaml"
CASES = [
    json.loads(line)
    for line in (ROOT / "fixtures/mssp/py2018-published.jsonl").read_text().splitlines()
]


def run(folder: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETTLE_")}
    env["SETTLE_DATABASE_URL"] = f"sqlite:///{folder / 'settle.db'}"
    return subprocess.run([str(SETTLE), *map(str, args)], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip


def ok(folder: Path, *args: str | Path) -> str:
    result = run(folder, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def settled(tmp_path_factory):
    """Three ACOs' PY2018 settlements recorded, checkpointed by the service, co-signed by CMS."""
    folder = tmp_path_factory.mktemp("ledger")
    ok(folder, "db", "upgrade")
    for party in ("service", "payer.cms", "provider.aco"):
        ok(folder, "keys", "new", "--party", party, "--out", "keys")
    (folder / "trusted.txt").write_text(
        "".join(
            (folder / "keys" / f"{p}.pub").read_text()
            for p in ("service", "payer.cms", "provider.aco")
        )
    )
    for case in CASES[:3]:
        (folder / "case.json").write_text(json.dumps(case))
        ok(folder, "evaluate", MSSP, "--inputs", "case.json", "--record")
    ok(folder, "ledger", "checkpoint", "--key", "keys/service.key")
    ok(folder, "ledger", "cosign", "--key", "keys/payer.cms.key")
    return folder


def test_recording_the_same_settlement_twice_records_it_once(settled):
    (settled / "again.json").write_text(json.dumps(CASES[0]))
    result = run(settled, "evaluate", MSSP, "--inputs", "again.json", "--record")
    assert "recorded as ledger main entry 0 " in result.stderr
    assert "size          3" in ok(settled, "ledger", "checkpoints")


def test_balances_are_what_each_account_is_owed(settled):
    # A1001 50,085,920.76 + A1002 5,071,374.79 + A1409 12,118,222.50 = 67,275,518.05
    text = ok(settled, "ledger", "balances")
    assert "payer:cms:mssp        -67,275,518.05 USD" in text
    assert "provider:aco           67,275,518.05 USD" in text


def test_verify_checks_the_chain_roots_and_a_two_of_three_policy_with_the_service_required(settled):
    text = ok(settled, "verify", "--trusted", "trusted.txt", "--threshold", "2",
              "--require", "service", "--deep")  # fmt: skip
    assert "ledger main: 3 entries, chain and root verified" in text
    assert "every checkpoint is signed by 2 of payer.cms, provider.aco, service" in text


def test_a_policy_the_checkpoint_does_not_meet_fails(settled):
    result = run(settled, "verify", "--trusted", "trusted.txt")  # all three required
    assert result.returncode == 2
    assert "expected 3 of" in result.stderr


def test_an_auditor_verifies_an_exported_bundle_offline_and_replays_it(settled, tmp_path):
    ok(settled, "audit", "export", "--contract", "mssp-template", "--period", "PY2018", "--out",
       tmp_path / "bundle.json")  # fmt: skip
    text = ok(tmp_path, "audit", "verify", "bundle.json", "--trusted", settled / "trusted.txt",
              "--threshold", "2")  # fmt: skip
    assert "3 entries included in the tree of size 3 signed by payer.cms, service" in text
    assert "3 settlements replayed to the same trace" in text


def test_a_changed_amount_in_a_bundle_is_caught(settled, tmp_path):
    ok(settled, "audit", "export", "--contract", "mssp-template", "--period", "PY2018", "--out",
       tmp_path / "bundle.json")  # fmt: skip
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    bundle["entries"][1]["canonical"] = bundle["entries"][1]["canonical"].replace(
        "5071374.79", "5071374.80"
    )
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    result = run(tmp_path, "audit", "verify", "bundle.json", "--trusted", settled / "trusted.txt",
                 "--threshold", "2")  # fmt: skip
    assert result.returncode == 2
    assert "entry 1: expected hash" in result.stderr


def test_a_rewritten_entry_is_reported_with_its_sequence_even_by_someone_who_drops_the_triggers(
    settled, tmp_path
):
    copy = tmp_path / "settle.db"
    with sqlite3.connect(settled / "settle.db") as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as database:
        refused = pytest.raises(sqlite3.DatabaseError, match="append-only")
        with refused:
            database.execute("UPDATE ledger_entries SET canonical = 'x' WHERE sequence = 1")
        for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            database.execute(f"DROP TRIGGER {name}")
        database.execute(
            "UPDATE ledger_entries SET canonical = replace(canonical, '5071374.79', '9999999.99') "
            "WHERE sequence = 1"
        )
    result = run(tmp_path, "verify")
    assert result.returncode == 2
    assert "entry 1: expected hash " in result.stderr

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
    assert (
        "ledger main: 3 entries; chain, Merkle nodes and frontier, entries, columns and "
        "postings verified" in text
    )
    assert "1 checkpoint(s) signed by 2 of payer.cms, provider.aco, service" in text


def test_a_policy_the_checkpoint_does_not_meet_fails(settled):
    result = run(settled, "verify", "--trusted", "trusted.txt")  # all three required
    assert result.returncode == 2
    assert "no checkpoint is signed by 3 of payer.cms, provider.aco, service" in result.stderr
    assert "size 3 by payer.cms, service" in result.stderr


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


def tampered(settled: Path, folder: Path, *statements: str) -> Path:
    """A copy of the ledger changed by someone who dropped the append-only triggers."""
    with (
        sqlite3.connect(settled / "settle.db") as source,
        sqlite3.connect(folder / "settle.db") as target,
    ):
        source.backup(target)
    with sqlite3.connect(folder / "settle.db") as database:
        for (name,) in database.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            database.execute(f"DROP TRIGGER {name}")
        for statement in statements:
            database.execute(statement)
    return folder


@pytest.mark.parametrize(
    ("statements", "message"),
    [
        (
            ["UPDATE ledger_checkpoints SET root = '" + "0" * 64 + "'"],
            "checkpoint at size 3: expected the root its signed note states",
        ),
        (
            ["UPDATE ledger_merkle_nodes SET hash = zeroblob(32) WHERE level = 1 AND position = 0"],
            "Merkle nodes at level 1",
        ),
        (
            ["DELETE FROM ledger_merkle_nodes WHERE level = 0 AND position = 2"],
            "Merkle nodes at level 0",
        ),
        (
            [
                "UPDATE ledger_heads SET frontier = "
                "CAST(substr(frontier, 1, length(frontier) - 1) || x'00' AS BLOB)"
            ],
            "the head's frontier",
        ),
        (
            ["UPDATE ledger_postings SET amount = '999.25' WHERE sequence = 1 AND position = 0"],
            "entry 1: expected its stored postings",
        ),
        (
            ["UPDATE ledger_entries SET idempotency_key = 'other' WHERE sequence = 2"],
            "entry 2: expected its stored columns",
        ),
    ],
    ids=[
        "root-beside-the-note",
        "merkle-node",
        "missing-leaf-node",
        "frontier",
        "posting",
        "column",
    ],
)
def test_every_stored_copy_of_the_ledger_is_checked_against_the_entries(
    settled, tmp_path, statements, message
):
    folder = tampered(settled, tmp_path, *statements)
    result = run(folder, "verify", "--deep")
    assert result.returncode == 2
    assert message in result.stderr, result.stderr


def test_the_service_will_not_sign_a_tampered_ledger(settled, tmp_path):
    zeroed = "UPDATE ledger_merkle_nodes SET hash = zeroblob(32) WHERE level = 0 AND position = 1"
    folder = tampered(settled, tmp_path, zeroed)
    result = run(folder, "ledger", "checkpoint", "--key", settled / "keys" / "service.key",
                 "--state", tmp_path / "state")  # fmt: skip
    assert result.returncode == 2
    assert "Merkle nodes at level 0" in result.stderr


def test_a_restored_older_database_cannot_make_the_service_sign_a_second_history(settled, tmp_path):
    """The key's last signed checkpoint is kept outside the database, so a restore is caught."""
    state = tmp_path / "service.last"
    ok(settled, "ledger", "checkpoint", "--key", "keys/service.key", "--state", state)
    older = tmp_path / "older"
    older.mkdir()
    ok(older, "db", "upgrade")
    (older / "case.json").write_text(json.dumps(CASES[5]))
    for _ in range(3):
        ok(older, "evaluate", MSSP, "--inputs", "case.json", "--record")
        (older / "case.json").write_text(json.dumps(CASES[6]))
    result = run(older, "ledger", "checkpoint", "--key", settled / "keys" / "service.key",
                 "--state", state)  # fmt: skip
    assert result.returncode == 2
    assert "refusing to sign" in result.stderr


def test_verify_against_a_checkpoint_the_auditor_kept_catches_a_shorter_ledger(settled, tmp_path):
    """An auditor who kept the co-signed size-3 checkpoint is shown a ledger of 2 entries (an
    older copy, consistent in itself): the kept checkpoint reveals it."""
    with sqlite3.connect(settled / "settle.db") as database:
        body = database.execute("SELECT body FROM ledger_checkpoints WHERE size = 3").fetchone()[0]
        lines = [
            row[0]
            for row in database.execute(
                "SELECT line FROM ledger_checkpoint_signatures WHERE size = 3 ORDER BY key_name"
            )
        ]
    (tmp_path / "kept.note").write_text(body + "\n" + "".join(f"{line}\n" for line in lines))
    ok(tmp_path, "db", "upgrade")
    for case in CASES[:2]:
        (tmp_path / "case.json").write_text(json.dumps(case))
        ok(tmp_path, "evaluate", MSSP, "--inputs", "case.json", "--record")
    assert "2 entries" in ok(tmp_path, "verify")
    trusted = settled / "trusted.txt"
    result = run(tmp_path, "verify", "--against", "kept.note", "--trusted", trusted,
                 "--threshold", "2")  # fmt: skip
    assert result.returncode == 2
    assert "a checkpoint you hold has 3 entries; this ledger has 2" in result.stderr


def test_a_bundle_with_a_correction_verifies_and_names_only_the_keys_it_counted(tmp_path):
    ok(tmp_path, "db", "upgrade")
    for party in ("service", "payer.cms"):
        ok(tmp_path, "keys", "new", "--party", party, "--out", "keys")
    (tmp_path / "case.json").write_text(json.dumps(CASES[0]))
    ok(tmp_path, "evaluate", MSSP, "--inputs", "case.json", "--record")
    ok(tmp_path, "ledger", "reverse", "0", "--key", "undo-0", "--memo", "recorded in error")
    ok(tmp_path, "ledger", "checkpoint", "--key", "keys/service.key")
    ok(tmp_path, "ledger", "cosign", "--key", "keys/payer.cms.key")
    ok(tmp_path, "audit", "export", "--contract", "mssp-template", "--period", "PY2018", "--out",
       "bundle.json")  # fmt: skip
    keys = tmp_path / "keys"
    (tmp_path / "trusted.txt").write_text(
        (keys / "service.pub").read_text() + (keys / "payer.cms.pub").read_text()
    )
    text = ok(tmp_path, "audit", "verify", "bundle.json", "--trusted", "trusted.txt")
    assert "2 entries included in the tree of size 2 signed by payer.cms, service" in text
    bundle = json.loads((tmp_path / "bundle.json").read_text())
    payer_line = next(line for line in bundle["checkpoint"].splitlines() if "payer.cms" in line)
    bundle["checkpoint"] = bundle["checkpoint"].replace(
        payer_line, payer_line[:14] + "A" + payer_line[15:]
    )
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    text = ok(tmp_path, "audit", "verify", "bundle.json", "--trusted", "trusted.txt",
              "--threshold", "1", "--require", "service")  # fmt: skip
    assert "signed by service;" in text


@pytest.mark.parametrize(
    "broken", [[], {"format": "settle.audit/v1"}, {"format": "settle.audit/v1", "entries": []}]
)
def test_a_malformed_bundle_is_refused_with_a_message_not_a_traceback(settled, tmp_path, broken):
    (tmp_path / "bundle.json").write_text(json.dumps(broken))
    result = run(tmp_path, "audit", "verify", "bundle.json", "--trusted", settled / "trusted.txt")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "bundle" in result.stderr


@pytest.mark.parametrize("name", ["bad name", "a+b", ""])
def test_a_key_name_c2sp_cannot_carry_is_refused(tmp_path, name):
    result = run(tmp_path, "keys", "new", "--party", name)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_key_named_like_an_origin_is_written_beside_the_others(tmp_path):
    ok(tmp_path, "keys", "new", "--party", "settle.local/main", "--out", "keys")
    assert (tmp_path / "keys" / "settle.local_main.key").exists()

"""The installed `settle` command as a real process: help, `db upgrade`, `db current`, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from api.config import VARIABLES
from api.schema import head_revision

SETTLE = Path(sys.executable).with_name("settle")


def _settle(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SETTLE_")}
    return subprocess.run(
        [str(SETTLE), *args],
        env=clean | env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.split(':')[0]}:{password}@{host}"))


def test_help_lists_the_config_file_and_every_settle_variable(tmp_path: Path) -> None:
    result = _settle("--help", env={}, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    for name in ["SETTLE_CONFIG", *(variable.environment_name for variable in VARIABLES)]:
        assert name in result.stdout
    assert "db" in result.stdout


def test_db_upgrade_creates_settle_db_in_the_working_directory_by_default(tmp_path: Path) -> None:
    result = _settle("db", "upgrade", env={}, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"database: sqlite:///{tmp_path.resolve() / 'settle.db'}" in result.stdout
    assert f"revision: {head_revision()} (head)" in result.stdout
    assert (tmp_path / "settle.db").is_file()


def test_db_upgrade_then_current_report_the_head_revision(
    database_url: str, tmp_path: Path
) -> None:
    env = {"SETTLE_DATABASE_URL": database_url}

    before = _settle("db", "current", env=env, cwd=tmp_path)
    upgrade = _settle("db", "upgrade", env=env, cwd=tmp_path)
    after = _settle("db", "current", env=env, cwd=tmp_path)

    assert before.returncode == 0, before.stderr
    assert "revision: none (run `settle db upgrade`)" in before.stdout
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"revision: {head_revision()} (head)" in upgrade.stdout
    assert after.stdout == upgrade.stdout


@pytest.mark.postgres
def test_db_upgrade_masks_the_password_it_prints(postgres_url: str, tmp_path: Path) -> None:
    # The server trusts local connections, so any password gets in; it must never be shown.
    url = _with_password(postgres_url, "s3cret-pw")

    result = _settle("db", "upgrade", env={"SETTLE_DATABASE_URL": url}, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "s3cret-pw" not in result.stdout + result.stderr
    assert ":***@" in result.stdout


def test_a_bad_config_file_exits_2_with_the_key_and_file_and_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "settle.toml"
    config.write_text('database_ur = "sqlite:///typo.db"\n')

    result = _settle("db", "upgrade", env={"SETTLE_CONFIG": str(config)}, cwd=tmp_path)

    assert result.returncode == 2
    assert "'database_ur'" in result.stderr
    assert str(config) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "settle.db").exists()


def test_an_unreachable_database_exits_2_without_a_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-directory' / 'settle.db'}"

    result = _settle("db", "upgrade", env={"SETTLE_DATABASE_URL": url}, cwd=tmp_path)

    assert result.returncode == 2
    assert "cannot upgrade sqlite:///" in result.stderr
    assert "Traceback" not in result.stderr

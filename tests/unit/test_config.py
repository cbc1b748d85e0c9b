"""Configuration: defaults, the SETTLE_CONFIG file, environment variables over it, clear errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from api.config import VARIABLES, ConfigError, Settings, load_settings, variables_help


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "settle.toml"


def test_with_nothing_set_the_database_is_settle_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    settings = load_settings({})

    assert settings == Settings(
        database_url=f"sqlite:///{tmp_path.resolve() / 'settle.db'}",
        log_level="INFO",
        ledger="main",
        origin="settle.local",
    )
    assert settings.checkpoint_origin == "settle.local/main"


def test_environment_variables_override_the_defaults() -> None:
    settings = load_settings(
        {"SETTLE_DATABASE_URL": "postgresql://db/settle", "SETTLE_LOG_LEVEL": "debug"}
    )

    assert settings.database_url == "postgresql://db/settle"
    assert settings.log_level == "DEBUG"


def test_the_file_named_by_settle_config_overrides_the_defaults(config_file: Path) -> None:
    config_file.write_text('database_url = "sqlite:///from-file.db"\nlog_level = "WARNING"\n')

    settings = load_settings({"SETTLE_CONFIG": str(config_file)})

    assert settings == Settings(
        database_url="sqlite:///from-file.db",
        log_level="WARNING",
        ledger="main",
        origin="settle.local",
    )


def test_an_environment_variable_beats_the_same_key_in_the_file(config_file: Path) -> None:
    config_file.write_text('database_url = "sqlite:///from-file.db"\nlog_level = "WARNING"\n')

    settings = load_settings(
        {"SETTLE_CONFIG": str(config_file), "SETTLE_DATABASE_URL": "sqlite:///from-env.db"}
    )

    assert settings.database_url == "sqlite:///from-env.db"
    assert settings.log_level == "WARNING"


def test_an_unknown_key_in_the_file_is_named_with_the_file(config_file: Path) -> None:
    config_file.write_text('database_url = "sqlite:///x.db"\ndatabse_password = "x"\n')

    with pytest.raises(ConfigError) as raised:
        load_settings({"SETTLE_CONFIG": str(config_file)})

    assert str(config_file) in str(raised.value)
    assert "'databse_password'" in str(raised.value)
    assert "unknown key" in str(raised.value)


def test_a_missing_config_file_is_named_in_the_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError, match=r"cannot read config file .*nowhere\.toml"):
        load_settings({"SETTLE_CONFIG": str(missing)})


def test_a_file_that_is_not_toml_is_named_in_the_error(config_file: Path) -> None:
    config_file.write_text("database_url = \n")

    with pytest.raises(ConfigError, match=r"cannot read config file .*settle\.toml"):
        load_settings({"SETTLE_CONFIG": str(config_file)})


def test_a_value_that_is_not_a_string_names_the_key(config_file: Path) -> None:
    config_file.write_text("log_level = 10\n")

    with pytest.raises(ConfigError, match="key 'log_level': expected a string, got int"):
        load_settings({"SETTLE_CONFIG": str(config_file)})


def test_an_unknown_log_level_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"SETTLE_LOG_LEVEL: expected one of .*got 'LOUD'"):
        load_settings({"SETTLE_LOG_LEVEL": "LOUD"})


def test_an_empty_database_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="SETTLE_DATABASE_URL: must not be empty"):
        load_settings({"SETTLE_DATABASE_URL": " "})


def test_every_setting_has_exactly_one_row_in_the_variables_table() -> None:
    assert [variable.field for variable in VARIABLES] == [field.name for field in fields(Settings)]


def test_the_help_text_lists_every_variable_and_the_config_file() -> None:
    text = variables_help()

    for name in ("SETTLE_CONFIG", "SETTLE_DATABASE_URL", "SETTLE_LOG_LEVEL"):
        assert name in text

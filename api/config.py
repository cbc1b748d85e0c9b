"""Settle's configuration in one place: the table of SETTLE_ variables, and `load_settings`.

Reads only the mapping it is given and the TOML file that mapping names; it opens no database.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rules.errors import SettleError

CONFIG_FILE_VARIABLE = "SETTLE_CONFIG"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_PREFIX = "SETTLE_"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(SettleError):
    """The configuration cannot be read: a bad file, an unknown key or a bad value."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What a running Settle is configured with; built by `load_settings`."""

    database_url: str
    log_level: str
    ledger: str
    origin: str

    @property
    def checkpoint_origin(self) -> str:
        """The origin line of this ledger's checkpoints (C2SP tlog-checkpoint)."""
        return f"{self.origin}/{self.ledger}"

    @property
    def log_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.log_level]


@dataclass(frozen=True, slots=True)
class Variable:
    """One row of the configuration table: a setting, its environment variable and its default."""

    field: str
    default_text: str
    meaning: str
    default: Callable[[], str]

    @property
    def environment_name(self) -> str:
        return _PREFIX + self.field.upper()


def _default_database_url() -> str:
    return f"sqlite:///{Path.cwd().resolve() / 'settle.db'}"


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "database_url",
        "sqlite:///<current directory>/settle.db",
        "a SQLAlchemy URL; ?options=-csearch_path%3D<schema> picks a PostgreSQL schema",
        _default_database_url,
    ),
    Variable(
        "log_level",
        "INFO",
        "how much is logged to stderr: " + ", ".join(_LOG_LEVELS),
        lambda: "INFO",
    ),
    Variable("ledger", "main", "the ledger the ledger commands work on", lambda: "main"),
    Variable(
        "origin",
        "settle.local",
        "this service's name in checkpoints: their origin line is <origin>/<ledger>",
        lambda: "settle.local",
    ),
)


def variables_help() -> str:
    """The table of variables as text, for `settle --help` and the README."""
    keys = ", ".join(f'{v.field} = "..."' for v in VARIABLES)
    rows = [(CONFIG_FILE_VARIABLE, "(unset)", f"a TOML file of the settings below: {keys}")]
    rows += [(v.environment_name, v.default_text, v.meaning) for v in VARIABLES]
    width = max(len(name) for name, _, _ in rows)
    return "\n".join(
        f"{name:<{width}}  default: {default}\n    {meaning}" for name, default, meaning in rows
    )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, then the file named by SETTLE_CONFIG, then SETTLE_ variables."""
    environ = os.environ if environ is None else environ
    values = {v.field: v.default() for v in VARIABLES}
    config_path = environ.get(CONFIG_FILE_VARIABLE)
    if config_path:
        values |= _read_config_file(Path(config_path))
    for variable in VARIABLES:
        if variable.environment_name in environ:
            values[variable.field] = _checked(
                variable.field, environ[variable.environment_name], variable.environment_name
            )
    return Settings(**values)


def _read_config_file(path: Path) -> dict[str, str]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from error
    known = {v.field for v in VARIABLES}
    values: dict[str, str] = {}
    for key, value in document.items():
        where = f"config file {path}, key {key!r}"
        if key not in known:
            raise ConfigError(f"{where}: unknown key; known keys: {', '.join(sorted(known))}")
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
        values[key] = _checked(key, value, where)
    return values


def _checked(field: str, value: str, where: str) -> str:
    if not value.strip():
        raise ConfigError(f"{where}: must not be empty")
    if field == "log_level":
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ConfigError(f"{where}: expected one of {', '.join(_LOG_LEVELS)}, got {value!r}")
        return level
    if field in ("ledger", "origin") and not _NAME.match(value):
        raise ConfigError(f"{where}: expected letters, digits, '.', '_', '-' or '/', got {value!r}")
    return value

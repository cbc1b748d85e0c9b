"""Turns a SettleError into a one-line message on stderr and exit code 2, for every CLI command.

Holds no commands; a traceback still means a bug, since only SettleError is caught.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import click
from sqlalchemy.exc import OperationalError, ProgrammingError

from rules.errors import SettleError

EXIT_SETTLE_ERROR = 2

_P = ParamSpec("_P")
_R = TypeVar("_R")


class SettleErrorExit(click.ClickException):
    """A SettleError on its way out of the CLI: click prints `Error: <message>` to stderr."""

    exit_code = EXIT_SETTLE_ERROR


@contextmanager
def settle_errors_exit_cleanly() -> Iterator[None]:
    """Inside this block a SettleError becomes a clean exit 2 instead of a traceback."""
    try:
        yield
    except SettleError as error:
        raise SettleErrorExit(str(error)) from error
    except (OperationalError, ProgrammingError) as error:
        first = str(error.orig or error).strip().splitlines()[0]
        if "database is locked" in first:
            raise SettleErrorExit(
                "the SQLite database is busy: another process is writing to it; try again when "
                "it has finished (SQLite takes one writer at a time)"
            ) from error
        raise SettleErrorExit(
            f"the database refused: {first} (has `settle db upgrade` been run on "
            "SETTLE_DATABASE_URL?)"
        ) from error


def reports_settle_errors(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator form of `settle_errors_exit_cleanly`, for commands used outside `settle`."""

    @functools.wraps(function)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with settle_errors_exit_cleanly():
            return function(*args, **kwargs)

    return wrapper


class SettleGroup(click.Group):
    """A click group whose commands, nested groups included, all report SettleError cleanly."""

    def invoke(self, ctx: click.Context) -> Any:
        with settle_errors_exit_cleanly():
            return super().invoke(ctx)

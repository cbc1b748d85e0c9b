"""The CLI turns a SettleError into a message on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import click
from click.testing import CliRunner

from api.cli_errors import SettleGroup, reports_settle_errors
from rules.errors import SettleError


@click.group(cls=SettleGroup)
def _root() -> None:
    pass


@_root.group(name="nested")
def _nested() -> None:
    pass


@_nested.command()
def fails() -> None:
    raise SettleError("the contract has no periods")


@_root.command()
def crashes() -> None:
    raise RuntimeError("a bug")


@click.command()
@reports_settle_errors
def _standalone() -> None:
    raise SettleError("standalone trouble")


def test_a_settle_error_in_a_nested_command_exits_2_with_its_message() -> None:
    result = CliRunner().invoke(_root, ["nested", "fails"])

    assert result.exit_code == 2
    assert result.stderr == "Error: the contract has no periods\n"
    assert result.stdout == ""


def test_an_unexpected_exception_is_not_dressed_up_as_a_settle_error() -> None:
    result = CliRunner().invoke(_root, ["crashes"])

    assert result.exit_code == 1
    assert isinstance(result.exception, RuntimeError)


def test_the_decorator_gives_a_lone_command_the_same_exit() -> None:
    result = CliRunner().invoke(_standalone, [])

    assert result.exit_code == 2
    assert "standalone trouble" in result.stderr

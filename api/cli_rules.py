"""The rule-language commands of the `settle` CLI (contract, evaluate, explain, demo)."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Attach the contract, evaluate, explain and demo commands to the `settle` group."""

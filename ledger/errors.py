"""The one exception of broken integrity: a chain, proof, checkpoint or signature that fails.

Problems in data are values (rules.errors.Problem); a failed verification raises this, saying what
was expected and what was found.
"""

from __future__ import annotations

from rules.errors import SettleError


class VerificationError(SettleError):
    """An integrity check failed: `expected …, got …`, with where (sequence, index, key)."""

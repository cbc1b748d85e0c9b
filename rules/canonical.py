"""Canonical JSON (RFC 8785) and the text form of exact decimals: the bytes every hash is taken of.

Contract versions, evaluation traces and ledger entries are hashed over these bytes, so that an
auditor can recompute each hash with any RFC 8785 implementation. Numbers are always decimal
strings (or integers): a float never enters. Pure: the standard library and `rfc8785`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import rfc8785


def canonical_form(value: Any) -> Any:
    """The JSON value of a checked document: decimals as normalized strings, dates as ISO text."""
    if isinstance(value, Mapping):
        return {str(k): canonical_form(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical_form(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, int):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"no canonical JSON for {type(value).__name__}")


def decimal_text(value: Decimal) -> str:
    """A decimal as plain digits without exponent or trailing zeros: Decimal('1.50') -> '1.5'."""
    # Textual, not value.normalize(): normalize() rounds to the ambient context's precision.
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "0") else text


def money_text(value: Decimal) -> str:
    """An amount as text to at least the cent: Decimal('12.5') -> '12.50'; more places are kept."""
    text = decimal_text(value)
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def canonical_json(value: Any) -> bytes:
    """RFC 8785 bytes of a JSON value whose numbers are all decimal strings or integers."""
    return bytes(rfc8785.dumps(canonical_form(value)))


def content_hash(canonical: bytes) -> str:
    return hashlib.sha256(canonical).hexdigest()

"""Reading numbers and dates exactly as written, and quoting values in messages without repeating
them whole.

Pure: a number is digits with an optional point; exponents, infinities and NaN are refused, so
no value can silently grow to hundreds of digits or stop being a number.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

_DECIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]+)?$")


class DocumentError(ValueError):
    """A document text Settle refuses to read: it would change or lose what was written."""


def exact_decimal(text: str) -> Decimal:
    """A decimal number exactly as written, or DocumentError."""
    if not _DECIMAL.match(text):
        raise DocumentError(
            f"write numbers out in full, as digits with an optional point: {shown(text)}"
        )
    return Decimal(text.replace("_", ""))


def shown(value: Any, limit: int = 60) -> str:
    """A value for a message, cut short: a hostile value must not make a hostile message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def iso_date(value: Any) -> dt.date | None:
    """A date written YYYY-MM-DD (or already a date), else None."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None

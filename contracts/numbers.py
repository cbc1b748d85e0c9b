"""Reading numbers and dates exactly as written, and quoting values in messages without repeating
them whole.

Pure: a number is digits with an optional point; exponents, infinities and NaN are refused, so
no value can silently grow to hundreds of digits or stop being a number.
"""

from __future__ import annotations

import datetime as dt
import re
import reprlib
from decimal import Decimal
from typing import Any

from rules.values import iso_date

# The grammar's NUMBER with an optional minus: 1_000.50, -0.5; not +1, 1., .5, 1__0 or 0._5.
_DECIMAL = re.compile(r"^-?[0-9](?:_?[0-9])*(?:\.[0-9](?:_?[0-9])*)?$")


class DocumentError(ValueError):
    """A document text Settle refuses to read: it would change or lose what was written."""


def exact_decimal(text: str) -> Decimal:
    """A decimal number exactly as written, or DocumentError."""
    if not _DECIMAL.match(text):
        raise DocumentError(
            f"write numbers out in full, as digits with an optional point: {shown(text)}"
        )
    return Decimal(text.replace("_", ""))


_SHORT = reprlib.Repr()  # keyword arguments to Repr() need Python 3.12
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple = 2, 4, 4, 4
_SHORT.maxstring = _SHORT.maxother = 50


def shown(value: Any, limit: int = 60) -> str:
    """A value for a message, cut short without printing it whole first: a hostile value (a YAML
    "billion laughs") must not make a hostile message, nor a slow one."""
    text = str(value) if isinstance(value, Decimal) else _SHORT.repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def date_value(value: Any) -> dt.date | None:
    """A date written YYYY-MM-DD (or already a date), else None."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    return iso_date(value) if isinstance(value, str) else None

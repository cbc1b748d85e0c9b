"""Typing outcome-event cells: the cheaper checks accept exactly what their patterns say, and rows
that bring their own columns (as JSON rows do) are each typed by their own names."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from outcomes.events import CLAIM_LINE
from outcomes.parse import RowTyper, type_row

COUNT = re.compile(r"^[0-9]{1,9}$")  # what a count is
LOOKALIKES = st.text(alphabet=st.sampled_from("0123456789٣²１ \t-.+e"), max_size=12)


def claim(**cells: str) -> dict[str, str]:
    return {"claim_id": "c1", "claim_line_number": "1", "claim_type": "professional",
            "patient_id": "p1", "paid_amount": "1.00", **cells}  # fmt: skip


@given(LOOKALIKES | st.text(max_size=12))
def test_a_count_is_one_to_nine_ascii_digits_and_nothing_else(text):
    row, problems = type_row(CLAIM_LINE, claim(service_unit_quantity=text), where="t", number=2)
    if COUNT.match(text.strip()):
        assert row is not None and row.values["service_unit_quantity"] == int(text)
    elif text.strip():
        assert row is None and "not a count" in problems[0].format()
    else:
        assert row is not None and row.values["service_unit_quantity"] is None


def test_a_refused_date_is_refused_every_time_it_comes():
    raw = claim(claim_start_date="2018-02-30")
    for _ in range(2):
        row, problems = type_row(CLAIM_LINE, raw, where="t", number=2)
        assert row is None and "not a calendar date" in problems[0].format()


def test_rows_that_bring_their_own_columns_are_each_typed_by_them():
    typer = RowTyper(CLAIM_LINE, where="t")
    names = ("claim_id", "claim_line_number", "claim_type", "patient_id", "paid_amount", "note")
    first, _ = typer.type(1, names, ("c1", "1", "professional", "p1", "2.50", "x"))
    names = ("note", "member_id", *reversed(names[:-1]))
    second, _ = typer.type(2, names, ("", "m2", "3", "p2", "institutional", "2", "c2"))
    assert first is not None and second is not None
    assert first.values["paid_amount"] == Decimal("2.50") and first.values["member_id"] is None
    assert first.extra == {"note": "x"}
    assert (second.values["claim_id"], second.values["member_id"], second.extra) == ("c2", "m2", {})

"""Typing outcome-event cells: the cheaper checks accept exactly what their patterns say, and rows
that bring their own columns (as JSON rows do) are each typed by their own names."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from outcomes.columns import ChunkTyper, extra_text
from outcomes.events import CLAIM_LINE
from outcomes.parse import RowTyper, type_row
from rules.types import DATE, MONEY, SCORE

COUNT = re.compile(r"^[0-9]{1,9}$")  # what a count is
LOOKALIKES = st.text(alphabet=st.sampled_from("0123456789٣²１ \t-.+e"), max_size=12)


def claim(**cells: str) -> dict[str, str]:
    return {"claim_id": "c1", "claim_line_number": "1", "claim_type": "professional",
            "patient_id": "p1", "claim_start_date": "2018-01-05", "paid_amount": "1.00",
            **cells}  # fmt: skip


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
    names = ("claim_id", "claim_line_number", "claim_type", "patient_id", "claim_start_date",
             "paid_amount", "note")  # fmt: skip
    first, _ = typer.type(1, names, ("c1", "1", "professional", "p1", "2018-01-05", "2.50", "x"))
    names = ("note", "member_id", *reversed(names[:-1]))
    second, _ = typer.type(2, names, ("", "m2", "3", "2018-01-06", "p2", "institutional", "2",
                                      "c2"))  # fmt: skip
    assert first is not None and second is not None
    assert first.values["paid_amount"] == Decimal("2.50") and first.values["member_id"] is None
    assert first.extra == {"note": "x"}
    assert (second.values["claim_id"], second.values["member_id"], second.extra) == ("c2", "m2", {})


# The chunk typer (a column at a time) vouches for a chunk only where the row typer would type
# every cell to the same value, and would find no problem.
NAMES = ("claim_id", "claim_line_number", "claim_type", "patient_id", "paid_amount",
         "allowed_amount", "claim_start_date", "claim_status", "note", "code")  # fmt: skip
LOOKALIKE_CELLS = st.text(alphabet=st.sampled_from('0123456789-.:e é"\\\n\t,a'), max_size=14)
VALID = {  # cells of each column's usual shapes
    "claim_line_number": ["1", "12", "0", "123456789", "01"],
    "paid_amount": ["1.00", "-3.5", "0", "99999999999.9999", "-0.0001"],
    "allowed_amount": ["", "2.5", "-0", "123456789012.5"],
    "claim_start_date": ["2018-01-05", "2100-12-31"],
    "claim_status": ["", "original", "void", "replacement"],
}
NEAR = {  # and near misses, some of which the row typer takes (" 2") and the chunk typer leaves
    "claim_line_number": ["1234567890", "1.0", " 2", "-1", "١"],
    "paid_amount": ["1.00001", "1e3", "1,234.00", "12.345.6", " 3", "+1"],
    "claim_start_date": ["2018-02-30", "1800-01-01", "2018-1-05", "2018-01-05 "],
    "claim_status": ["reversed", " void", "VOID"],
}
OTHER = ["c1", "p1", "professional", "", "x" * 200, "é"]
ODD = st.sampled_from(["x" * 201, "a\nb", "\t", '"q"', "\\", " ", ""]) | LOOKALIKE_CELLS
USUAL_ROWS = st.tuples(*[st.sampled_from(VALID.get(name, OTHER)) for name in NAMES])


@st.composite
def chunks(draw):
    """Rows of usual cells, one of them perhaps made a near miss or something odd."""
    rows = [list(row) for row in draw(st.lists(USUAL_ROWS, min_size=1, max_size=4))]
    if draw(st.booleans()):
        row, column = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(NAMES) - 1))
        near = st.sampled_from(NEAR.get(NAMES[column], OTHER))
        rows[row][column] = draw(near | ODD)
    return rows


PLACES = {MONEY: 4, SCORE: 9}


def stored(column_type, value):
    if value is None:
        return None
    if column_type == DATE:
        return value.isoformat()
    if column_type == MONEY:
        return int(value * 10_000)
    return value


@settings(max_examples=300)
@given(chunks())
def test_the_chunk_typer_types_a_chunk_as_the_row_typer_does_or_not_at_all(rows):
    columns = ChunkTyper(CLAIM_LINE, NAMES, places=PLACES).columns(rows)
    typer = RowTyper(CLAIM_LINE, where="t")
    typed = [typer.type(number, NAMES, cells) for number, cells in enumerate(rows, start=2)]
    if columns is None:
        return
    assert all(row is not None for row, _ in typed)
    for column, values in zip(CLAIM_LINE.columns, columns, strict=True):
        assert values == [stored(column.type, row.values[column.name]) for row, _ in typed]


def test_the_chunk_typer_vouches_for_the_usual_shapes():
    rows = [("c1", "1", "professional", "p1", "99999999999.9999", "", "2018-01-05", "", "", "x"),
            ("c2", "2", "institutional", "p2", "-0.5", "2", "2018-01-06", "void", "n", ""),
            ]  # fmt: skip
    assert ChunkTyper(CLAIM_LINE, NAMES, places=PLACES).columns(rows) is not None


@given(chunks())
def test_extras_put_together_as_text_are_the_json_the_encoder_writes(rows):
    chunk_typer = ChunkTyper(CLAIM_LINE, NAMES, places=PLACES)
    plain = not any(c in cell for cells in rows for cell in cells for c in '"\\\n\t')
    encoded = [extra_text({k: v for k, v in (("code", cells[9]), ("note", cells[8])) if v})
               for cells in rows]  # fmt: skip
    assert chunk_typer.extras(rows, plain=False) == encoded
    if plain:
        assert chunk_typer.extras(rows, plain=True) == encoded
    assert all(text is None or json.loads(text) for text in encoded)

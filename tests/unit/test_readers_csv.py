"""The CSV reader reads a chunk of rows at a time; a row's number is the one a person counts
(the header is row 1) whichever chunk it falls in, and so is the number of a row that fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from outcomes.events import CLAIM_LINE
from outcomes.readers import read_chunks, read_rows
from rules.errors import RuleError

HEADER = "claim_id,claim_line_number,claim_type,patient_id,claim_start_date,paid_amount"


def _line(number: int) -> str:
    return f"c{number},1,professional,p1,2018-01-05,1.00"


def _file(tmp_path: Path, body: bytes) -> Path:
    path = tmp_path / "claims.csv"
    path.write_bytes(HEADER.encode() + b"\n" + body)
    return path


def _lines(count: int) -> bytes:
    return "".join(f"{_line(n)}\n" for n in range(2, count + 2)).encode()


def test_rows_keep_their_numbers_across_chunks_and_blank_lines_are_left_out(
    tmp_path: Path,
) -> None:
    path = _file(tmp_path, _lines(9) + b"\n" + _line(12).encode() + b"\n")

    chunks = list(read_chunks(path, CLAIM_LINE, size=4))
    numbers = [number for chunk in chunks for number in chunk[0]]

    assert [len(chunk[0]) for chunk in chunks] == [4, 4, 2]  # the blank line left out
    assert numbers == [*range(2, 11), 12]
    assert [row["claim_id"] for _, row in read_rows(path, CLAIM_LINE)][-1] == "c12"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            _lines(1_200) + b"c1202,1,professional,p\xe9,2018-01-05,1.00\n",
            r"claims.csv:1202: not UTF-8: byte 0xe9",
        ),
        (
            _lines(776) + b"c778,1,professional\n" + _lines(3),
            r"claims.csv:778: has 3 fields, the header has 6",
        ),
        (
            _lines(1_000) + b'c1002,1,professional,"p1,2018-01-05,1.00\n',
            r"claims.csv:1002: not readable as CSV",
        ),
    ],
    ids=["not-utf8", "short-row", "unclosed-quote"],
)
def test_a_row_that_fails_deep_in_the_file_is_named_by_its_number(
    tmp_path: Path, body: bytes, expected: str
) -> None:
    with pytest.raises(RuleError, match=expected):
        for _ in read_chunks(_file(tmp_path, body), CLAIM_LINE, size=500):
            pass


def test_a_header_that_is_not_utf8_is_row_1(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_bytes(b"claim_\xe9d\n" + _lines(2))

    with pytest.raises(RuleError, match=r"claims.csv:1: not UTF-8"):
        list(read_chunks(path, CLAIM_LINE))


def _problem(path: Path) -> str:
    with pytest.raises(RuleError) as raised:
        for _ in read_chunks(path, CLAIM_LINE, size=500):
            pass
    return str(raised.value)


@pytest.mark.parametrize(
    ("body", "first"),
    [
        # the csv module reads a chunk ahead, and decodes a block ahead: the first problem wins
        (_lines(2) + b"c4,1,professional\n" + _lines(2) + b'c7,1,"p\n', ":4: has 3 fields"),
        (_lines(2) + b"c4,1,professional\n" + _lines(395) + b"c400,\xe9\n", ":4: has 3 fields"),
        (
            _lines(2) + b'c4,1,professional,"p"1,2018-01-05,1.00\n' + b"c5,\xe9\n",
            ":4: not readable",
        ),
        (_lines(2) + b",,,\n", ":4: has 4 fields"),  # a row of empty fields is not a blank line
    ],
    ids=[
        "short-row-then-bad-quote",
        "short-row-then-bad-byte",
        "bad-quote-then-bad-byte",
        "empty-fields",
    ],
)
def test_the_first_problem_in_the_file_is_the_one_named(
    tmp_path: Path, body: bytes, first: str
) -> None:
    assert f"claims.csv{first}" in _problem(_file(tmp_path, body))


def test_a_header_that_is_not_csv_is_row_1(tmp_path: Path) -> None:
    path = tmp_path / "claims.csv"
    path.write_bytes(b'"claim_id"x,claim_line_number\n' + _lines(2))

    assert "claims.csv:1: not readable as CSV" in _problem(path)


def test_a_tsv_file_is_read_tab_separated(tmp_path: Path) -> None:
    path = tmp_path / "claims.tsv"
    path.write_text(HEADER.replace(",", "\t") + "\n" + _line(2).replace(",", "\t") + "\n")

    [(number, row)] = read_rows(path, CLAIM_LINE)

    assert (number, row["claim_id"], row["paid_amount"]) == (2, "c2", "1.00")

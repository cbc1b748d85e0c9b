"""What a block's bytes rule out at a glance (so no column is checked for it), and blocks typed
on two threads given back in the file's order. The rows these produce are held to the row path's
in tests/integration/test_fast_csv_load.py."""

from __future__ import annotations

import threading
import time

import pytest

from outcomes import fast_csv
from outcomes.fast_csv import Unvouched, _in_order, _Seen
from outcomes.readers import MAX_LINE


@pytest.mark.parametrize(
    ("lines", "padded"),
    [
        (b"c1,1,p1\nc2,2,p2\n", False),
        (b"c1,1,a note with spaces inside\n", False),  # inside a cell: not padding
        (b" c1,1,p1\n", True),  # the block's first cell
        (b"c1, 1,p1\n", True),
        (b"c1,1 ,p1\n", True),
        (b"c1,1,p1 \n", True),
        (b"c1,1,p1 \r\n", True),
        (b"c1,1,p1\r c2,1,p2\n", True),  # a row ended by a lone carriage return
        (b"c1,1,p1\n c2,1,p2\n", True),
        (b"c1,1,p1 ", True),  # the file's last cell, no line end after it
        (b"c1,1,p\xc3\xa9\n", True),  # not ASCII: the columns' own checks judge it
    ],
)
def test_a_space_next_to_a_delimiter_or_a_line_end_is_seen_as_padding(lines, padded):
    assert _Seen.of(lines, ",").padded is padded


def test_with_tabs_for_delimiter_a_space_next_to_one_is_padding():
    assert _Seen.of(b"c1\t1\tp1\n", "\t").padded is False
    assert _Seen.of(b"c1\t 1\tp1\n", "\t").padded is True
    assert _Seen.of(b"c1, 1\tp1\n", "\t").padded is False  # a comma is a character of a cell


def test_only_lines_surely_under_the_limit_skip_the_cells_length_check():
    short = b"x" * 1_000 + b"\n"
    assert _Seen.of(short * 3_000, ",").long is False
    assert _Seen.of(b"x" * (MAX_LINE + 1) + b"\n", ",").long is True
    # between half the limit and the limit the glance cannot tell: the cells are checked
    assert _Seen.of((b"x" * (MAX_LINE // 2 + 10) + b"\n") * 3, ",").long is True


def test_ascii_is_seen():
    assert _Seen.of(b"a,b\n", ",").ascii is True
    assert _Seen.of("é,b\n".encode(), ",").ascii is False


def test_blocks_worked_on_two_threads_come_back_in_order():
    threads = set()

    def work(block: bytes) -> bytes:
        threads.add(threading.get_ident())
        time.sleep(0.02 if int(block) % 3 == 0 else 0.001)  # some finish before earlier ones
        return block

    blocks = [str(n).encode() for n in range(30)]

    assert list(_in_order(work, iter(blocks))) == blocks
    assert len(threads) == fast_csv.WORKERS


def test_a_block_refused_is_raised_in_its_place_and_the_rest_are_not_given():
    def work(block: bytes) -> bytes:
        if block == b"3":
            raise Unvouched
        return block

    given = []
    with pytest.raises(Unvouched):
        for result in _in_order(work, iter(str(n).encode() for n in range(10))):
            given.append(result)
    assert given == [b"0", b"1", b"2"]

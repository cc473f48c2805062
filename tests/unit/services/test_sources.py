"""Cutting files into chunks of whole rows must not change a single row or line number."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credo.domain.errors import ValidationError
from credo.services.sources import parse_chunk, read_chunks, read_rows

FIELDS = ("a", "b", "c")


def rows_by_chunks(data: bytes, fmt: str, size: int) -> list[tuple[int, object]]:
    chunks = read_chunks(io.BytesIO(data), fmt, FIELDS, chunk_bytes=size)
    return [(r.line, r.fields or r.problem) for c in chunks for r in parse_chunk(c)]


def rows_whole(data: bytes, fmt: str) -> list[tuple[int, object]]:
    return [(r.line, r.fields or r.problem) for r in read_rows(io.BytesIO(data), fmt, FIELDS)]


CSV = b'a,b,c\n1,"two\nlines",3\n4,5,6\n\n7,"say ""hi""",9\n10,"x\n\ny",12\nbad,row\n13,14,15\n'


@pytest.mark.parametrize("size", [1, 2, 5, 7, 13, 64, 1 << 20])
def test_csv_chunks_keep_rows_and_line_numbers_across_quoted_newlines(size: int) -> None:
    got = rows_by_chunks(CSV, "csv", size)
    assert got == rows_whole(CSV, "csv")
    assert [line for line, _ in got] == [2, 4, 6, 7, 10, 11]
    assert got[0][1] == {"a": "1", "b": "two\nlines", "c": "3"}
    assert got[3][1] == {"a": "10", "b": "x\n\ny", "c": "12"}


def test_a_byte_order_mark_and_a_header_only_file() -> None:
    assert rows_by_chunks(b"\xef\xbb\xbfa,b,c\n1,2,3\n", "csv", 4) == [
        (2, {"a": "1", "b": "2", "c": "3"})
    ]
    assert rows_by_chunks(b"a,b,c\n", "csv", 4) == []


def test_an_unknown_column_refuses_the_file_before_any_row() -> None:
    with pytest.raises(ValidationError) as caught:
        list(read_chunks(io.BytesIO(b"a,b,authority\n1,2,3\n"), "csv", FIELDS))
    assert "authority" in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(
        st.one_of(
            st.just(""),
            st.builds(lambda n: f'{{"a": "{n}"}}', st.integers(0, 999)),
            st.just("[1, 2]"),
            st.just("{broken"),
        ),
        max_size=30,
    ),
    size=st.integers(1, 40),
)
def test_json_lines_chunks_equal_reading_the_whole_file(lines: list[str], size: int) -> None:
    data = ("\n".join(lines) + "\n").encode()
    assert rows_by_chunks(data, "jsonl", size) == rows_whole(data, "jsonl")


@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(
        st.tuples(*[st.text(alphabet='ab,"\n x', max_size=6) for _ in range(3)]), max_size=12
    ),
    size=st.integers(1, 50),
)
def test_csv_chunks_equal_reading_the_whole_file(
    cells: list[tuple[str, str, str]], size: int
) -> None:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    writer.writerows(cells)
    data = out.getvalue().encode()
    assert rows_by_chunks(data, "csv", size) == rows_whole(data, "csv")


def test_a_last_row_without_a_newline_is_read() -> None:
    assert rows_by_chunks(b"a,b,c\n1,2,3\n4,5,6", "csv", 3) == [
        (2, {"a": "1", "b": "2", "c": "3"}),
        (3, {"a": "4", "b": "5", "c": "6"}),
    ]
    assert [line for line, _ in rows_by_chunks(b'{"a": "1"}\n{"a": "2"}', "jsonl", 2)] == [1, 2]

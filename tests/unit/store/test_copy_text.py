"""COPY text, as the PostgreSQL import writes it: every value comes back as it went in."""

from __future__ import annotations

import re
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from credo.store.repository import copy_escape, copy_line, copy_unescape

_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def _field(text: str) -> str | None:
    """One field as PostgreSQL's COPY text reader takes it (the escapes credo writes)."""
    if text == "\\N":
        return None
    return re.sub(r"\\[\\tnr]", lambda m: _UNESCAPES[m.group(0)], text)


def test_numbers_dates_booleans_and_nulls_print_plainly() -> None:
    line = copy_line((7, date(2026, 3, 1), True, False, None, "a\tb"))
    assert line == "7\t2026-03-01\tt\tf\t\\N\ta\\tb"


@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=6))
def test_text_survives_the_round_trip(values: list[str | None]) -> None:
    line = copy_line(tuple(values))
    assert "\n" not in line and "\r" not in line
    assert [_field(part) for part in line.split("\t")] == values


@given(st.text())
def test_copy_escape_is_the_line_writers_escape(value: str) -> None:
    assert copy_line((value,)) == copy_escape(value)


@given(st.text())
def test_copy_unescape_reads_back_what_copy_escape_wrote(value: str) -> None:
    assert copy_unescape(copy_escape(value)) == value
    assert copy_unescape(copy_escape(value)) == _field(copy_escape(value))

"""A CSV chunk prepared on the straight path must equal the same chunk prepared row by row
through `validate_record`: the same rows to store, the same refusals, the same COPY text."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credo.demo import example_policy_text
from credo.domain.filing import RECORD_FIELDS, validate_plain, validate_record
from credo.domain.policy_load import load_policy
from credo.services.record_batches import prepare_batch, prepare_csv_chunk, record_copy_line
from credo.services.sources import RawChunk, parse_chunk
from credo.store.repository import copy_line

POLICY = load_policy(example_policy_text())
AUTHORITY = "city-court"
TODAY = date(2026, 1, 1)
FILABLE = sorted(POLICY.filable_by(AUTHORITY))
OTHERS = sorted(set(POLICY.category_by_id) - set(FILABLE))

awkward = st.sampled_from(
    ["", " ", " x", "x ", "a | b", "a|b", "tab\there", "new\nline", "back\\slash", "\u3000x",
     "\u202eflip", "中文", "é", "\x7f", "x" * 65, "x" * 129, "x" * 501, "x" * 2001]
)  # fmt: skip
days = st.dates(date(2019, 1, 1), date(2026, 3, 1)).map(date.isoformat)
# Values a well-kept file holds, field by field (a future day or an unfilable category
# among them), and values that need the careful path.
CLEAN = {
    "reference": st.from_regex(r"R-[0-9]{1,6}", fullmatch=True),
    "subject_id": st.sampled_from(["s-0000001", "s-0000002"]),
    "category": st.one_of(st.sampled_from(FILABLE), st.sampled_from(OTHERS)),
    "decided_on": days,
    "occurred_on": st.one_of(st.just(""), days),
    "legal_basis": st.just("Civil Procedure Law art. 262"),
    "summary": st.sampled_from(["", "A decision", "back\\slash", "中文 é"]),
    "amount": st.one_of(
        st.sampled_from(["", "12.50", "-3", "1e3", "1_000", "nan", "1e20", "abc"]),
        st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    ),
    "evidence_uri": st.sampled_from(["", "https://x.example/1", "urn:doc:7", "not a uri"]),
}
ODD = {
    "decided_on": st.sampled_from(["2025-02-30", "2025-1-1", "2025-01-01 "]),
    "occurred_on": st.sampled_from(["2025-13-01", "yesterday"]),
    "summary": st.text(max_size=20),
    "amount": st.sampled_from(["inf", " 5"]),
}
FIELD_VALUES = {
    name: st.one_of(CLEAN[name], ODD.get(name, awkward), awkward) for name in RECORD_FIELDS
}


@st.composite
def csv_chunks(draw: st.DrawFn) -> RawChunk:
    """A chunk of a CSV file: some of the record's columns in any order, rows of plain and
    awkward values, now and then a row with too few fields or bytes that are not UTF-8."""
    width = draw(st.one_of(st.just(len(RECORD_FIELDS)), st.integers(5, len(RECORD_FIELDS))))
    names = draw(st.permutations(RECORD_FIELDS))[:width]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    data = b""
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["plain"] * 4 + ["mixed"] * 4 + ["short", "bytes"]))
        if kind in ("plain", "mixed"):
            values = CLEAN if kind == "plain" else FIELD_VALUES
            writer.writerow([draw(values[name]) for name in names])
        else:
            data += out.getvalue().encode()
            out.seek(0)
            out.truncate()
            data += b"a,b\n" if kind == "short" else b"\xff" + b",x" * (len(names) - 1) + b"\n"
    data += out.getvalue().encode()
    return RawChunk("csv", tuple(names), data, 2)


@pytest.mark.parametrize("copy_text", [False, True])
@settings(max_examples=300, deadline=None)
@given(chunk=csv_chunks())
def test_a_csv_chunk_prepares_as_its_rows_one_by_one(chunk: RawChunk, copy_text: bool) -> None:
    options = {"policy": POLICY, "authority_id": AUTHORITY, "today": TODAY}
    straight = prepare_csv_chunk(chunk, copy_text=copy_text, **options)  # type: ignore[arg-type]
    careful = prepare_batch(parse_chunk(chunk), copy_text=copy_text, **options)  # type: ignore[arg-type]
    assert straight == careful


@settings(max_examples=500, deadline=None)
@given(values=st.tuples(*(FIELD_VALUES[name] for name in RECORD_FIELDS)))
def test_a_plain_row_validates_as_validate_record_says(values: tuple[str, ...]) -> None:
    plain = validate_plain(
        values, authority_id=AUTHORITY, filable=POLICY.filable_by(AUTHORITY), today=TODAY
    )
    if plain is not None:
        row = dict(zip(RECORD_FIELDS, values, strict=True))
        assert plain == validate_record(row, authority_id=AUTHORITY, policy=POLICY, today=TODAY)


def test_a_clean_row_takes_the_straight_path() -> None:
    values = (
        "R-1", "s-0000001", FILABLE[0], "2025-03-04", "2025-01-02", "Law art. 1",
        "A decision", "12.50", "https://x.example/1",
    )  # fmt: skip
    plain = validate_plain(
        values, authority_id=AUTHORITY, filable=POLICY.filable_by(AUTHORITY), today=TODAY
    )
    assert plain is not None
    assert plain.decided_on == date(2025, 3, 4)
    assert plain.amount is not None and str(plain.amount) == "12.50"


text = st.one_of(st.text(max_size=12), awkward)
text_or_null = st.one_of(st.none(), text)


# A stored row: text, but for the version, the revoked flag and the optional fields' nulls.
STORED = (text, text, st.just(1), text, text, text, text_or_null, text, text, text_or_null)
STORED += (text_or_null, text, text, st.booleans())


@settings(max_examples=500, deadline=None)
@given(row=st.tuples(*STORED))
def test_a_record_copy_line_is_the_generic_copy_line(row: tuple[object, ...]) -> None:
    assert record_copy_line(row) == copy_line(row)

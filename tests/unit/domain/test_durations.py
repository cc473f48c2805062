"""Calendar durations: parsing, the one way they are added (DESIGN 5), and comparison."""

from __future__ import annotations

from datetime import date

import pytest

from credo.domain.durations import Duration, add_months


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.mark.parametrize(
    ("text", "months", "days"),
    [
        ("P2Y", 24, 0),
        ("P3M", 3, 0),
        ("P30D", 0, 30),
        ("P1Y6M", 18, 0),
        ("P2W", 0, 14),
        ("P1Y2M3D", 14, 3),
        ("P0D", 0, 0),
    ],
)
def test_iso_durations_of_years_months_weeks_and_days_parse(text, months, days):
    assert Duration.parse(text) == Duration(months=months, days=days)


@pytest.mark.parametrize(
    "text", ["PT5H", "P1DT5H", "2Y", "", "P", "P1.5Y", "P-1Y", "P1D2Y", "P2X", "1Y", "garbage"]
)
def test_garbage_and_times_of_day_are_refused(text):
    with pytest.raises(ValueError, match="ISO-8601 duration"):
        Duration.parse(text)


def test_a_duration_prints_back_in_its_iso_form():
    assert [str(Duration.parse(t)) for t in ("P2Y", "P1Y6M", "P2W", "P0D", "P18M")] == [
        "P2Y",
        "P1Y6M",
        "P14D",
        "P0D",
        "P1Y6M",
    ]


@pytest.mark.parametrize(
    ("start", "duration", "end"),
    [
        ("2026-01-31", "P1M", "2026-02-28"),
        ("2024-01-31", "P1M", "2024-02-29"),
        ("2026-03-31", "P1M", "2026-04-30"),
        ("2024-02-29", "P1Y", "2025-02-28"),
        ("2024-02-29", "P4Y", "2028-02-29"),
        ("2026-12-15", "P1M", "2027-01-15"),
        ("2026-01-10", "P2Y", "2028-01-10"),
        ("2025-11-30", "P3M", "2026-02-28"),
    ],
)
def test_months_and_years_clamp_to_the_end_of_a_shorter_month(start, duration, end):
    assert Duration.parse(duration).add_to(d(start)) == d(end)


def test_years_and_months_are_added_before_the_days():
    assert Duration.parse("P1M1D").add_to(d("2026-01-31")) == d("2026-03-01")
    # These two tell the orders apart: days first would give Feb 28 and Apr 1.
    assert Duration.parse("P1M1D").add_to(d("2026-01-30")) == d("2026-03-01")
    assert Duration.parse("P1M1D").add_to(d("2026-02-28")) == d("2026-03-29")


def test_days_cross_month_and_year_ends():
    assert Duration.parse("P30D").add_to(d("2025-12-15")) == d("2026-01-14")
    assert Duration.parse("P2W").add_to(d("2024-02-20")) == d("2024-03-05")


def test_add_months_goes_backwards_and_clamps_too():
    assert add_months(d("2026-03-31"), -1) == d("2026-02-28")
    assert add_months(d("2026-01-15"), -1) == d("2025-12-15")


@pytest.mark.parametrize(
    ("longer", "shorter", "exceeds"),
    [
        ("P10Y", "P10Y", False),
        ("P120M", "P10Y", False),
        ("P10Y1D", "P10Y", True),
        ("P10Y1M", "P10Y", True),
        ("P9Y11M", "P10Y", False),
        ("P9Y11M28D", "P10Y", False),
        ("P3653D", "P10Y", True),
        ("P11Y", "P10Y", True),
        ("P10Y", "P11Y", False),
    ],
)
def test_exceeds_compares_calendar_durations_from_every_start(longer, shorter, exceeds):
    assert Duration.parse(longer).exceeds(Duration.parse(shorter)) is exceeds


def test_nine_years_eleven_months_thirty_days_can_outlast_ten_years():
    # From 1 March, 119 months end on 1 February, and 30 days more pass 1 March (Feb has 28).
    nearly = Duration.parse("P9Y11M30D")
    ten = Duration.parse("P10Y")
    assert nearly.add_to(d("2023-03-01")) == d("2033-03-03")
    assert ten.add_to(d("2023-03-01")) == d("2033-03-01")
    assert nearly.exceeds(ten)


def test_3652_days_outlast_ten_years_that_hold_only_one_leap_day():
    # 2100 is not a leap year, so 2097-01-01 .. 2107-01-01 holds one leap day (2104): 3651 days.
    days = Duration.parse("P3652D")
    ten = Duration.parse("P10Y")
    assert days.add_to(d("2097-01-01")) > ten.add_to(d("2097-01-01"))
    assert days.exceeds(ten)

"""ISO-8601 calendar durations (years, months, days) and the one way credo adds them."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

_PATTERN = re.compile(r"^P(?!$)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?$")


@dataclass(frozen=True, slots=True, order=True)
class Duration:
    """A calendar duration: months (years folded in) then days.

    >>> Duration.parse("P1M").add_to(date(2024, 1, 31))
    datetime.date(2024, 2, 29)
    """

    months: int
    days: int

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse `PnYnMnD` (weeks allowed as `nW`); times of day are refused."""
        match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"{text!r} is not an ISO-8601 duration of years, months and days "
                "(e.g. 'P2Y', 'P3M')"
            )
        years, months, weeks, days = (int(g) if g else 0 for g in match.groups())
        return cls(months=years * 12 + months, days=weeks * 7 + days)

    def add_to(self, start: date) -> date:
        """Add the years and months first, clamping to the month's end, then the days."""
        return add_days(add_months(start, self.months), self.days)

    def is_zero(self) -> bool:
        """True for P0D."""
        return self.months == 0 and self.days == 0

    def exceeds(self, other: Duration) -> bool:
        """True when, from some start date, adding self goes past adding other."""
        if self.months != other.months and self.days == other.days == 0:
            return self.months > other.months
        # Month lengths vary, so compare over every start day of a 4-year (leap) cycle,
        # and the non-leap century year 2100 as well.
        starts = [date(2023, 1, 1) + timedelta(days=i) for i in range(4 * 366)]
        starts += [date(2099, 12, 1) + timedelta(days=i) for i in range(120)]
        return any(self.add_to(s) > other.add_to(s) for s in starts)

    def __str__(self) -> str:
        years, months = divmod(self.months, 12)
        text = "P"
        text += f"{years}Y" if years else ""
        text += f"{months}M" if months else ""
        text += f"{self.days}D" if self.days or text == "P" else ""
        return text


def add_months(start: date, months: int) -> date:
    """Add calendar months, clamping the day to the target month's last day."""
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last))


def add_days(start: date, days: int) -> date:
    """Add whole days."""
    return start + timedelta(days=days)

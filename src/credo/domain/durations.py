"""ISO-8601 calendar durations (years, months, days) and the one way credo adds them."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

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
        return _add(start, self.months, self.days)

    def is_zero(self) -> bool:
        """True for P0D."""
        return self.months == 0 and self.days == 0

    def exceeds(self, other: Duration) -> bool:
        """True when, from some start date, adding self goes past adding other.

        Month lengths and leap days vary, so the check runs over start days that cover every
        case: the 1st (standing for days 1-28) and the 28th-31st of every month, in years
        around an ordinary leap cycle, a leap century (2000) and a common century (2100).
        """
        if self.days == other.days:
            return self.months > other.months
        if self.months >= other.months and self.days >= other.days:
            return True
        if self.months <= other.months and self.days <= other.days:
            return False
        for year in (*range(1996, 2005), *range(2092, 2105)):
            for month in range(1, 13):
                last = calendar.monthrange(year, month)[1]
                for day in (1, 28, 29, 30, 31):
                    if day <= last:
                        start = date(year, month, day)
                        if self.add_to(start) > other.add_to(start):
                            return True
        return False

    def __str__(self) -> str:
        years, months = divmod(self.months, 12)
        text = "P"
        text += f"{years}Y" if years else ""
        text += f"{months}M" if months else ""
        text += f"{self.days}D" if self.days or text == "P" else ""
        return text


@lru_cache(maxsize=1 << 16)
def _add(start: date, months: int, days: int) -> date:
    # Cached: a register's records share few distinct (decision day, validity) pairs.
    return add_days(add_months(start, months), days)


def add_months(start: date, months: int) -> date:
    """Add calendar months, clamping the day to the target month's last day."""
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last))


def add_days(start: date, days: int) -> date:
    """Add whole days."""
    return start + timedelta(days=days)

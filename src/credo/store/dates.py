"""Calendar arithmetic in SQL, matching `credo.domain.durations` (month-end clamping)."""

from __future__ import annotations

from credo.domain.durations import Duration


def add_duration_sql(dialect: str, column: str, duration: Duration) -> str:
    """SQL for `column + duration`: months first, clamped to the month's end, then days."""
    months, days = duration.months, duration.days
    if dialect == "postgresql":
        return f"(({column} + make_interval(months => {months}))::date + {days})"
    first = f"date({column}, 'start of month', '+{months} months')"
    last_day = f"CAST(strftime('%d', date({first}, '+1 month', '-1 day')) AS INTEGER)"
    day = f"MIN(CAST(strftime('%d', {column}) AS INTEGER), {last_day})"
    return f"date({first}, '+' || ({day} - 1 + {days}) || ' days')"

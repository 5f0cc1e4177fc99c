"""Six-field NCRONTAB (``{second} {minute} {hour} {day} {month} {day-of-week}``) and TimeSpan schedules.

Semantics follow the NCrontab library used by the Functions timer trigger: ``*``, lists, ranges, ``*/n`` and
``a-b/n`` steps, month and day names; day-of-month and day-of-week must both match; times are UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

# (name, lowest, highest, names that map to lowest + index)
_FIELDS: list[tuple[str, int, int, list[str]]] = [
    ("second", 0, 59, []),
    ("minute", 0, 59, []),
    ("hour", 0, 23, []),
    ("day", 1, 31, []),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 6, _DAY_NAMES),
]

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$")


class ScheduleError(ValueError):
    """A schedule expression that cannot be parsed; the message names the expression and the field."""


def _value(token: str, field: str, low: int, high: int, names: list[str]) -> int:
    upper = token.upper()
    if names and upper[:3] in names and upper.isalpha():
        number = names.index(upper[:3]) + low
    elif token.isdigit():
        number = int(token)
    else:
        raise ScheduleError(f"invalid {field} value {token!r}")
    if field == "day-of-week" and number == 7:
        number = 0  # Sunday may be written 7
    if not low <= number <= high:
        raise ScheduleError(f"{field} value {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, field: str, low: int, high: int, names: list[str]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ScheduleError(f"empty list item in {field} field {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"invalid step {step_text!r} in {field} field")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start = _value(first, field, low, high, names)
            end = _value(last, field, low, high, names)
            if end < start:
                raise ScheduleError(f"range {base!r} runs backwards in {field} field")
        else:
            start = _value(base, field, low, high, names)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed six-field NCRONTAB expression."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    def next_after(self, moment: datetime) -> datetime:
        """Return the first matching time strictly after ``moment`` (same tzinfo, whole seconds)."""
        candidate = moment.replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=366 * 5)
        while candidate < limit:
            if candidate.month not in self.months:
                candidate = _first_of_next_month(candidate)
                continue
            weekday = (candidate.weekday() + 1) % 7  # Python Monday=0 -> cron Sunday=0
            if candidate.day not in self.days or weekday not in self.days_of_week:
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if candidate.minute not in self.minutes:
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
                continue
            if candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise ScheduleError(f"schedule {self.expression!r} never fires")


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule (``hh:mm:ss``): fire every ``interval`` after the previous occurrence."""

    expression: str
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        """Return ``moment`` plus the interval."""
        return moment + self.interval


def _first_of_next_month(moment: datetime) -> datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)


def parse_schedule(expression: str) -> CronSchedule | IntervalSchedule:
    """Parse six-field NCRONTAB or TimeSpan ``[d.]hh:mm[:ss]``; raise ScheduleError if invalid."""
    text = expression.strip()
    span = _TIMESPAN.match(text)
    if span:
        days, hours, minutes, seconds, fraction = span.groups()
        interval = timedelta(
            days=int(days or 0),
            hours=int(hours),
            minutes=int(minutes),
            seconds=int(seconds or 0),
            microseconds=int(((fraction or "0") + "000000")[:6]),
        )
        if interval <= timedelta(0):
            raise ScheduleError(f"TimeSpan schedule {expression!r} must be positive")
        return IntervalSchedule(expression, interval)
    parts = text.split()
    if len(parts) != 6:
        raise ScheduleError(
            f"schedule {expression!r} must have six fields "
            "'{second} {minute} {hour} {day} {month} {day-of-week}' or be a TimeSpan 'hh:mm:ss'"
        )
    try:
        sets = [_parse_field(part, *spec) for part, spec in zip(parts, _FIELDS, strict=True)]
    except ScheduleError as exc:
        raise ScheduleError(f"schedule {expression!r}: {exc}") from exc
    return CronSchedule(text, *sets)

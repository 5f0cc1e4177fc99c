"""NCRONTAB and TimeSpan schedules of the local Functions host timer trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.functions_host.ncrontab import CronSchedule, IntervalSchedule, ScheduleError, parse_schedule


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _cron(expression: str) -> CronSchedule:
    schedule = parse_schedule(expression)
    assert isinstance(schedule, CronSchedule)
    return schedule


def test_every_second_fires_on_the_next_whole_second() -> None:
    assert _cron("*/1 * * * * *").next_after(_at("2026-01-01T10:00:00.250")) == _at("2026-01-01T10:00:01")


def test_every_five_minutes_on_the_minute() -> None:
    schedule = _cron("0 */5 * * * *")
    assert schedule.next_after(_at("2026-01-01T10:03:10")) == _at("2026-01-01T10:05:00")
    assert schedule.next_after(_at("2026-01-01T10:55:00")) == _at("2026-01-01T11:00:00")


def test_lists_and_ranges() -> None:
    schedule = _cron("30 15 9-10,14 * * *")
    assert schedule.next_after(_at("2026-01-01T10:15:30")) == _at("2026-01-01T14:15:30")
    assert schedule.next_after(_at("2026-01-01T14:15:30")) == _at("2026-01-02T09:15:30")


def test_range_with_step() -> None:
    assert _cron("0 0 8-18/4 * * *").hours == frozenset({8, 12, 16})


def test_day_of_week_names_and_numbers_both_restrict_days() -> None:
    # 2026-01-01 is a Thursday; Monday-Friday at 09:30:00.
    schedule = _cron("0 30 9 * * MON-FRI")
    assert schedule.next_after(_at("2026-01-02T10:00:00")) == _at("2026-01-05T09:30:00")
    assert _cron("0 30 9 * * 1-5").days_of_week == schedule.days_of_week


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    # The 13th that is a Friday: 2026-02-13.
    assert _cron("0 0 0 13 * FRI").next_after(_at("2026-01-01T00:00:00")) == _at("2026-02-13T00:00:00")


def test_month_names_and_year_rollover() -> None:
    assert _cron("0 0 12 1 Jan *").next_after(_at("2026-03-01T00:00:00")) == _at("2027-01-01T12:00:00")


def test_sunday_may_be_written_seven() -> None:
    assert _cron("0 0 0 * * 7").days_of_week == frozenset({0})


def test_timespan_schedule_is_an_interval() -> None:
    schedule = parse_schedule("00:00:30")
    assert isinstance(schedule, IntervalSchedule)
    assert schedule.next_after(_at("2026-01-01T00:00:00")) == _at("2026-01-01T00:00:30")
    assert parse_schedule("1.02:00:00").next_after(_at("2026-01-01T00:00:00")) == _at("2026-01-02T02:00:00")


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "60 * * * * *",
        "* * 24 * * *",
        "* * * 0 * *",
        "*/0 * * * * *",
        "5-1 * * * * *",
        "a * * * * *",
        "",
    ],
)
def test_invalid_expressions_are_rejected_with_the_expression_named(expression: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(expression)
    assert repr(expression) in str(caught.value)


def test_impossible_date_never_fires() -> None:
    with pytest.raises(ScheduleError):
        _cron("0 0 0 31 2 *").next_after(_at("2026-01-01T00:00:00"))


def test_next_is_strictly_after() -> None:
    moment = _at("2026-01-01T10:00:00")
    assert _cron("0 0 10 * * *").next_after(moment) == moment + timedelta(days=1)

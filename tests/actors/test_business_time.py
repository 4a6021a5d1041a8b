"""Business-hours arithmetic of the SLA clocks."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from actors.config import BusinessHours
from actors.sla.business_time import BusinessCalendar, SlaTargets

HOURS = BusinessHours(timezone="Europe/Berlin", start_hour=9, end_hour=17)
# Wednesday 2026-11-25; Berlin is UTC+1 in November.


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def test_within_one_day() -> None:
    cal = BusinessCalendar(HOURS)
    assert cal.add(utc(2026, 11, 25, 9, 0), 60) == utc(2026, 11, 25, 10, 0)  # 10:00 -> 11:00 local


def test_rolls_over_the_night_and_the_weekend() -> None:
    cal = BusinessCalendar(HOURS)
    friday_1530_local = utc(2026, 11, 27, 14, 30)
    # 90 minutes left on Friday, 30 more on Monday from 09:00 local (08:00 UTC).
    assert cal.add(friday_1530_local, 120) == utc(2026, 11, 30, 8, 30)


def test_starts_at_opening_when_opened_at_night() -> None:
    cal = BusinessCalendar(HOURS)
    assert cal.add(utc(2026, 11, 25, 22, 0), 30) == utc(2026, 11, 26, 8, 30)


def test_skips_holidays() -> None:
    cal = BusinessCalendar(HOURS, {date(2026, 12, 25)})
    thursday_1630_local = utc(2026, 12, 24, 15, 30)
    assert cal.add(thursday_1630_local, 60) == utc(2026, 12, 28, 8, 30)  # Fri holiday, weekend


def test_minutes_between_counts_only_business_time() -> None:
    cal = BusinessCalendar(HOURS)
    # Friday 16:00-17:00 local and Monday 09:00-10:00 local.
    assert cal.minutes_between(utc(2026, 11, 27, 15, 0), utc(2026, 11, 30, 9, 0)) == 120
    assert cal.minutes_between(utc(2026, 11, 25, 12, 0), utc(2026, 11, 25, 11, 0)) == 0


def test_round_the_clock_policy_uses_wall_time() -> None:
    targets = SlaTargets(BusinessCalendar(HOURS), first_response_minutes=30,
                         resolution_minutes=240, business_hours=False, warn_percent=80)  # fmt: skip
    first, resolve = targets.due(utc(2026, 11, 28, 23, 50))  # Saturday night
    assert first == utc(2026, 11, 29, 0, 20) and resolve == utc(2026, 11, 29, 3, 50)
    assert targets.warn_at(utc(2026, 11, 28, 0, 0), utc(2026, 11, 28, 1, 40)) == utc(
        2026, 11, 28, 1, 20
    )


def test_a_calendar_without_hours_is_refused() -> None:
    with pytest.raises(ValueError):
        BusinessCalendar(BusinessHours(start_hour=9, end_hour=9))
    cal = BusinessCalendar(BusinessHours(weekdays=()))
    with pytest.raises(ValueError, match="no working hours"):
        cal.add(utc(2026, 11, 25, 9, 0), 10)

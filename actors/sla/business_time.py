"""Business-hours arithmetic for SLA due times: weekly hours, a time zone, and holidays."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from actors.config import BusinessHours


class BusinessCalendar:
    """Adds and measures business minutes. 24x7 policies use plain wall time instead."""

    def __init__(self, hours: BusinessHours, holidays: set[dt.date] | None = None) -> None:
        if hours.end_hour <= hours.start_hour:
            raise ValueError("business hours must end after they start")
        self.hours = hours
        self.tz = ZoneInfo(hours.timezone)
        self.holidays = holidays or set()

    def _is_working_day(self, day: dt.date) -> bool:
        return day.weekday() in self.hours.weekdays and day not in self.holidays

    def _window(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        start = dt.datetime.combine(day, dt.time(self.hours.start_hour), self.tz)
        end = (
            dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), self.tz)
            if self.hours.end_hour == 24
            else dt.datetime.combine(day, dt.time(self.hours.end_hour), self.tz)
        )
        return start, end

    def add(self, start: dt.datetime, minutes: float) -> dt.datetime:
        """The moment `minutes` business minutes after `start` (UTC in, UTC out)."""
        remaining = dt.timedelta(minutes=minutes)
        local = start.astimezone(self.tz)
        day = local.date()
        for _ in range(3660):  # ten years of days: a calendar with no working day fails loudly
            if self._is_working_day(day):
                open_, close = self._window(day)
                cursor = max(local, open_)
                if cursor < close:
                    available = close - cursor
                    if remaining <= available:
                        return (cursor + remaining).astimezone(dt.UTC)
                    remaining -= available
            day += dt.timedelta(days=1)
            local = dt.datetime.combine(day, dt.time(0), self.tz)
        raise ValueError("the business calendar has no working hours")

    def minutes_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Business minutes from `start` to `end` (0 when end is not after start)."""
        if end <= start:
            return 0.0
        total = dt.timedelta()
        local_start, local_end = start.astimezone(self.tz), end.astimezone(self.tz)
        day = local_start.date()
        while day <= local_end.date():
            if self._is_working_day(day):
                open_, close = self._window(day)
                lo, hi = max(open_, local_start), min(close, local_end)
                if hi > lo:
                    total += hi - lo
            day += dt.timedelta(days=1)
        return total.total_seconds() / 60


class SlaTargets:
    """Due times for one priority: business-hours or 24x7."""

    def __init__(
        self,
        calendar: BusinessCalendar,
        *,
        first_response_minutes: int,
        resolution_minutes: int,
        business_hours: bool,
        warn_percent: int,
    ) -> None:
        self.calendar = calendar
        self.first_response_minutes = first_response_minutes
        self.resolution_minutes = resolution_minutes
        self.business_hours = business_hours
        self.warn_percent = warn_percent

    def add(self, start: dt.datetime, minutes: float) -> dt.datetime:
        if self.business_hours:
            return self.calendar.add(start, minutes)
        return start + dt.timedelta(minutes=minutes)

    def elapsed(self, start: dt.datetime, end: dt.datetime) -> float:
        if self.business_hours:
            return self.calendar.minutes_between(start, end)
        return max(0.0, (end - start).total_seconds() / 60)

    def due(self, start: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """(first response due, resolution due) for a ticket opened at `start`."""
        return self.add(start, self.first_response_minutes), self.add(
            start, self.resolution_minutes
        )

    def warn_at(self, start: dt.datetime, due: dt.datetime) -> dt.datetime:
        """When to warn: after `warn_percent` of the time from start to due has gone."""
        return start + (due - start) * (self.warn_percent / 100)

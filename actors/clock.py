"""Clocks the SLA timers run on: the system's, or one that tests can move forward."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from store.models.base import utcnow

Clock = Callable[[], datetime]  # what the rules take: a function answering the time


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    def advance(self, seconds: float) -> None:
        raise RuntimeError("the system clock can not be moved; deploy with an offset clock")

    def reset(self) -> None:
        raise RuntimeError("the system clock can not be moved; deploy with an offset clock")


class OffsetClock(SystemClock):
    """System time plus an offset that only grows: lets a test jump hours ahead."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self.offset += timedelta(seconds=seconds)

    def reset(self) -> None:
        """Back to system time (between tests)."""
        self.offset = timedelta()

"""SLA policies and holidays."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from store.models import Holiday, SlaPolicy
from store.repositories.base import Repository


class SlaRepository(Repository):
    def policies(self) -> dict[str, SlaPolicy]:
        return {p.priority: p for p in self.session.scalars(select(SlaPolicy))}

    def upsert_policy(
        self,
        priority: str,
        *,
        first_response_minutes: int,
        resolution_minutes: int,
        business_hours: bool = True,
        warn_percent: int = 80,
    ) -> SlaPolicy:
        row = self.session.scalar(select(SlaPolicy).where(SlaPolicy.priority == priority))
        if row is None:
            row = SlaPolicy(priority=priority)
            self.session.add(row)
        row.first_response_minutes = first_response_minutes
        row.resolution_minutes = resolution_minutes
        row.business_hours = business_hours
        row.warn_percent = warn_percent
        self.session.flush()
        return row

    def holidays(self) -> set[dt.date]:
        return set(self.session.scalars(select(Holiday.day)))

    def add_holiday(self, day: dt.date, name: str) -> Holiday:
        row = Holiday(day=day, name=name)
        self.session.add(row)
        self.session.flush()
        return row

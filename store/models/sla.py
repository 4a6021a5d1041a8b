"""SLA policy per priority, and the holidays that business-hours clocks skip."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, IdMixin, check_in
from store.models.enums import Priority, values


class SlaPolicy(IdMixin, Base):
    __tablename__ = "sla_policies"
    __table_args__ = (
        CheckConstraint(check_in("priority", values(Priority)), name="priority"),
        CheckConstraint("first_response_minutes > 0", name="first_response_minutes"),
        CheckConstraint("resolution_minutes >= first_response_minutes", name="resolution_minutes"),
        CheckConstraint("warn_percent BETWEEN 1 AND 99", name="warn_percent"),
    )

    priority: Mapped[str] = mapped_column(String(16), unique=True)
    first_response_minutes: Mapped[int] = mapped_column()
    resolution_minutes: Mapped[int] = mapped_column()
    business_hours: Mapped[bool] = mapped_column(default=True)  # False: the clock runs 24x7
    warn_percent: Mapped[int] = mapped_column(default=80)


class Holiday(IdMixin, Base):
    __tablename__ = "holidays"

    day: Mapped[dt.date] = mapped_column(unique=True)
    name: Mapped[str] = mapped_column(String(100))

"""The transactional outbox: written in the same transaction as the change it announces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, CreatedMixin, IdMixin


class OutboxEvent(IdMixin, CreatedMixin, Base):
    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_events_unpublished", "published_at", "id"),)

    topic: Mapped[str] = mapped_column(String(64))  # ticket.assigned, change.queued, ...
    account_id: Mapped[int | None] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    published_at: Mapped[datetime | None] = mapped_column()

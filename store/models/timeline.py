"""The account activity timeline: every message, state change and infrastructure change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, CreatedMixin, IdMixin, check_in
from store.models.enums import Visibility, values


class TimelineEntry(IdMixin, CreatedMixin, Base):
    """One line of an account's feed. Ordered by id: ids grow with commit order per writer."""

    __tablename__ = "timeline_entries"
    __table_args__ = (
        CheckConstraint(check_in("visibility", values(Visibility)), name="visibility"),
        Index("ix_timeline_entries_account_id_id", "account_id", "id"),
    )

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(48))  # ticket.created, message.added, change.applied
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tickets.id"))
    change_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("change_requests.id"))
    actor: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.public.value)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

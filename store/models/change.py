"""Change requests to the infrastructure, and each attempt GDCAS made at them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, CreatedMixin, IdMixin, check_in, utcnow
from store.models.enums import AttemptOutcome, ChangeStatus, values


class ChangeRequest(CreatedMixin, Base):
    """A change asked for by a customer, an agent or a batch job. The id travels to the host."""

    __tablename__ = "change_requests"
    __table_args__ = (
        CheckConstraint(check_in("status", values(ChangeStatus)), name="status"),
        Index("ix_change_requests_account_id_created_at", "account_id", "created_at"),
        Index("ix_change_requests_host_id_status", "host_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # UUID
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="RESTRICT"))
    service_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("services.id"))
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tickets.id"))
    host_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("managed_hosts.id"))
    kind: Mapped[str] = mapped_column(String(48))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=ChangeStatus.queued.value)
    source: Mapped[str] = mapped_column(String(16))  # portal, agent, batch, api
    requested_by_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    applied_at: Mapped[datetime | None] = mapped_column()


class ChangeAttempt(IdMixin, Base):
    __tablename__ = "change_attempts"
    __table_args__ = (
        CheckConstraint(check_in("outcome", values(AttemptOutcome)), name="outcome"),
        UniqueConstraint("change_id", "attempt", name="uq_change_attempts_change_id_attempt"),
    )

    change_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("change_requests.id", ondelete="CASCADE")
    )
    attempt: Mapped[int] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16))
    output: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)

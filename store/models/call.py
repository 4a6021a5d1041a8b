"""Phone calls: logged by an agent or reported by the telephony provider's webhook."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, CreatedMixin, IdMixin, check_in
from store.models.enums import CallDirection, CallStatus, values


class Call(IdMixin, CreatedMixin, Base):
    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(check_in("direction", values(CallDirection)), name="direction"),
        CheckConstraint(check_in("status", values(CallStatus)), name="status"),
        CheckConstraint("duration_seconds IS NULL OR duration_seconds >= 0", name="duration"),
        Index("ix_calls_caller", "caller_number"),
        Index("ix_calls_account_id_started_at", "account_id", "started_at"),
    )

    # The provider's id of the call (webhook events), unique: a repeated event is one call.
    provider_call_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    direction: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=CallStatus.ended.value)
    caller_number: Mapped[str] = mapped_column(String(32))  # E.164
    callee_number: Mapped[str | None] = mapped_column(String(32))  # E.164
    account_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("accounts.id"))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id"))
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tickets.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("agents.id"))
    message_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("messages.id"))
    started_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str] = mapped_column(Text, default="")

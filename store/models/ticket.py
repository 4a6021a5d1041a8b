"""Trouble tickets, every message on them (each communication instance) and their events."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.models.base import Base, BigId, CreatedMixin, IdMixin, check_in, utcnow
from store.models.enums import Channel, Direction, Priority, TicketStatus, Visibility, values

TICKET_NUMBER_RE = re.compile(r"TT-([0-9]{6,18})", re.ASCII)  # ASCII digits, whole string


def ticket_number(ticket_id: int) -> str:
    """The human number of a ticket: TT-000123."""
    return f"TT-{ticket_id:06d}"


def ticket_id_from_number(number: str) -> int | None:
    """The id behind a human number, or None when it is not one."""
    m = TICKET_NUMBER_RE.fullmatch(number.strip().upper())
    return int(m.group(1)) if m else None


class Ticket(IdMixin, CreatedMixin, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint(check_in("status", values(TicketStatus)), name="status"),
        CheckConstraint(check_in("priority", values(Priority)), name="priority"),
        CheckConstraint(check_in("channel", values(Channel)), name="channel"),
        CheckConstraint("tier BETWEEN 1 AND 3", name="tier"),
        CheckConstraint("status <> 'open' OR owner_agent_id IS NOT NULL", name="open_is_owned"),
        CheckConstraint("message_count >= 0", name="message_count"),
        Index("ix_tickets_queue", "tier", "status", "created_at"),
        Index("ix_tickets_account_id_created_at", "account_id", "created_at"),
        Index("ix_tickets_owner_agent_id_status", "owner_agent_id", "status"),
    )

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id", ondelete="RESTRICT"))
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id"))
    requester_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    subject: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(32), default="general")
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), default=TicketStatus.new.value)
    priority: Mapped[str] = mapped_column(String(16), default=Priority.normal.value)
    tier: Mapped[int] = mapped_column(default=1)
    owner_agent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("agents.id"))

    first_response_due: Mapped[datetime | None] = mapped_column()
    resolution_due: Mapped[datetime | None] = mapped_column()
    first_responded_at: Mapped[datetime | None] = mapped_column()
    sla_paused_at: Mapped[datetime | None] = mapped_column()
    sla_warned_at: Mapped[datetime | None] = mapped_column()
    sla_breached_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    message_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    @property
    def number(self) -> str:
        return ticket_number(self.id)


class Message(IdMixin, CreatedMixin, Base):
    """One communication instance on a ticket: an email, a portal post, a logged call, a note."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint(check_in("direction", values(Direction)), name="direction"),
        CheckConstraint(check_in("visibility", values(Visibility)), name="visibility"),
        CheckConstraint(check_in("channel", values(Channel)), name="channel"),
        CheckConstraint(
            "visibility = 'internal' OR direction <> 'internal'", name="internal_is_private"
        ),
        Index("ix_messages_ticket_id_id", "ticket_id", "id"),
    )

    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.public.value)
    author_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    author_name: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    email_message_id: Mapped[str | None] = mapped_column(String(998), unique=True)
    # The received mail this message is (its raw bytes stay there), at most one message each.
    inbound_mail_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("inbound_mails.id"), unique=True
    )
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)

    attachments: Mapped[list[Attachment]] = relationship(lazy="raise")


class Attachment(IdMixin, CreatedMixin, Base):
    __tablename__ = "attachments"
    __table_args__ = (CheckConstraint("size >= 0", name="size"),)

    message_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class TicketEvent(IdMixin, CreatedMixin, Base):
    """A state change of a ticket: created, assigned, escalated, resolved, SLA warning, ..."""

    __tablename__ = "ticket_events"
    __table_args__ = (Index("ix_ticket_events_ticket_id_id", "ticket_id", "id"),)

    ticket_id: Mapped[int] = mapped_column(BigId, ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    actor_user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.public.value)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

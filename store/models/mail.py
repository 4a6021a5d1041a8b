"""E-mail: every received message as it came (raw bytes and what became of it), the mails the
desk sends (one row per recipient of an outbox event, rendered once, sent at most once per
relay answer), and the addresses that bounced for good."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models.base import Base, BigId, CreatedMixin, IdMixin, JsonDoc, check_in
from store.models.enums import DeliveryStatus, InboundStatus, MailKind, values


class InboundMail(IdMixin, CreatedMixin, Base):
    """One message received by the SMTP intake, kept byte for byte (staff may download it).

    `dedupe_key` is its Message-ID, or the SHA-256 of its bytes when it has none: the same
    message delivered twice (an MTA's retry, a duplicate send) is stored once."""

    __tablename__ = "inbound_mails"
    __table_args__ = (
        CheckConstraint(check_in("status", values(InboundStatus)), name="status"),
        Index("ix_inbound_mails_status_id", "status", "id"),
        Index("ix_inbound_mails_contact_id", "contact_id"),
    )

    dedupe_key: Mapped[str] = mapped_column(String(1000), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998))
    envelope_from: Mapped[str] = mapped_column(String(320))  # "" for the null return path
    envelope_to: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    from_address: Mapped[str | None] = mapped_column(String(320))  # canonical, of From
    subject: Mapped[str] = mapped_column(String(300), default="")
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(24), default=InboundStatus.received.value)
    # Why it went where it went (threading's reason, a loop or bounce finding), for people.
    detail: Mapped[str] = mapped_column(Text, default="")
    flags: Mapped[dict[str, Any]] = mapped_column(default=dict)  # defects, loop, bounce
    category: Mapped[str | None] = mapped_column(String(32))  # from the recipient address
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tickets.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("contacts.id"))
    processed_at: Mapped[datetime | None] = mapped_column()


class MailDelivery(IdMixin, CreatedMixin, Base):
    """One mail the desk sends: to one recipient, about one outbox event (or an auto-reply to
    one received mail). Rendered once when planned, so a retry sends the same bytes with the
    same signed Message-ID; marked sent only after the relay's answer is recorded."""

    __tablename__ = "mail_deliveries"
    __table_args__ = (
        CheckConstraint(check_in("status", values(DeliveryStatus)), name="status"),
        CheckConstraint(check_in("kind", values(MailKind)), name="kind"),
        Index("ix_mail_deliveries_due", "status", "next_attempt_at"),
        Index("ix_mail_deliveries_recipient_created", "recipient", "created_at"),
    )

    # What it is about; with the recipient, what makes it this mail and no other.
    source: Mapped[str] = mapped_column(String(64), unique=True)  # outbox:42:to:hash, ...
    outbox_event_id: Mapped[int | None] = mapped_column(BigId)
    ticket_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    recipient: Mapped[str] = mapped_column(String(320))
    # One mail to several recipients (an escalation to a tier's agents) has one Message-ID.
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.queued.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_answer: Mapped[str] = mapped_column(Text, default="")  # the relay's last reply
    sent_at: Mapped[datetime | None] = mapped_column()


class MailSuppression(IdMixin, CreatedMixin, Base):
    """An address mail must not go to: it bounced permanently (5.x.x)."""

    __tablename__ = "mail_suppressions"

    address: Mapped[str] = mapped_column(String(320), unique=True)  # canonical
    status_code: Mapped[str | None] = mapped_column(String(16))
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    inbound_mail_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("inbound_mails.id"))

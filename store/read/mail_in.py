"""What staff read of received mail: the list, one mail parsed again, its raw bytes; and a
ticket's attachment for whoever may see its message."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from store.db import Database
from store.models import Attachment, Contact, InboundMail, Message
from store.models.ticket import ticket_number
from store.repositories import InboundMailRepository

R = TypeVar("R")
T = TypeVar("T")


class InboundMailRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str
    message_id: str | None
    envelope_from: str
    envelope_to: list[str]
    from_address: str | None
    subject: str
    size: int
    sha256: str
    category: str | None
    detail: str
    flags: dict[str, Any]
    ticket_number: str | None = None
    contact_id: int | None
    created_at: datetime
    processed_at: datetime | None


class SenderRead(BaseModel):
    """A contact on no account yet: someone who wrote in and waits to be linked."""

    id: int
    name: str
    email: str
    held_mails: int


class AttachmentFile(BaseModel):
    filename: str
    content_type: str
    content: bytes


def page_of(rows: Sequence[R], limit: int, read: Callable[[R], T]) -> tuple[list[T], int | None]:
    """A page of rows fetched `limit + 1` at a time: the first `limit` read, and the cursor
    to continue after (the last one's id) when there are more."""
    page = rows[:limit]
    more = len(rows) > limit and bool(page)
    return [read(r) for r in page], (page[-1].id if more else None)  # type: ignore[attr-defined]


def _read(row: InboundMail) -> InboundMailRead:
    out = InboundMailRead.model_validate(row)
    out.ticket_number = ticket_number(row.ticket_id) if row.ticket_id else None
    return out


class InboundMailReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def listing(
        self, *, status: str | None, before: int | None, limit: int
    ) -> tuple[list[InboundMailRead], int | None]:
        with self.db.read() as s:
            rows = InboundMailRepository(s).listing(status=status, before=before, limit=limit + 1)
            return page_of(rows, limit, _read)

    def one(self, inbound_id: int) -> tuple[InboundMailRead, bytes] | None:
        with self.db.read() as s:
            row = InboundMailRepository(s).get(inbound_id)
            return (_read(row), bytes(row.raw)) if row is not None else None

    def waiting_senders(self, limit: int = 100) -> list[SenderRead]:
        with self.db.read() as s:
            contacts = s.scalars(
                select(Contact).where(Contact.account_id.is_(None)).order_by(Contact.id.desc())
            ).all()[:limit]
            out = []
            for c in contacts:
                held = InboundMailRepository(s).held_for(c.id)
                out.append(SenderRead(id=c.id, name=c.name, email=c.email, held_mails=len(held)))
            return out

    def attachment(
        self, ticket_id: int, attachment_id: int, *, include_internal: bool
    ) -> AttachmentFile | None:
        """An attachment of a message of this ticket; None when there is none the reader may
        see (another ticket's, or an internal message's for a customer)."""
        with self.db.read() as s:
            row = s.execute(
                select(Attachment, Message.visibility)
                .join(Message, Message.id == Attachment.message_id)
                .where(Attachment.id == attachment_id, Message.ticket_id == ticket_id)
            ).first()
            if row is None or (row[1] != "public" and not include_internal):
                return None
            a = row[0]
            return AttachmentFile(
                filename=a.filename, content_type=a.content_type, content=bytes(a.content)
            )

"""What admins read of the desk's outgoing mail ("sent mail"): the list, one mail with its
text, its raw bytes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from store.db import Database
from store.models import MailDelivery
from store.models.enums import DeliveryStatus
from store.models.ticket import ticket_number
from store.read.mail_in import page_of
from store.repositories.delivery import DeliveryRepository


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    status: str
    recipient: str
    subject: str
    message_id: str
    ticket_number: str | None = None
    outbox_event_id: int | None
    attempts: int
    next_attempt_at: datetime | None
    last_answer: str
    created_at: datetime
    sent_at: datetime | None


def _read(row: MailDelivery) -> DeliveryRead:
    out = DeliveryRead.model_validate(row)
    out.ticket_number = ticket_number(row.ticket_id) if row.ticket_id else None
    return out


class DeliveryReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def listing(
        self,
        *,
        status: DeliveryStatus | None,
        recipient: str | None,
        ticket_id: int | None,
        before: int | None,
        limit: int,
    ) -> tuple[list[DeliveryRead], int | None]:
        with self.db.read() as s:
            rows = DeliveryRepository(s).listing(
                status=status, recipient=recipient, ticket_id=ticket_id, before_id=before,
                limit=limit + 1,
            )  # fmt: skip
            return page_of(rows, limit, _read)

    def one(self, delivery_id: int) -> tuple[DeliveryRead, bytes] | None:
        with self.db.read() as s:
            row = DeliveryRepository(s).get(delivery_id)
            return (_read(row), bytes(row.raw)) if row is not None else None

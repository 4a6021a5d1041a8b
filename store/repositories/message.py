"""Writes and queries of a ticket's messages and their attachments."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import selectinload

from store.models import Attachment, Message, Ticket
from store.repositories.base import Repository

# The core table for the multi-row statements of the intake path (no ORM unit of work).
MESSAGES = cast(Table, Message.__table__)


@dataclass(frozen=True)
class NewAttachment:
    filename: str
    content_type: str
    content: bytes


class MessageRepository(Repository):
    """A ticket's messages; adding one counts it on the ticket."""

    def add_message(
        self,
        ticket: Ticket,
        *,
        direction: str,
        channel: str,
        body: str,
        author_name: str,
        author_user_id: int | None = None,
        visibility: str = "public",
        headers: dict[str, Any] | None = None,
        email_message_id: str | None = None,
        attachments: list[NewAttachment] | None = None,
        inbound_mail_id: int | None = None,
    ) -> Message:
        msg = Message(
            ticket_id=ticket.id,
            direction=direction,
            channel=channel,
            visibility=visibility,
            author_user_id=author_user_id,
            author_name=author_name,
            body=body,
            headers=headers or {},
            email_message_id=email_message_id,
            inbound_mail_id=inbound_mail_id,
        )
        self.session.add(msg)
        self.session.flush()
        self.add_attachments(msg.id, attachments or [])
        # An atomic increment: concurrent writers never lose a count.
        self.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(message_count=Ticket.message_count + 1)
            .execution_options(synchronize_session=False)
        )
        return msg

    def add_attachments(self, message_id: int, attachments: list[NewAttachment]) -> None:
        for a in attachments:
            self.session.add(
                Attachment(
                    message_id=message_id,
                    filename=a.filename,
                    content_type=a.content_type,
                    size=len(a.content),
                    sha256=hashlib.sha256(a.content).hexdigest(),
                    content=a.content,
                )
            )
        if attachments:
            self.session.flush()

    def first_message_ids(self, ticket_ids: list[int]) -> dict[int, int]:
        """The first message of each ticket, by ticket id, in one query."""
        q = (
            select(Message.ticket_id, func.min(Message.id))
            .where(Message.ticket_id.in_(ticket_ids))
            .group_by(Message.ticket_id)
        )
        return {ticket_id: message_id for ticket_id, message_id in self.session.execute(q)}

    def messages(self, ticket_id: int, *, include_internal: bool) -> list[Message]:
        q = (
            select(Message)
            .where(Message.ticket_id == ticket_id)
            # The files' names and sizes only: their bytes are for the download alone.
            .options(selectinload(Message.attachments).defer(Attachment.content, raiseload=True))
        )
        if not include_internal:
            q = q.where(Message.visibility == "public")
        return list(self.session.scalars(q.order_by(Message.id)))

    def message_by_email_id(self, email_message_id: str) -> Message | None:
        return self.session.scalar(
            select(Message).where(Message.email_message_id == email_message_id)
        )

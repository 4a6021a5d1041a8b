"""Queries on tickets, their messages and events."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import selectinload

from store.errors import NotFoundError
from store.models import Attachment, Message, Ticket, TicketEvent
from store.models.ticket import ticket_id_from_number
from store.repositories.base import Repository
from store.repositories.timeline import TimelineRepository

OPEN_STATUSES = ("new", "open", "pending_customer", "pending_change")
PRIORITY_RANK = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


@dataclass(frozen=True)
class NewAttachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class TicketFilter:
    status: tuple[str, ...] = ()
    tier: int | None = None
    owner_agent_id: int | None = None
    account_id: int | None = None
    unowned: bool = False


class TicketRepository(Repository):
    def create(
        self,
        *,
        account_id: int,
        subject: str,
        channel: str,
        category: str = "general",
        priority: str = "normal",
        tier: int = 1,
        contact_id: int | None = None,
        requester_user_id: int | None = None,
        first_response_due: datetime | None = None,
        resolution_due: datetime | None = None,
    ) -> Ticket:
        ticket = Ticket(
            account_id=account_id,
            subject=subject,
            channel=channel,
            category=category,
            priority=priority,
            tier=tier,
            contact_id=contact_id,
            requester_user_id=requester_user_id,
            first_response_due=first_response_due,
            resolution_due=resolution_due,
        )
        self.session.add(ticket)
        self.session.flush()
        return ticket

    def get(self, ticket_id: int) -> Ticket:
        return self._get(Ticket, ticket_id, "ticket")

    def find(self, ticket_id: int) -> Ticket | None:
        return self.session.get(Ticket, ticket_id)

    def lock(self, ticket_id: int) -> Ticket:
        """Load a ticket for update (row lock on PostgreSQL; SQLite writers already serialise)."""
        row = self.session.scalar(select(Ticket).where(Ticket.id == ticket_id).with_for_update())
        if row is None:
            raise NotFoundError("ticket", ticket_id)
        return row

    def by_number(self, number: str) -> Ticket | None:
        ticket_id = ticket_id_from_number(number)
        return self.find(ticket_id) if ticket_id is not None else None

    def search(
        self, flt: TicketFilter, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[Ticket], int]:
        q = select(Ticket)
        if flt.status:
            q = q.where(Ticket.status.in_(flt.status))
        if flt.tier is not None:
            q = q.where(Ticket.tier == flt.tier)
        if flt.owner_agent_id is not None:
            q = q.where(Ticket.owner_agent_id == flt.owner_agent_id)
        if flt.unowned:
            q = q.where(Ticket.owner_agent_id.is_(None))
        if flt.account_id is not None:
            q = q.where(Ticket.account_id == flt.account_id)
        total = self.session.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = self.session.scalars(q.order_by(Ticket.id.desc()).offset(offset).limit(limit))
        return list(rows), total

    def queue(self, tier: int, *, limit: int = 500) -> list[Ticket]:
        """The tier's unowned open work, most urgent first, then oldest first."""
        rank = case(PRIORITY_RANK, value=Ticket.priority, else_=9)
        q = (
            select(Ticket)
            .where(Ticket.tier == tier, Ticket.owner_agent_id.is_(None))
            .where(Ticket.status.in_(OPEN_STATUSES))
            .order_by(rank, Ticket.created_at, Ticket.id)
            .limit(limit)
        )
        return list(self.session.scalars(q))

    def open_tickets(self) -> list[Ticket]:
        q = select(Ticket).where(Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.id)
        return list(self.session.scalars(q))

    def for_account(self, account_id: int, *, limit: int = 100) -> list[Ticket]:
        q = (
            select(Ticket)
            .where(Ticket.account_id == account_id)
            .order_by(Ticket.id.desc())
            .limit(limit)
        )
        return list(self.session.scalars(q))

    # -- messages -----------------------------------------------------------------------
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
        )
        self.session.add(msg)
        self.session.flush()
        for a in attachments or []:
            self.session.add(
                Attachment(
                    message_id=msg.id,
                    filename=a.filename,
                    content_type=a.content_type,
                    size=len(a.content),
                    sha256=hashlib.sha256(a.content).hexdigest(),
                    content=a.content,
                )
            )
        # An atomic increment: concurrent writers never lose a count.
        self.session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id)
            .values(message_count=Ticket.message_count + 1)
            .execution_options(synchronize_session=False)
        )
        return msg

    def messages(self, ticket_id: int, *, include_internal: bool) -> list[Message]:
        q = (
            select(Message)
            .where(Message.ticket_id == ticket_id)
            .options(selectinload(Message.attachments))
        )
        if not include_internal:
            q = q.where(Message.visibility == "public")
        return list(self.session.scalars(q.order_by(Message.id)))

    def message_by_email_id(self, email_message_id: str) -> Message | None:
        return self.session.scalar(
            select(Message).where(Message.email_message_id == email_message_id)
        )

    # -- events -------------------------------------------------------------------------
    def add_event(
        self,
        ticket: Ticket,
        kind: str,
        *,
        summary: str,
        actor_user_id: int | None = None,
        actor_label: str | None = None,
        visibility: str = "public",
        data: dict[str, Any] | None = None,
    ) -> TicketEvent:
        """Record a state change on the ticket and on the account timeline (and the outbox)."""
        payload = {"number": ticket.number, "status": ticket.status, "tier": ticket.tier}
        payload.update(data or {})
        event = TicketEvent(
            ticket_id=ticket.id,
            kind=kind,
            actor_user_id=actor_user_id,
            visibility=visibility,
            data=payload,
        )
        self.session.add(event)
        TimelineRepository(self.session).append(
            ticket.account_id,
            kind=f"ticket.{kind}",
            summary=summary,
            ticket_id=ticket.id,
            actor=actor_label,
            visibility=visibility,
            data=payload,
        )
        return event

    def events(self, ticket_id: int, *, include_internal: bool) -> list[TicketEvent]:
        q = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
        if not include_internal:
            q = q.where(TicketEvent.visibility == "public")
        return list(self.session.scalars(q.order_by(TicketEvent.id)))

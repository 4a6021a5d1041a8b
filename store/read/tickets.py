"""What a ticket looks like to its readers: its public view and its detail, owner names cached.

The DTOs here are the ones every layer answers with (the actors' outcomes carry a TicketRead).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row
from sqlalchemy.orm import Session

from store.db import Database
from store.errors import NotFoundError
from store.models import Ticket
from store.models.enums import Channel, Priority, TicketStatus, Visibility
from store.models.ticket import ticket_number
from store.repositories import (
    AgentRepository,
    MessageRepository,
    TicketEventRepository,
    TicketRepository,
)
from store.repositories.ticket import TicketFilter


class OwnerRead(BaseModel):
    agent_id: int
    name: str


class TicketRead(BaseModel):
    number: str
    account_id: int
    subject: str
    category: str
    channel: Channel
    status: TicketStatus
    priority: Priority
    tier: int
    owner: OwnerRead | None
    message_count: int
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_responded_at: datetime | None
    sla_breached_at: datetime | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None


class AttachmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built straight from its ORM row

    id: int  # GET /api/v1/tickets/{number}/attachments/{id} downloads it
    filename: str
    content_type: str
    size: int
    sha256: str


class MessageRead(BaseModel):
    id: int
    direction: str
    channel: Channel
    visibility: Visibility
    author: str
    body: str
    created_at: datetime
    attachments: list[AttachmentRead] = Field(default_factory=list)
    # A message that came by e-mail: the stored mail (staff download its raw bytes).
    inbound_mail_id: int | None = None


class EventRead(BaseModel):
    id: int
    kind: str
    visibility: Visibility
    data: dict[str, Any]
    created_at: datetime


class TicketDetail(TicketRead):
    messages: list[MessageRead]
    events: list[EventRead]


class TicketProjection:
    """Reads tickets as TicketRead / TicketDetail; agents' display names are cached."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._agent_names: dict[int, str] = {}

    def owner_name(self, s: Session, agent_id: int) -> str:
        name = self._agent_names.get(agent_id)
        if name is None:
            name = AgentRepository(s).display_name(agent_id) or f"agent {agent_id}"
            self._agent_names[agent_id] = name
        return name

    def read(self, s: Session, t: Ticket | Row[Any]) -> TicketRead:
        """The public view of a ticket, from its ORM object or a row with every column."""
        owner = (
            OwnerRead(agent_id=t.owner_agent_id, name=self.owner_name(s, t.owner_agent_id))
            if t.owner_agent_id is not None
            else None
        )
        return TicketRead(
            number=ticket_number(t.id),
            account_id=t.account_id,
            subject=t.subject,
            category=t.category,
            channel=t.channel,
            status=t.status,
            priority=t.priority,
            tier=t.tier,
            owner=owner,
            message_count=t.message_count,
            first_response_due=t.first_response_due,
            resolution_due=t.resolution_due,
            first_responded_at=t.first_responded_at,
            sla_breached_at=t.sla_breached_at,
            created_at=t.created_at,
            updated_at=t.updated_at,
            resolved_at=t.resolved_at,
            closed_at=t.closed_at,
        )

    def search(self, flt: TicketFilter, *, offset: int, limit: int) -> tuple[list[TicketRead], int]:
        """One page of the tickets `flt` selects, newest first, and how many it selects."""
        with self.db.read() as s:
            rows, total = TicketRepository(s).search(flt, offset=offset, limit=limit)
            return [self.read(s, t) for t in rows], total

    def queue(self, tier: int, *, limit: int = 500) -> list[TicketRead]:
        """The tier's waiting tickets, most urgent and then oldest first."""
        with self.db.read() as s:
            return [self.read(s, t) for t in TicketRepository(s).queue(tier, limit=limit)]

    def where(self, ticket_id: int) -> tuple[int, int] | None:
        """(ticket id, account id) of a ticket, or None when there is none."""
        with self.db.read() as s:
            t = TicketRepository(s).find(ticket_id)
            return (t.id, t.account_id) if t is not None else None

    def detail(self, ticket_id: int, *, include_internal: bool) -> TicketDetail:
        """The ticket with its messages and events; NotFoundError when there is none."""
        with self.db.read() as s:
            t = TicketRepository(s).find(ticket_id)
            if t is None:
                raise NotFoundError("ticket", ticket_id)
            messages = [
                MessageRead(
                    id=m.id,
                    direction=m.direction,
                    channel=m.channel,
                    visibility=m.visibility,
                    author=m.author_name,
                    body=m.body,
                    created_at=m.created_at,
                    attachments=[AttachmentRead.model_validate(a) for a in m.attachments],
                    inbound_mail_id=m.inbound_mail_id,
                )
                for m in MessageRepository(s).messages(ticket_id, include_internal=include_internal)
            ]
            events = [
                EventRead(
                    id=e.id,
                    kind=e.kind,
                    visibility=e.visibility,
                    data=e.data,
                    created_at=e.created_at,
                )
                for e in TicketEventRepository(s).events(
                    ticket_id, include_internal=include_internal
                )
            ]
            return TicketDetail(**self.read(s, t).model_dump(), messages=messages, events=events)

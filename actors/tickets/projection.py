"""The read side of a ticket: its public view and its detail, with owner names cached."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from actors.errors import (
    TicketNotFound,
)
from actors.tickets.dto import (
    AttachmentRead,
    EventRead,
    MessageRead,
    OwnerRead,
    TicketDetail,
    TicketRead,
)
from store.db import Database
from store.models import Ticket
from store.models.ticket import ticket_number
from store.repositories import (
    AgentRepository,
    TicketRepository,
)


class TicketProjection:
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

    def detail(self, ticket_id: int, *, include_internal: bool) -> TicketDetail:
        with self.db.read() as s:
            repo = TicketRepository(s)
            t = repo.find(ticket_id)
            if t is None:
                raise TicketNotFound(f"ticket {ticket_id} not found")
            messages = [
                MessageRead(
                    id=m.id,
                    direction=m.direction,
                    channel=m.channel,
                    visibility=m.visibility,
                    author=m.author_name,
                    body=m.body,
                    created_at=m.created_at,
                    attachments=[
                        AttachmentRead(
                            filename=a.filename,
                            content_type=a.content_type,
                            size=a.size,
                            sha256=a.sha256,
                        )
                        for a in m.attachments
                    ],
                )
                for m in repo.messages(ticket_id, include_internal=include_internal)
            ]
            events = [
                EventRead(
                    id=e.id,
                    kind=e.kind,
                    visibility=e.visibility,
                    data=e.data,
                    created_at=e.created_at,
                )
                for e in repo.events(ticket_id, include_internal=include_internal)
            ]
            return TicketDetail(**self.read(s, t).model_dump(), messages=messages, events=events)

"""What crosses actor boundaries about tickets: ids and these pydantic models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from actors.principal import Principal
from actors.text import Category, Line, Text
from actors.tickets.commands import FilePart
from store.models.enums import Channel, Priority
from store.read.tickets import TicketRead


class NewTicket(BaseModel):
    account_id: int
    subject: Line = Field(min_length=1, max_length=300)
    body: Text = Field(min_length=1, max_length=100_000)
    channel: Channel
    priority: Priority | None = None  # None: classified from the text
    category: Category | None = None
    contact_id: int | None = None
    requester: Principal
    idempotency_key: str | None = None
    request_hash: str = ""
    email_message_id: str | None = None
    email_headers: dict[str, Any] = Field(default_factory=dict)
    # A ticket opened by a received mail: the stored mail it claims (once).
    inbound_mail_id: int | None = None
    # The first message's files (a received mail's parts, or uploaded with the ticket).
    attachments: list[FilePart] = Field(default_factory=list)


class QueuedTicket(BaseModel):
    """What a tier pool keeps of a ticket waiting for an owner."""

    id: int
    tier: int
    priority: str
    category: str
    created_at: datetime


class OpOutcome(BaseModel):
    """The result of a ticket operation, and what the pools must hear of it."""

    ticket: TicketRead
    released_agent: int | None = None  # an owner whose capacity frees up
    reclaimed_agent: int | None = None  # an owner whose capacity is used again
    enqueue: QueuedTicket | None = None  # a ticket that now waits in a tier's queue
    replayed: bool = False  # answered from the idempotency record, nothing done again

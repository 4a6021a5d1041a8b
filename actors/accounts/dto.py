"""The 360-degree view of an account, as agents and the customer see it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from store.read.tickets import TicketRead


class ContactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built straight from its ORM row

    id: int
    name: str
    email: str
    phone: str | None
    is_primary: bool
    language: str | None = None  # of the mail the desk sends it; None: the desk's default
    # Why mail to this address stopped (it bounced for good, or the relay refused it), if it did.
    undeliverable: str | None = None


class ServiceRead(BaseModel):
    id: int
    kind: str
    name: str
    status: str
    host: str | None
    attributes: dict[str, Any]


class ChangeRead(BaseModel):
    id: str
    kind: str
    status: str
    ticket_number: str | None
    created_at: datetime
    applied_at: datetime | None
    error: str | None


class AccountView(BaseModel):
    """The 360-degree view of an account, as agents and the customer see it."""

    id: int
    code: str
    name: str
    status: str
    plan: str
    contacts: list[ContactRead]
    services: list[ServiceRead]
    open_tickets: list[TicketRead]
    past_tickets: list[TicketRead]
    recent_changes: list[ChangeRead]
    built_at: datetime

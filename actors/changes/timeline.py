"""A change's entries on its account's timeline (and so in the outbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from actors.principal import SYSTEM, Principal
from store.models import ChangeRequest, OutboxEvent, Ticket
from store.models.base import utcnow
from store.repositories import (
    AgentRepository,
    TimelineRepository,
)
from store.repositories.timeline import entry_audience


def change_timeline(
    s: Session,
    row: ChangeRequest,
    what: str,
    summary: str,
    by: Principal,
    *,
    ticket: Ticket | None = None,
    **extra: Any,
) -> None:
    data: dict[str, Any] = {
        "change_id": row.id,
        "kind": row.kind,
        "status": row.status,
        "service_id": row.service_id,
        "source": row.source,
        **{k: v for k, v in extra.items() if v is not None},
    }
    if ticket is not None:
        data.update(number=ticket.number, owner_agent_id=ticket.owner_agent_id)
    TimelineRepository(s).append(
        row.account_id,
        kind=f"change.{what}",
        summary=summary,
        ticket_id=ticket.id if ticket is not None else None,
        change_id=row.id,
        actor=by.name,
        data=data,
        agents=_ticket_agents(s, row, ticket),
    )


def announce_applying(
    s: Session, row: ChangeRequest, summary: str, ticket: Ticket | None = None
) -> None:
    """Tell the live stream a change went to its host (queued -> applying): an event of its
    own, no timeline entry (the timeline keeps what was asked and how it ended)."""
    data = {"change_id": row.id, "kind": row.kind, "status": row.status,
            "service_id": row.service_id, "source": row.source}  # fmt: skip
    if ticket is not None:
        data.update(number=ticket.number)
    audience = entry_audience(row.account_id, "public", agents=_ticket_agents(s, row, ticket))
    s.add(
        OutboxEvent(
            topic="change.applying",
            **OutboxEvent.audience_columns(audience),
            payload={
                "kind": "change.applying",
                "summary": summary,
                "ticket_id": row.ticket_id,
                "change_id": row.id,
                "actor": SYSTEM.name,
                "visibility": "public",
                "data": data,
                "at": utcnow().isoformat(),
            },
        )
    )


def _ticket_agents(s: Session, row: ChangeRequest, ticket: Ticket | None) -> tuple[int | None, ...]:
    """Who among staff hears how a ticket's change goes: the ticket's owner and the agent who
    asked for it (on a ticket nobody owns yet, say)."""
    if ticket is None:
        return ()
    asker = (
        AgentRepository(s).by_user(row.requested_by_user_id) if row.requested_by_user_id else None
    )
    return (ticket.owner_agent_id, asker.id if asker is not None else None)

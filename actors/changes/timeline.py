"""A change's entries on its account's timeline (and so in the outbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from actors.principal import Principal
from store.models import ChangeRequest, Ticket
from store.repositories import (
    TimelineRepository,
)


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
        agents=(ticket.owner_agent_id,) if ticket is not None else (),  # its owner hears it
    )

"""Writes and queries of ticket events: one event at a time with its timeline entry (and outbox
row), many at once for the intake and assignment paths, and the SLA warnings already fired."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select

from store.models import Ticket, TicketEvent
from store.repositories.base import Repository
from store.repositories.timeline import (
    TIMELINE,
    NewEntry,
    Rows,
    TimelineRepository,
    allocate_ids,
    insert_all,
)

# The core table for the multi-row statements of the intake path (no ORM unit of work).
TICKET_EVENTS = cast(Table, TicketEvent.__table__)


@dataclass(frozen=True)
class NewEvent:
    """One ticket event for `add_events`; `data` is the full payload (see `event_payload`);
    `tier` and `owner_agent_id` are the ticket's after the event, who hear it with the
    account and `also_tiers`/`also_agents` (see `add_event`)."""

    ticket_id: int
    account_id: int
    kind: str
    summary: str
    data: dict[str, Any]
    tier: int
    owner_agent_id: int | None
    actor_user_id: int | None = None
    actor_label: str | None = None
    visibility: str = "public"
    also_tiers: tuple[int | None, ...] = ()
    also_agents: tuple[int | None, ...] = ()


def event_payload(number: str, status: str, tier: int, data: dict[str, Any]) -> dict[str, Any]:
    """What `add_event` stores with an event: the ticket's number, status and tier, then data."""
    payload: dict[str, Any] = {"number": number, "status": status, "tier": tier}
    payload.update(data)
    return payload


class TicketEventRepository(Repository):
    """A ticket's events; each is also an entry of its account's timeline."""

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
        also_tiers: Sequence[int | None] = (),
        also_agents: Sequence[int | None] = (),
    ) -> TicketEvent:
        """Record a state change on the ticket and on the account timeline (and the outbox).

        Who hears it: admins; the account's customers when it is public; the agents watching
        the ticket's (current) tier's queue and its owner; and whom the caller names besides
        (`also_tiers`, `also_agents`: the tier an escalation left, a previous owner)."""
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
            tiers=(ticket.tier, *also_tiers),
            agents=(ticket.owner_agent_id, *also_agents),
        )
        return event

    @staticmethod
    def event_rows(
        events: list[NewEvent], timeline_ids: list[int], *, at: datetime
    ) -> list[tuple[Table, Rows]]:
        """The rows `add_event` writes (event, timeline entry, outbox row) for many events,
        for `insert_all`; the timeline ids come from `allocate_ids`."""
        rows = [
            {
                "ticket_id": e.ticket_id,
                "kind": e.kind,
                "actor_user_id": e.actor_user_id,
                "visibility": e.visibility,
                "data": e.data,
                "created_at": at,
            }
            for e in events
        ]
        entries = [
            NewEntry(
                account_id=e.account_id,
                kind=f"ticket.{e.kind}",
                summary=e.summary,
                ticket_id=e.ticket_id,
                actor=e.actor_label,
                visibility=e.visibility,
                data=e.data,
                tiers=(e.tier, *e.also_tiers),
                agents=(e.owner_agent_id, *e.also_agents),
            )
            for e in events
        ]
        return [(TICKET_EVENTS, rows), *TimelineRepository.rows_for(entries, timeline_ids, at=at)]

    def add_events(self, events: list[NewEvent], *, at: datetime) -> None:
        """`add_event` for many events at once, in two round trips on PostgreSQL."""
        if events:
            [ids] = allocate_ids(self.session, [TIMELINE], len(events))
            insert_all(self.session, self.event_rows(events, ids, at=at))

    def events(self, ticket_id: int, *, include_internal: bool) -> list[TicketEvent]:
        q = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
        if not include_internal:
            q = q.where(TicketEvent.visibility == "public")
        return list(self.session.scalars(q.order_by(TicketEvent.id)))

    def sla_fired(self, ticket_ids: list[int]) -> dict[int, set[tuple[str, str]]]:
        """(action, which) of the SLA warnings and breaches already recorded, by ticket."""
        out: dict[int, set[tuple[str, str]]] = {}
        if not ticket_ids:
            return out
        q = select(TicketEvent.ticket_id, TicketEvent.kind, TicketEvent.data).where(
            TicketEvent.ticket_id.in_(ticket_ids),
            TicketEvent.kind.in_(("sla_warning", "sla_breach")),
        )
        for tid, kind, data in self.session.execute(q):
            action = "warning" if kind == "sla_warning" else "breach"
            out.setdefault(tid, set()).add((action, str(data.get("which"))))
        return out

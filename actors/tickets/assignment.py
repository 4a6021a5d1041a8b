"""Assignment: a batch of (ticket, agent) pairs in one conditional UPDATE."""

from __future__ import annotations

from actors.clock import Clock
from actors.principal import SYSTEM
from actors.tickets.states import FILED, Move, after
from store.db import Database
from store.models.ticket import ticket_number
from store.read.tickets import TicketProjection, TicketRead
from store.repositories import (
    TicketEventRepository,
    TicketRepository,
)
from store.repositories.ticket_event import (
    NewEvent,
    event_payload,
)

# What `assign_unowned` does in SQL: a waiting (filed) ticket gets its owner and is open.
ASSIGNED = after(Move.assign, FILED, owned=True)


class TicketAssignment:
    def __init__(self, db: Database, projection: TicketProjection, now: Clock) -> None:
        self.db = db
        self.projection = projection
        self.now = now

    def assign_many(self, tier: int, pairs: list[tuple[int, int]]) -> list[TicketRead | None]:
        """Give each (ticket, agent) pair's ticket to the agent, if it still waits in `tier`.

        One conditional UPDATE for the batch makes a ticket impossible to assign twice,
        whatever races; the 'assigned' events, timeline entries and outbox rows follow in the
        same transaction as multi-row INSERTs.
        """
        if not pairs:
            return []
        now = self.now()
        with self.db.write() as s:
            changed = TicketRepository(s).assign_unowned(tier, pairs, now)
            out: list[TicketRead | None] = []
            events: list[NewEvent] = []
            for ticket_id, agent_id in pairs:
                row = changed.pop(ticket_id, None)  # pop: a repeated pair is assigned once
                if row is None or row.owner_agent_id != agent_id:
                    out.append(None)
                    continue
                name = self.projection.owner_name(s, agent_id)
                number = ticket_number(ticket_id)
                events.append(
                    NewEvent(
                        ticket_id=ticket_id,
                        account_id=row.account_id,
                        kind="assigned",
                        summary=f"{number} is handled by {name} (level {tier})",
                        data=event_payload(
                            number,
                            ASSIGNED,
                            row.tier,
                            {
                                "owner_agent_id": agent_id,
                                "status": ASSIGNED,
                                "agent_id": agent_id,
                                "agent": name,
                            },
                        ),
                        tier=row.tier,
                        owner_agent_id=agent_id,
                        actor_user_id=SYSTEM.user_id,
                        actor_label=SYSTEM.name,
                    )
                )
                out.append(self.projection.read(s, row))
            TicketEventRepository(s).add_events(events, at=now)
        return out

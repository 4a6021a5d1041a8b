"""Queries and writes on ticket rows: creating, finding, locking, searching, queues and owners,
and the conditional assignment of unowned tickets. A ticket's messages are in
``store.repositories.message``, its events in ``store.repositories.ticket_event``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, case, func, select, update

from store.errors import NotFoundError
from store.models import Contact, Ticket, User
from store.models.enums import OPEN_STATUSES, PRIORITY_RANK, TIMED_STATUSES, UNRANKED, TicketStatus
from store.models.ticket import ticket_id_from_number
from store.repositories.base import Repository

# The core table for the multi-row statements of the intake path (no ORM unit of work).
TICKETS = cast(Table, Ticket.__table__)


@dataclass(frozen=True)
class TicketFilter:
    status: tuple[str, ...] = ()
    tier: int | None = None
    owner_agent_id: int | None = None
    account_id: int | None = None
    unowned: bool = False


class TicketRepository(Repository):
    def contact_accounts(self, contact_ids: set[int]) -> dict[int, int]:
        """The account of each of these contacts that exists and is on one, by contact id."""
        if not contact_ids:
            return {}
        q = select(Contact.id, Contact.account_id).where(
            Contact.id.in_(contact_ids), Contact.account_id.is_not(None)
        )
        return {cid: aid for cid, aid in self.session.execute(q) if aid is not None}

    def opened_since(
        self, account_ids: set[int], since: datetime, channels: tuple[str, ...]
    ) -> dict[int, tuple[int, datetime]]:
        """(how many, the oldest created_at) of each account's tickets opened by its customers
        (not by staff or the system) through `channels` since `since`."""
        if not account_ids:
            return {}
        q = (
            select(Ticket.account_id, func.count(), func.min(Ticket.created_at))
            .join(User, User.id == Ticket.requester_user_id)
            .where(
                Ticket.account_id.in_(account_ids),
                Ticket.created_at >= since,
                Ticket.channel.in_(channels),
                User.role == "customer",
            )
            .group_by(Ticket.account_id)
        )
        return {aid: (int(n), oldest) for aid, n, oldest in self.session.execute(q)}

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

    def assign_unowned(
        self, tier: int, pairs: list[tuple[int, int]], now: datetime
    ) -> dict[int, Row[Any]]:
        """Give each (ticket id, agent id) pair's ticket to its agent, in one conditional
        UPDATE: only tickets still new, unowned and in `tier` change, so none is assigned
        twice whatever races. Returns the changed rows (every column) by ticket id."""
        if not pairs:
            return {}
        table = TICKETS
        owners = dict(pairs)
        stmt = (
            update(table)
            .where(
                table.c.id.in_(list(owners)),
                table.c.owner_agent_id.is_(None),
                table.c.tier == tier,
                table.c.status == TicketStatus.new,
            )
            .values(
                owner_agent_id=case(owners, value=table.c.id),
                status=TicketStatus.open,
                version=table.c.version + 1,
                updated_at=now,
            )
            .returning(*table.c)
        )
        return {row.id: row for row in self.session.execute(stmt)}

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
        rank = case(PRIORITY_RANK, value=Ticket.priority, else_=UNRANKED)
        q = (
            select(Ticket)
            .where(Ticket.tier == tier, Ticket.owner_agent_id.is_(None))
            .where(Ticket.status.in_(OPEN_STATUSES))
            .order_by(rank, Ticket.created_at, Ticket.id)
            .limit(limit)
        )
        return list(self.session.scalars(q))

    def owned_by(self, agent_ids: list[int], statuses: tuple[str, ...]) -> list[tuple[int, int]]:
        """(agent id, ticket id) of the tickets these agents own in these statuses."""
        if not agent_ids:
            return []
        q = select(Ticket.owner_agent_id, Ticket.id).where(
            Ticket.owner_agent_id.in_(agent_ids), Ticket.status.in_(statuses)
        )
        return [(a, t) for a, t in self.session.execute(q) if a is not None]

    def load_by_owner(self, tier: int) -> dict[int, int]:
        """How many open tickets each agent of the tier owns."""
        q = (
            select(Ticket.owner_agent_id, func.count())
            .where(Ticket.tier == tier, Ticket.status.in_(OPEN_STATUSES))
            .where(Ticket.owner_agent_id.is_not(None))
            .group_by(Ticket.owner_agent_id)
        )
        return {a: n for a, n in self.session.execute(q) if a is not None}

    def count_owned(self, agent_id: int) -> int:
        q = select(func.count()).where(
            Ticket.owner_agent_id == agent_id, Ticket.status.in_(OPEN_STATUSES)
        )
        return int(self.session.scalar(q) or 0)

    def with_timers(self, ticket_ids: list[int] | None) -> list[Ticket]:
        """The tickets whose SLA or auto-close timers run: these ids, or every open and
        resolved ticket when None."""
        if ticket_ids is not None:
            return list(self.session.scalars(select(Ticket).where(Ticket.id.in_(ticket_ids))))
        q = select(Ticket).where(Ticket.status.in_(TIMED_STATUSES))
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

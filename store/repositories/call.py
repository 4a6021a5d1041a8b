"""Phone calls: recorded once per provider call id, found by number, and the lookups that put
a call with its contact, account, agent and open ticket."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from store.models import Agent, Call, Contact, OutboxEvent, Ticket, User
from store.models.enums import OPEN_STATUSES
from store.models.outbox import Audience
from store.repositories.base import Repository

CALLS = cast(Table, Call.__table__)


class CallRepository(Repository):
    def record_once(self, row: dict[str, Any]) -> tuple[Call, bool]:
        """Keep a call reported by the provider unless its `provider_call_id` is kept already;
        returns the stored row and whether it is new. One statement, safe against a twin."""
        assert row.get("provider_call_id"), "record_once is for calls with a provider id"
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(CALLS)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["provider_call_id"])
            .returning(CALLS.c.id)
        )
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT here.
        created = self.session.execute(stmt).scalar() is not None
        kept = self.by_provider_id(row["provider_call_id"], lock=True)
        assert kept is not None
        return kept, created

    def add(self, **fields: Any) -> Call:
        call = Call(**fields)
        self.session.add(call)
        self.session.flush()
        return call

    def by_provider_id(self, provider_call_id: str, *, lock: bool = False) -> Call | None:
        q = select(Call).where(Call.provider_call_id == provider_call_id)
        if lock:
            q = q.with_for_update()
        return self.session.scalar(q)

    def for_ticket(self, ticket_id: int) -> list[Call]:
        q = select(Call).where(Call.ticket_id == ticket_id).order_by(Call.started_at, Call.id)
        return list(self.session.scalars(q))

    def recent_for_account(self, account_id: int, *, limit: int = 20) -> list[Call]:
        q = (
            select(Call)
            .where(Call.account_id == account_id)
            .order_by(Call.started_at.desc(), Call.id.desc())
            .limit(limit)
        )
        return list(self.session.scalars(q))

    def contacts_by_phone(self, number: str) -> list[Contact]:
        """The contacts on an account whose phone is `number` (E.164, exact), oldest first."""
        q = (
            select(Contact)
            .where(Contact.phone == number, Contact.account_id.is_not(None))
            .order_by(Contact.is_primary.desc(), Contact.id)
        )
        return list(self.session.scalars(q))

    def open_ticket_of(self, account_id: int, contact_id: int | None) -> Ticket | None:
        """The caller's open ticket: the newest open one of the contact, else of the account."""
        base = select(Ticket).where(
            Ticket.account_id == account_id, Ticket.status.in_(OPEN_STATUSES)
        )
        if contact_id is not None:
            mine = self.session.scalar(
                base.where(Ticket.contact_id == contact_id).order_by(Ticket.id.desc()).limit(1)
            )
            if mine is not None:
                return mine
        return self.session.scalar(base.order_by(Ticket.id.desc()).limit(1))

    def agent_by_email(self, email: str) -> tuple[Agent, User] | None:
        """The active agent whose log-in is `email` (the provider names who answers by it)."""
        q = (
            select(Agent, User)
            .join(User, User.id == Agent.user_id)
            .where(User.email == email.lower(), User.is_active.is_(True))
        )
        row = self.session.execute(q).first()
        return (row[0], row[1]) if row is not None else None

    def announce(self, topic: str, audience: Audience, payload: dict[str, Any]) -> OutboxEvent:
        """An outbox row for an event that is no ticket's (a call ringing), heard by `audience`."""
        event = OutboxEvent(topic=topic, payload=payload, **OutboxEvent.audience_columns(audience))
        self.session.add(event)
        self.session.flush()
        return event

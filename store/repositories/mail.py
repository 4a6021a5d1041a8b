"""Received mail (kept whole), its threading lookups, and the addresses that bounced for good."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from store.models import Contact, InboundMail, MailSuppression, Message, Ticket, User
from store.models.enums import InboundStatus
from store.repositories.base import Repository


class InboundMailRepository(Repository):
    def store(self, row: dict[str, Any]) -> tuple[InboundMail, bool]:
        """Keep a received mail unless one with its dedupe key is kept already; returns the
        stored row and whether it is new. One statement, safe against a concurrent twin."""
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(InboundMail)
            .values(**row)
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
            .returning(InboundMail.id)
        )
        # RETURNING, not rowcount: PostgreSQL's driver reports -1 for ON CONFLICT DO NOTHING.
        created = self.session.execute(stmt).scalar() is not None
        kept = self.session.scalar(
            select(InboundMail).where(InboundMail.dedupe_key == row["dedupe_key"])
        )
        assert kept is not None
        return kept, created

    def get(self, inbound_id: int) -> InboundMail | None:
        return self.session.get(InboundMail, inbound_id)

    def claim(
        self,
        inbound_id: int,
        status: InboundStatus,
        *,
        at: datetime,
        ticket_id: int | None = None,
        contact_id: int | None = None,
        detail: str | None = None,
    ) -> bool:
        """Settle a received mail that is still `received`, in the caller's unit of work;
        False when it was settled already (a redelivery, a replayed step): do nothing then."""
        values: dict[str, Any] = {"status": status.value, "processed_at": at}
        if ticket_id is not None:
            values["ticket_id"] = ticket_id
        if contact_id is not None:
            values["contact_id"] = contact_id
        if detail is not None:
            values["detail"] = detail
        result = self.session.execute(
            update(InboundMail)
            .where(InboundMail.id == inbound_id, InboundMail.status == InboundStatus.received)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def held_for(self, contact_id: int) -> list[InboundMail]:
        """The mails of a contact that wait for it to be linked to an account, oldest first."""
        q = (
            select(InboundMail)
            .where(InboundMail.contact_id == contact_id, InboundMail.status == InboundStatus.held)
            .order_by(InboundMail.id)
        )
        return list(self.session.scalars(q))

    def release(self, inbound_id: int) -> bool:
        """A held mail goes back to `received`, to be filed again (its contact was linked)."""
        result = self.session.execute(
            update(InboundMail)
            .where(InboundMail.id == inbound_id, InboundMail.status == InboundStatus.held)
            .values(status=InboundStatus.received.value, processed_at=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def listing(
        self, *, status: str | None = None, before: int | None = None, limit: int = 50
    ) -> list[InboundMail]:
        q = select(InboundMail).order_by(InboundMail.id.desc()).limit(limit)
        if status is not None:
            q = q.where(InboundMail.status == status)
        if before is not None:
            q = q.where(InboundMail.id < before)
        return list(self.session.scalars(q))

    # -- what threading asks (see actors/mail/threading.ThreadLookup) -------------------------
    def message_seen(self, message_id: str) -> bool:
        q = select(Message.id).where(Message.email_message_id == message_id).limit(1)
        return self.session.scalar(q) is not None

    def ticket_account(self, ticket_id: int) -> int | None:
        return self.session.scalar(select(Ticket.account_id).where(Ticket.id == ticket_id))

    def ticket_requester_email(self, ticket_id: int) -> str | None:
        """The requester's address: the ticket's contact's, else its requesting user's."""
        row = self.session.execute(
            select(Contact.email, User.email)
            .select_from(Ticket)
            .outerjoin(Contact, Contact.id == Ticket.contact_id)
            .outerjoin(User, User.id == Ticket.requester_user_id)
            .where(Ticket.id == ticket_id)
        ).first()
        if row is None:
            return None
        return row[0] or row[1]

    def contact_accounts(self, email: str) -> set[int]:
        q = select(Contact.account_id).where(
            func.lower(Contact.email) == email.lower(), Contact.account_id.is_not(None)
        )
        return {a for a in self.session.scalars(q) if a is not None}

    # -- senders ---------------------------------------------------------------------------
    def contacts_by_email(self, email: str) -> list[Contact]:
        """Every contact with this address: those on an account first (primary first), then
        one on no account (a sender waiting to be linked)."""
        q = select(Contact).where(func.lower(Contact.email) == email.lower())
        rows = list(self.session.scalars(q))
        return sorted(rows, key=lambda c: (c.account_id is None, not c.is_primary, c.id))

    def user_of_contact(self, contact: Contact) -> User | None:
        """The customer login of a contact: linked to it, else one of its account with its
        address."""
        q = select(User).where(User.role == "customer", User.account_id == contact.account_id)
        users = list(self.session.scalars(q))
        return next((u for u in users if u.contact_id == contact.id), None) or next(
            (u for u in users if u.email.lower() == contact.email.lower()), None
        )

    def unknown_contact(self, email: str, name: str) -> Contact:
        """The contact on no account for this address, made the first time it writes."""
        q = select(Contact).where(
            func.lower(Contact.email) == email.lower(), Contact.account_id.is_(None)
        )
        contact = self.session.scalar(q.order_by(Contact.id).limit(1))
        if contact is None:
            contact = Contact(account_id=None, name=name, email=email.lower(), is_primary=False)
            self.session.add(contact)
            self.session.flush()
        return contact


class SuppressionRepository(Repository):
    """Addresses that bounced for good: no mail goes to them until an agent lifts it."""

    def suppress(
        self,
        address: str,
        *,
        status_code: str | None,
        diagnostic: str,
        inbound_mail_id: int | None = None,
    ) -> None:
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = (
            insert(MailSuppression)
            .values(
                address=address.lower(),
                status_code=status_code,
                diagnostic=diagnostic[:2000],
                inbound_mail_id=inbound_mail_id,
            )
            .on_conflict_do_nothing(index_elements=["address"])
        )
        self.session.execute(stmt)

    def suppressed(self, addresses: set[str]) -> dict[str, MailSuppression]:
        if not addresses:
            return {}
        lowered = {a.lower() for a in addresses}
        q = select(MailSuppression).where(MailSuppression.address.in_(lowered))
        return {r.address: r for r in self.session.scalars(q)}

    def lift(self, address: str) -> bool:
        row = self.session.scalar(
            select(MailSuppression).where(MailSuppression.address == address.lower())
        )
        if row is None:
            return False
        self.session.delete(row)
        return True

"""Builds the 360-degree view of an account from the SCDB."""

from __future__ import annotations

from actors.accounts.dto import AccountView, ChangeRead, ContactRead, ServiceRead
from actors.changes.dto import CUSTOMER_ERROR
from actors.errors import TicketNotFound
from actors.tickets.service import TicketService
from store.models.base import utcnow
from store.models.ticket import ticket_number
from store.repositories import AccountRepository, ChangeRepository, HostRepository, TicketRepository
from store.repositories.ticket import OPEN_STATUSES


def build_account_view(service: TicketService, account_id: int) -> AccountView:
    with service.db.read() as s:
        accounts = AccountRepository(s)
        account = accounts.find(account_id)
        if account is None:
            raise TicketNotFound(f"account {account_id} not found")
        hosts = {h.id: h.name for h in HostRepository(s).all()}
        tickets = [service.read(s, t) for t in TicketRepository(s).for_account(account_id)]
        return AccountView(
            id=account.id,
            code=account.code,
            name=account.name,
            status=account.status,
            plan=account.plan,
            contacts=[
                ContactRead(
                    id=c.id, name=c.name, email=c.email, phone=c.phone, is_primary=c.is_primary
                )
                for c in accounts.contacts(account_id)
            ],
            services=[
                ServiceRead(
                    id=sv.id,
                    kind=sv.kind,
                    name=sv.name,
                    status=sv.status,
                    host=hosts.get(sv.host_id) if sv.host_id else None,
                    attributes=sv.attributes,
                )
                for sv in accounts.services(account_id)
            ],
            open_tickets=[t for t in tickets if t.status in OPEN_STATUSES],
            past_tickets=[t for t in tickets if t.status not in OPEN_STATUSES],
            recent_changes=[
                ChangeRead(
                    id=c.id,
                    kind=c.kind,
                    status=c.status,
                    ticket_number=ticket_number(c.ticket_id) if c.ticket_id else None,
                    created_at=c.created_at,
                    applied_at=c.applied_at,
                    # customers read this view too: plain words (staff open the change)
                    error=CUSTOMER_ERROR.get(c.status, "Not applied.") if c.error else None,
                )
                for c in ChangeRepository(s).recent_for_account(account_id)
            ],
            built_at=utcnow(),
        )

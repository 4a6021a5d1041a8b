"""Builds the 360-degree view of an account from the SCDB, and the watermark that tells whether
a cached one is still the account as the SCDB holds it."""

from __future__ import annotations

import json
from typing import Any

from actors.accounts.dto import AccountView, ChangeRead, ContactRead, ServiceRead
from actors.errors import AccountNotFound
from store.db import Database
from store.models.base import utcnow
from store.models.enums import OPEN_STATUSES
from store.models.ticket import ticket_number
from store.read.changes import CUSTOMER_ERROR
from store.read.tickets import TicketProjection
from store.repositories import (
    AccountRepository,
    ChangeRepository,
    HostRepository,
    SuppressionRepository,
    TicketRepository,
    TimelineRepository,
)


def build_account_view(db: Database, tickets: TicketProjection, account_id: int) -> AccountView:
    with db.read() as s:
        accounts = AccountRepository(s)
        account = accounts.find(account_id)
        if account is None:
            raise AccountNotFound(f"account {account_id} not found")
        hosts = {h.id: h.name for h in HostRepository(s).all()}
        reads = [tickets.read(s, t) for t in TicketRepository(s).for_account(account_id)]
        contacts = [ContactRead.model_validate(c) for c in accounts.contacts(account_id)]
        stopped = SuppressionRepository(s).suppressed({c.email for c in contacts})
        for c in contacts:
            if (row := stopped.get(c.email.lower())) is not None:
                c.undeliverable = " ".join(filter(None, [row.status_code, row.diagnostic]))[:300]
        return AccountView(
            id=account.id,
            code=account.code,
            name=account.name,
            status=account.status,
            plan=account.plan,
            contacts=contacts,
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
            open_tickets=[t for t in reads if t.status in OPEN_STATUSES],
            past_tickets=[t for t in reads if t.status not in OPEN_STATUSES],
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


# What a cached view must still match to be served: the account's newest timeline entry (every
# ticket step, message and change writes one) and the rows of its own that other systems write
# too, without a timeline entry (provisioning adds services, billing cancels them, an operator
# edits a contact, a suspension sets the account's status).
Watermark = tuple[int, tuple[Any, ...]]


def view_watermark(db: Database, account_id: int) -> Watermark:
    with db.read() as s:
        accounts = AccountRepository(s)
        account = accounts.find(account_id)
        if account is None:
            return 0, ()
        contacts = accounts.contacts(account_id)
        rows = (
            (account.code, account.name, account.status, account.plan),
            tuple((c.id, c.name, c.email, c.phone, c.is_primary) for c in contacts),
            tuple(
                (sv.id, sv.kind, sv.name, sv.status, sv.host_id, sv.updated_at,
                 json.dumps(sv.attributes, sort_keys=True, default=str))
                for sv in accounts.services(account_id)
            ),
        )  # fmt: skip
        return TimelineRepository(s).latest_id(account_id), rows

"""Change requests to customers' hosting as units of work on the SCDB.

Creating a change validates it with the GDCAS catalog, checks who may ask for it on which
service (see ``access``), and writes the request, its timeline entry (and outbox row), the
ticket's move to `pending_change` and the idempotency record in one transaction. Secrets never
rest in the SCDB in clear (see ``stored``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from actors.changes.access import (
    account_domains,
    bind_to_service,
)
from actors.changes.dto import (
    NewChange,
    Prepared,
)
from actors.changes.stored import (
    stored_params,
)
from actors.changes.timeline import change_timeline
from actors.config import ActorConfig
from actors.errors import (
    InvalidChange,
    InvalidTransition,
    NotAllowed,
    QueueFull,
    RateLimited,
    ServiceNotFound,
    TicketNotFound,
)
from actors.idempotency import earlier_answer, remember_answer
from actors.policy import Step, authorize_change_kind, authorize_ticket_step
from actors.principal import Principal
from actors.tickets.commands import ChangeRequested
from actors.tickets.service import TicketService
from automation.changes import (
    parse_change,
)
from automation.errors import ChangeValidationError
from store.db import Database
from store.models.base import utcnow
from store.read.changes import PENDING, ChangeDetail, change_detail
from store.repositories import (
    AccountRepository,
    AuditRepository,
    ChangeRepository,
    HostRepository,
    TicketRepository,
)


class ChangeService:
    def __init__(self, db: Database, config: ActorConfig, now: Any = utcnow) -> None:
        self.db = db
        self.config = config
        self.now = now
        self.tickets = TicketService(db, config, now)

    # -- validating and authorising -----------------------------------------------------
    def prepare(self, s: Session, by: Principal, req: NewChange) -> Prepared:
        """Validate `req` for `by`; raise a DeskError (404 for what `by` may not see)."""
        if by.role not in ("customer", "agent", "admin"):
            raise NotAllowed("only customers, agents and administrators request changes")
        service = AccountRepository(s).service(req.service_id)
        missing = ServiceNotFound(f"service {req.service_id} not found")
        if service is None:
            raise missing
        if by.role == "customer":
            if service.account_id != by.account_id or (
                req.account_id is not None and req.account_id != by.account_id
            ):
                raise missing
            if req.ticket is not None:
                raise NotAllowed("customers do not link changes to tickets")
        elif req.account_id is not None and service.account_id != req.account_id:
            raise missing
        authorize_change_kind(by, req.kind)
        ticket_id: int | None = None
        if by.role == "agent" and req.ticket is None:
            raise InvalidChange(
                "agents link every change to a ticket: give its number in `ticket`",
                ["ticket: required for agents"],
            )
        if req.ticket is not None:
            ticket = TicketRepository(s).by_number(req.ticket)
            if ticket is None:
                raise TicketNotFound(f"ticket {req.ticket} not found")
            authorize_ticket_step(by, Step.change, ticket_tier=ticket.tier, number=ticket.number)
            if ticket.account_id != service.account_id:
                raise InvalidChange(
                    f"ticket {req.ticket} belongs to another account than service {service.id}",
                    ["ticket: not a ticket of the service's account"],
                )
            if ticket.status in ("resolved", "closed"):
                raise InvalidTransition(f"{ticket.number} is {ticket.status}; reopen it first")
            ticket_id = ticket.id
        if service.status not in ("active", "suspended", "pending"):
            raise InvalidTransition(f"service {service.id} is {service.status}")
        if service.host_id is None:
            raise InvalidTransition(f"service {service.id} is not on a managed host")
        host = HostRepository(s).get(service.host_id)
        if host.status == "retired":
            raise InvalidTransition(f"service {service.id} is on a retired host")
        account = AccountRepository(s).get(service.account_id)
        domains = account_domains(s, account.id) if req.kind == "vhost_create" else set()
        params = bind_to_service(req.kind, req.params, service, account, domains)
        try:
            change = parse_change(req.kind, params)
        except ChangeValidationError as exc:
            raise InvalidChange(str(exc), exc.errors) from None
        source = {"customer": "portal", "agent": "agent"}.get(by.role, "api")
        return Prepared(
            account_id=service.account_id,
            service_id=service.id,
            host_id=host.id,
            host_name=host.name,
            ticket_id=ticket_id,
            change=change,
            source=source,
        )

    def plan_target(self, by: Principal, req: NewChange) -> Prepared:
        """`prepare` in a read-only session: what a dry run needs."""
        with self.db.read() as s:
            return self.prepare(s, by, req)

    # -- creating -----------------------------------------------------------------------
    def create(
        self, by: Principal, req: NewChange, *, key: str | None = None, request_hash: str = ""
    ) -> ChangeDetail:
        """Record a change request (queued for its host's executor); a retried key replays."""
        with self.db.write() as s:
            earlier = earlier_answer(s, by, key, request_hash)
            if earlier is not None:
                return ChangeDetail.model_validate({**earlier, "replayed": True})
            p = self.prepare(s, by, req)
            if by.role == "customer":
                self._check_rate(s, p.account_id)
            self._check_host_queue(s, p.host_id)
            row = ChangeRepository(s).create(
                change_id=str(uuid.uuid4()),
                account_id=p.account_id,
                kind=p.change.kind,
                params=stored_params(p.change),
                source=p.source,
                service_id=p.service_id,
                ticket_id=p.ticket_id,
                host_id=p.host_id,
                requested_by_user_id=by.user_id,
            )
            row.created_at = row.updated_at = self.now()
            ticket = TicketRepository(s).lock(p.ticket_id) if p.ticket_id else None
            change_timeline(s, row, "requested", f"Change requested: {p.change.describe()}", by,
                           ticket=ticket)  # fmt: skip
            if ticket is not None:  # an open ticket now waits for the change
                step = ChangeRequested(change_id=row.id, change_kind=row.kind,
                                       describe=p.change.describe())  # fmt: skip
                self.tickets.lifecycle.apply(s, ticket, step, by)
            detail = change_detail(s, row)
            AuditRepository(s).record(
                actor_label=by.label, actor_user_id=by.user_id, action="change_requested",
                object_type="change", object_id=row.id, account_id=row.account_id,
                data={"kind": row.kind, "service_id": row.service_id, "ticket_id": row.ticket_id},
            )  # fmt: skip
            remember_answer(s, by, key, request_hash, 202, detail.model_dump(mode="json"))
            return detail

    def _check_host_queue(self, s: Session, host_id: int) -> None:
        """At most `queues.host_queue_max` changes wait for one host (its lane's bound): one
        more is refused for now (503 `host_queue_full` with Retry-After), never queued."""
        limit = self.config.queues.host_queue_max
        waiting = ChangeRepository(s).pending_count(PENDING, host_id=host_id)
        if waiting >= limit:
            raise QueueFull(
                f"{waiting} changes wait for this service's server already; try again in a "
                "few minutes", retry_after=30, code="host_queue_full",
            )  # fmt: skip

    def _check_rate(self, s: Session, account_id: int) -> None:
        """At most `customer_changes_per_hour` self-service changes per account and hour."""
        limit = self.config.customer_changes_per_hour
        if not limit:
            return
        now = self.now()
        count, oldest = ChangeRepository(s).requested_since(
            account_id, now - timedelta(hours=1), source="portal"
        )
        if count >= limit and oldest is not None:
            wait = (oldest + timedelta(hours=1) - now).total_seconds()
            raise RateLimited(
                f"at most {limit} self-service changes an hour; try again later, or open a "
                "ticket", retry_after=int(wait) + 1,
            )  # fmt: skip

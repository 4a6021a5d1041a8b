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
    KINDS_BY_TIER,
    account_domains,
    bind_to_service,
    for_customer,
)
from actors.changes.dto import (
    AttemptRead,
    ChangeDetail,
    NewChange,
    Prepared,
)
from actors.changes.stored import (
    public_params,
    stored_params,
)
from actors.changes.timeline import change_timeline
from actors.config import ActorConfig
from actors.errors import (
    ChangeNotFound,
    InvalidChange,
    InvalidTransition,
    NotAllowed,
    RateLimited,
)
from actors.idempotency import earlier_answer, remember_answer
from actors.principal import Principal
from actors.tickets.service import TicketService
from automation.changes import (
    CHANGE_KINDS,
    CUSTOMER_SELF_SERVICE_KINDS,
    parse_change,
)
from automation.errors import ChangeValidationError
from store.db import Database
from store.models import ChangeRequest
from store.models.base import utcnow
from store.models.ticket import ticket_number
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
        missing = ChangeNotFound(f"service {req.service_id} not found")
        if service is None:
            raise missing
        if by.role == "customer":
            if service.account_id != by.account_id or (
                req.account_id is not None and req.account_id != by.account_id
            ):
                raise missing
            if req.ticket is not None:
                raise NotAllowed("customers do not link changes to tickets")
            if req.kind not in CUSTOMER_SELF_SERVICE_KINDS:
                allowed = ", ".join(sorted(CUSTOMER_SELF_SERVICE_KINDS))
                raise NotAllowed(
                    f"{req.kind!r} is not a self-service change; open a ticket, or use: {allowed}"
                )
        elif req.account_id is not None and service.account_id != req.account_id:
            raise missing
        tier_kinds = KINDS_BY_TIER.get(by.tier or 0, frozenset())
        if by.role == "agent" and req.kind in CHANGE_KINDS and req.kind not in tier_kinds:
            needed = min(t for t, kinds in KINDS_BY_TIER.items() if req.kind in kinds)
            raise NotAllowed(
                f"level {by.tier} agents do not request {req.kind} changes; "
                f"escalate the ticket to level {needed}"
            )
        ticket_id: int | None = None
        if by.role == "agent" and req.ticket is None:
            raise InvalidChange(
                "agents link every change to a ticket: give its number in `ticket`",
                ["ticket: required for agents"],
            )
        if req.ticket is not None:
            ticket = TicketRepository(s).by_number(req.ticket)
            if ticket is None:
                raise ChangeNotFound(f"ticket {req.ticket} not found")
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
            if ticket is not None:
                moved = ticket.status == "open"
                if moved:
                    ticket.status = "pending_change"
                ticket.updated_at = self.now()
                s.flush()
                TicketRepository(s).add_event(
                    ticket,
                    "pending_change" if moved else "change_requested",
                    summary=f"{ticket.number} waits for a change: {p.change.describe()}",
                    actor_user_id=by.user_id,
                    actor_label=by.name,
                    data={"owner_agent_id": ticket.owner_agent_id, "change_id": row.id,
                          "change_kind": row.kind},
                )  # fmt: skip
            detail = self._detail(s, row)
            AuditRepository(s).record(
                actor_label=by.label, actor_user_id=by.user_id, action="change_requested",
                object_type="change", object_id=row.id, account_id=row.account_id,
                data={"kind": row.kind, "service_id": row.service_id, "ticket_id": row.ticket_id},
            )  # fmt: skip
            remember_answer(s, by, key, request_hash, 202, detail.model_dump(mode="json"))
            return detail

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

    # -- reading ------------------------------------------------------------------------
    def get(self, change_id: str, by: Principal) -> ChangeDetail:
        """One change; a customer sees only their account's (404 otherwise)."""
        with self.db.read() as s:
            row = ChangeRepository(s).find(change_id) if _is_uuid(change_id) else None
            if row is None or (by.role == "customer" and row.account_id != by.account_id):
                raise ChangeNotFound(f"change {change_id} not found")
            detail = self._detail(s, row)
            return for_customer(detail) if by.role == "customer" else detail

    def _detail(self, s: Session, row: ChangeRequest) -> ChangeDetail:
        host = HostRepository(s).get(row.host_id).name if row.host_id else None
        return ChangeDetail(
            id=row.id,
            account_id=row.account_id,
            service_id=row.service_id,
            kind=row.kind,
            status=row.status,
            source=row.source,
            host=host,
            host_id=row.host_id,
            ticket_number=ticket_number(row.ticket_id) if row.ticket_id else None,
            params=public_params(row.kind, row.params),
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
            applied_at=row.applied_at,
            attempts=[
                AttemptRead(
                    attempt=a.attempt,
                    outcome=a.outcome,
                    finished_at=a.finished_at,
                    output=a.output,
                    error=a.error,
                )
                for a in ChangeRepository(s).attempts(row.id)
            ],
        )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True

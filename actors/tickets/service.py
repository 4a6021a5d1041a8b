"""Every ticket operation as one unit of work on the SCDB.

Each operation changes the ticket, writes its event, the account-timeline entry and the outbox
row in the same transaction, and (with an idempotency key) the answer to a retry. The actors
call this; it holds no state that the database does not also hold. The rules themselves live
beside it: filing (new tickets), assignment, the lifecycle (every step on one ticket), and the
SLA policies; what a ticket looks like to its readers is the read model in store/read/.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from actors.clock import Clock
from actors.config import ActorConfig
from actors.errors import (
    DeskError,
)
from actors.principal import Principal
from actors.sla.business_time import SlaTargets
from actors.sla.policy import SlaPolicies
from actors.tickets.assignment import TicketAssignment
from actors.tickets.commands import TicketCommand
from actors.tickets.dto import (
    NewTicket,
    OpOutcome,
)
from actors.tickets.filing import TicketFiling
from actors.tickets.lifecycle import TicketLifecycle
from store.db import Database
from store.models.base import utcnow
from store.read.tickets import TicketProjection, TicketRead


class TicketService:
    """The ticket rules of one process, built from the database, the config and a clock."""

    def __init__(self, db: Database, config: ActorConfig, now: Clock = utcnow) -> None:
        self.db = db
        self.config = config
        self.now = now
        self.sla = SlaPolicies(config)
        self.projection = TicketProjection(db)
        self.filing = TicketFiling(db, config, self.sla, now)
        self.assignment = TicketAssignment(db, self.projection, now)
        self.lifecycle = TicketLifecycle(db, config, self.projection, self.sla, now)

    def sla_targets(self, s: Session) -> dict[str, SlaTargets]:
        return self.sla.targets(s)

    def create_many(self, items: list[NewTicket]) -> list[TicketRead | DeskError]:
        return self.filing.create_many(items)

    def create_one(self, s: Session, item: NewTicket) -> TicketRead | DeskError:
        """File one ticket in the caller's transaction (rows readable in `s` afterwards)."""
        return self.filing._create_one(s, item)

    def assign_many(self, tier: int, pairs: list[tuple[int, int]]) -> list[TicketRead | None]:
        return self.assignment.assign_many(tier, pairs)

    def operate(
        self,
        ticket_id: int,
        command: TicketCommand,
        by: Principal,
        *,
        key: str | None = None,
        request_hash: str = "",
    ) -> OpOutcome:
        """Run one command on a ticket as a unit of work (see `TicketLifecycle.operate`)."""
        return self.lifecycle.operate(ticket_id, command, by, key=key, request_hash=request_hash)

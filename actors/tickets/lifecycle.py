"""The life of one ticket: every step on it as a unit of work, under the row lock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from actors.clock import Clock
from actors.config import ActorConfig
from actors.errors import (
    AlreadyOwned,
    InvalidInput,
    InvalidTransition,
    NotAllowed,
    TicketNotFound,
    TopTierReached,
)
from actors.idempotency import earlier_answer, remember_answer
from actors.principal import Principal
from actors.tickets.dto import (
    OpOutcome,
    QueuedTicket,
)
from actors.tickets.projection import TicketProjection
from store.db import Database
from store.errors import NotFoundError
from store.models import Agent, Ticket
from store.repositories import (
    TicketRepository,
)
from store.repositories.ticket import (
    OPEN_STATUSES,
)

TOP_TIER = 3
CUSTOMER_CHANNELS = ("portal", "api")
OWNED_STATUSES = ("open", "pending_customer", "pending_change")


def queued(ticket: Ticket) -> QueuedTicket:
    return QueuedTicket(
        id=ticket.id,
        tier=ticket.tier,
        priority=ticket.priority,
        category=ticket.category,
        created_at=ticket.created_at,
    )


class TicketLifecycle:
    def __init__(
        self, db: Database, config: ActorConfig, projection: TicketProjection, now: Clock
    ) -> None:
        self.db = db
        self.config = config
        self.projection = projection
        self.now = now

    def operate(
        self,
        op: str,
        ticket_id: int,
        by: Principal,
        *,
        key: str | None = None,
        request_hash: str = "",
        **args: Any,
    ) -> OpOutcome:
        """Run one operation (`take`, `message`, `escalate`, ...) as a unit of work."""
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            raise InvalidInput(f"unknown operation {op!r}")
        with self.db.write() as s:
            earlier = earlier_answer(s, by, key, request_hash)
            if earlier is not None:
                return OpOutcome.model_validate({**earlier, "replayed": True})
            try:
                ticket = TicketRepository(s).lock(ticket_id)
            except NotFoundError as exc:
                raise TicketNotFound(f"ticket {ticket_id} not found") from exc
            if by.role == "customer" and ticket.account_id != by.account_id:
                raise TicketNotFound(f"ticket {ticket_id} not found")
            outcome: OpOutcome = handler(s, ticket, by, **args)
            remember_answer(s, by, key, request_hash, 200, outcome.model_dump(mode="json"))
            return outcome

    def _done(self, s: Session, t: Ticket, **effects: Any) -> OpOutcome:
        s.flush()
        return OpOutcome(ticket=self.projection.read(s, t), **effects)

    def _op_take(self, s: Session, t: Ticket, by: Principal) -> OpOutcome:
        if by.role != "agent" or by.agent_id is None:
            raise NotAllowed("only agents take tickets")
        if t.owner_agent_id == by.agent_id:
            return self._done(s, t)
        if t.owner_agent_id is not None:
            raise AlreadyOwned(
                f"{t.number} is owned by {self.projection.owner_name(s, t.owner_agent_id)}"
            )
        if t.tier != by.tier:
            raise NotAllowed(f"{t.number} is in the level {t.tier} queue, you work level {by.tier}")
        if t.status not in OPEN_STATUSES:
            raise InvalidTransition(f"{t.number} is {t.status}; reopen it first")
        t.owner_agent_id = by.agent_id
        t.status = "open"
        self._event(s, t, "assigned", f"{t.number} taken by {by.name}", by,
                    agent_id=by.agent_id, agent=by.name)  # fmt: skip
        return self._done(s, t, reclaimed_agent=by.agent_id)

    def _op_handover(self, s: Session, t: Ticket, by: Principal, agent_id: int) -> OpOutcome:
        self._staff_only(by, "hand over tickets")
        target = s.get(Agent, agent_id)
        if target is None or target.tier != t.tier:
            raise InvalidInput(f"agent {agent_id} is not a level {t.tier} agent")
        if t.status not in OWNED_STATUSES and t.status != "new":
            raise InvalidTransition(f"{t.number} is {t.status}; it can not be handed over")
        previous = t.owner_agent_id
        t.owner_agent_id = agent_id
        if t.status == "new":
            t.status = "open"
        name = self.projection.owner_name(s, agent_id)
        self._event(s, t, "assigned", f"{t.number} handed over to {name}", by,
                    agent_id=agent_id, agent=name, from_agent_id=previous)  # fmt: skip
        return self._done(s, t, released_agent=previous, reclaimed_agent=agent_id)

    def _op_message(
        self,
        s: Session,
        t: Ticket,
        by: Principal,
        body: str,
        visibility: str = "public",
        pending_customer: bool = False,
    ) -> OpOutcome:
        if by.role == "customer" and visibility != "public":
            raise NotAllowed("customers can only post public messages")
        if t.status == "closed":
            raise InvalidTransition(f"{t.number} is closed; open a new ticket")
        now = self.now()
        internal = visibility == "internal"
        direction = "internal" if internal else ("inbound" if by.role == "customer" else "outbound")
        TicketRepository(s).add_message(
            t, direction=direction, channel="portal", body=body, author_name=by.name,
            author_user_id=by.user_id, visibility=visibility,
        )  # fmt: skip
        effects: dict[str, Any] = {}
        self._event(s, t, "message", f"{by.name} wrote on {t.number}", by,
                    visibility=visibility, direction=direction)  # fmt: skip
        if by.role == "customer":
            if t.status == "resolved":
                effects = self._reopen(s, t, by, "the customer replied")
            elif t.status == "pending_customer":
                self._resume_sla(t, now)
                t.status = "open" if t.owner_agent_id else "new"
                self._event(s, t, "status", f"{t.number}: the customer replied", by)
        elif not internal:
            if t.first_responded_at is None:
                t.first_responded_at = now
            if pending_customer and t.status in ("open", "new"):
                t.status = "pending_customer"
                t.sla_paused_at = now
                self._event(s, t, "status", f"{t.number} is waiting for your reply", by)
        s.expire(t, ["message_count"])
        return self._done(s, t, **effects)

    def _op_escalate(self, s: Session, t: Ticket, by: Principal, reason: str) -> OpOutcome:
        self._staff_only(by, "escalate tickets")
        if t.status in ("resolved", "closed"):
            raise InvalidTransition(f"{t.number} is {t.status}; reopen it before escalating")
        if t.tier >= TOP_TIER:
            raise TopTierReached(
                f"{t.number} is already at level {TOP_TIER}, the highest support tier"
            )
        previous = t.owner_agent_id
        t.tier += 1
        t.owner_agent_id = None
        if t.status == "pending_customer":
            self._resume_sla(t, self.now())
        t.status = "new"
        TicketRepository(s).add_message(
            t, direction="internal", channel="portal", visibility="internal",
            body=f"Escalated to level {t.tier}: {reason}", author_name=by.name,
            author_user_id=by.user_id,
        )  # fmt: skip
        s.expire(t, ["message_count"])
        self._event(s, t, "escalated", f"{t.number} escalated to level {t.tier} support", by,
                    from_tier=t.tier - 1, previous_owner=previous)  # fmt: skip
        s.flush()
        return self._done(s, t, released_agent=previous, enqueue=queued(t))

    def _op_resolve(
        self, s: Session, t: Ticket, by: Principal, note: str | None = None
    ) -> OpOutcome:
        self._staff_only(by, "resolve tickets")
        if t.status in ("resolved", "closed"):
            raise InvalidTransition(f"{t.number} is already {t.status}")
        if note:
            TicketRepository(s).add_message(
                t, direction="outbound", channel="portal", body=note, author_name=by.name,
                author_user_id=by.user_id,
            )  # fmt: skip
            s.expire(t, ["message_count"])
        t.status = "resolved"
        t.resolved_at = self.now()
        t.sla_paused_at = None
        self._event(s, t, "resolved", f"{t.number} resolved", by)
        return self._done(s, t, released_agent=t.owner_agent_id)

    def _op_reopen(self, s: Session, t: Ticket, by: Principal) -> OpOutcome:
        if t.status != "resolved":
            raise InvalidTransition(f"{t.number} is {t.status}; only a resolved ticket reopens")
        return self._done(s, t, **self._reopen(s, t, by, "reopened"))

    def _op_close(self, s: Session, t: Ticket, by: Principal) -> OpOutcome:
        if t.status == "closed":
            raise InvalidTransition(f"{t.number} is already closed")
        owned = t.owner_agent_id if t.status in OWNED_STATUSES else None
        t.status = "closed"
        t.closed_at = self.now()
        self._event(s, t, "closed", f"{t.number} closed", by)
        return self._done(s, t, released_agent=owned)

    def _op_sla(
        self, s: Session, t: Ticket, by: Principal, which: str, kind: str, at: str
    ) -> OpOutcome:
        """An SLA warning or breach seen by the SLA clock at `at`; a breach escalates one
        tier and tells the owner. Re-checked here, so a stale timer does nothing."""
        now = datetime.fromisoformat(at)
        due = t.first_response_due if which == "first_response" else t.resolution_due
        if which == "first_response" and t.first_responded_at is not None:
            return self._done(s, t)
        if t.status not in OPEN_STATUSES or t.sla_paused_at is not None or due is None:
            return self._done(s, t)
        owner = t.owner_agent_id
        if kind == "warning":
            if now < t.created_at + (due - t.created_at) * 0.5:
                return self._done(s, t)
            t.sla_warned_at = now
            self._event(s, t, "sla_warning", f"{t.number}: {which} SLA is about to be missed",
                        by, visibility="internal", which=which, owner_agent_id=owner)  # fmt: skip
            return self._done(s, t)
        if now < due:
            return self._done(s, t)
        t.sla_breached_at = t.sla_breached_at or now
        self._event(s, t, "sla_breach", f"{t.number}: {which} SLA missed", by,
                    visibility="internal", which=which, owner_agent_id=owner)  # fmt: skip
        if t.tier < TOP_TIER:
            return self._op_escalate(s, t, by, reason=f"{which} SLA missed")
        return self._done(s, t)

    def _op_auto_close(self, s: Session, t: Ticket, by: Principal, at: str) -> OpOutcome:
        """Close a resolved ticket that stayed quiet for the configured period."""
        quiet = timedelta(hours=self.config.auto_close_after_hours)
        if t.status != "resolved" or t.resolved_at is None:
            return self._done(s, t)
        if datetime.fromisoformat(at) < t.resolved_at + quiet:
            return self._done(s, t)
        t.status = "closed"
        t.closed_at = self.now()
        self._event(s, t, "closed", f"{t.number} closed after {quiet.days or quiet} without reply",
                    by, automatic=True)  # fmt: skip
        return self._done(s, t)

    # -- helpers ------------------------------------------------------------------------
    def _reopen(self, s: Session, t: Ticket, by: Principal, why: str) -> dict[str, Any]:
        t.status = "open" if t.owner_agent_id else "new"
        t.resolved_at = None
        self._event(s, t, "reopened", f"{t.number} reopened: {why}", by)
        if t.owner_agent_id:
            return {"reclaimed_agent": t.owner_agent_id}
        s.flush()
        return {"enqueue": queued(t)}

    def _resume_sla(self, t: Ticket, now: datetime) -> None:
        """Move the due times on by the time the ticket waited on the customer."""
        if t.sla_paused_at is None:
            return
        paused = now - t.sla_paused_at
        if t.first_responded_at is None and t.first_response_due:
            t.first_response_due += paused
        if t.resolution_due:
            t.resolution_due += paused
        t.sla_paused_at = None

    @staticmethod
    def _staff_only(by: Principal, what: str) -> None:
        if not by.is_staff:
            raise NotAllowed(f"only support staff {what}")

    def _event(
        self,
        s: Session,
        t: Ticket,
        kind: str,
        summary: str,
        by: Principal,
        *,
        visibility: str = "public",
        **data: Any,
    ) -> None:
        t.updated_at = self.now()
        s.flush()
        TicketRepository(s).add_event(
            t,
            kind,
            summary=summary,
            actor_user_id=by.user_id,
            actor_label=by.name,
            visibility=visibility,
            data={"owner_agent_id": t.owner_agent_id, "status": t.status, **data},
        )

"""Every ticket operation as one unit of work on the SCDB.

Each operation changes the ticket, writes its event, the account-timeline entry and the outbox
row in the same transaction, and (with an idempotency key) the answer to a retry. The actors
call this; it holds no state that the database does not also hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table
from sqlalchemy.orm import Session

from actors.business_time import BusinessCalendar, SlaTargets
from actors.classify import classify
from actors.config import ActorConfig
from actors.dto import (
    SYSTEM,
    AttachmentRead,
    EventRead,
    MessageRead,
    NewTicket,
    OpOutcome,
    OwnerRead,
    Principal,
    QueuedTicket,
    TicketDetail,
    TicketRead,
)
from actors.errors import (
    AlreadyOwned,
    ContactNotFound,
    DeskError,
    IdempotencyMismatch,
    InvalidInput,
    InvalidTransition,
    NotAllowed,
    PriorityNotAllowed,
    RateLimited,
    TicketNotFound,
    TopTierReached,
)
from actors.idempotency import REUSED, earlier_answer, remember_answer
from store.db import Database
from store.errors import IntegrityViolation, NotFoundError
from store.models import Agent, IdempotencyRecord, Ticket
from store.models.base import utcnow
from store.models.enums import Priority
from store.models.ticket import ticket_number
from store.repositories import (
    AccountRepository,
    AgentRepository,
    IdempotencyRepository,
    SlaRepository,
    TicketRepository,
)
from store.repositories.ticket import (
    MESSAGES,
    OPEN_STATUSES,
    TICKETS,
    NewEvent,
    event_payload,
)
from store.repositories.timeline import TIMELINE, allocate_ids, insert_all

TOP_TIER = 3
CUSTOMER_CHANNELS = ("portal", "api")
OWNED_STATUSES = ("open", "pending_customer", "pending_change")
Clock = Callable[[], datetime]
IDEMPOTENCY = cast(Table, IdempotencyRecord.__table__)
READ_FIELDS = frozenset(TicketRead.model_fields)


def queued(ticket: Ticket) -> QueuedTicket:
    return QueuedTicket(
        id=ticket.id,
        tier=ticket.tier,
        priority=ticket.priority,
        category=ticket.category,
        created_at=ticket.created_at,
    )


class TicketService:
    def __init__(self, db: Database, config: ActorConfig, now: Clock = utcnow) -> None:
        self.db = db
        self.config = config
        self.now = now
        self._targets: dict[str, SlaTargets] = {}
        self._targets_loaded = 0.0
        self._agent_names: dict[int, str] = {}

    # -- SLA policy ---------------------------------------------------------------------
    def sla_targets(self, s: Session) -> dict[str, SlaTargets]:
        """Per-priority SLA targets, re-read from the SCDB at most once a minute."""
        if not self._targets or time.monotonic() - self._targets_loaded > 60:
            repo = SlaRepository(s)
            calendar = BusinessCalendar(self.config.business_hours, repo.holidays())
            self._targets = {
                prio: SlaTargets(
                    calendar,
                    first_response_minutes=p.first_response_minutes,
                    resolution_minutes=p.resolution_minutes,
                    business_hours=p.business_hours,
                    warn_percent=p.warn_percent,
                )
                for prio, p in repo.policies().items()
            }
            self._targets_loaded = time.monotonic()
        return self._targets

    # -- reading ------------------------------------------------------------------------
    def owner_name(self, s: Session, agent_id: int) -> str:
        name = self._agent_names.get(agent_id)
        if name is None:
            name = AgentRepository(s).display_name(agent_id) or f"agent {agent_id}"
            self._agent_names[agent_id] = name
        return name

    def read(self, s: Session, t: Ticket | Row[Any]) -> TicketRead:
        """The public view of a ticket, from its ORM object or a row with every column."""
        owner = (
            OwnerRead(agent_id=t.owner_agent_id, name=self.owner_name(s, t.owner_agent_id))
            if t.owner_agent_id is not None
            else None
        )
        return TicketRead(
            number=ticket_number(t.id),
            account_id=t.account_id,
            subject=t.subject,
            category=t.category,
            channel=t.channel,
            status=t.status,
            priority=t.priority,
            tier=t.tier,
            owner=owner,
            message_count=t.message_count,
            first_response_due=t.first_response_due,
            resolution_due=t.resolution_due,
            first_responded_at=t.first_responded_at,
            sla_breached_at=t.sla_breached_at,
            created_at=t.created_at,
            updated_at=t.updated_at,
            resolved_at=t.resolved_at,
            closed_at=t.closed_at,
        )

    def detail(self, ticket_id: int, *, include_internal: bool) -> TicketDetail:
        with self.db.read() as s:
            repo = TicketRepository(s)
            t = repo.find(ticket_id)
            if t is None:
                raise TicketNotFound(f"ticket {ticket_id} not found")
            messages = [
                MessageRead(
                    id=m.id,
                    direction=m.direction,
                    channel=m.channel,
                    visibility=m.visibility,
                    author=m.author_name,
                    body=m.body,
                    created_at=m.created_at,
                    attachments=[
                        AttachmentRead(
                            filename=a.filename,
                            content_type=a.content_type,
                            size=a.size,
                            sha256=a.sha256,
                        )
                        for a in m.attachments
                    ],
                )
                for m in repo.messages(ticket_id, include_internal=include_internal)
            ]
            events = [
                EventRead(
                    id=e.id,
                    kind=e.kind,
                    visibility=e.visibility,
                    data=e.data,
                    created_at=e.created_at,
                )
                for e in repo.events(ticket_id, include_internal=include_internal)
            ]
            return TicketDetail(**self.read(s, t).model_dump(), messages=messages, events=events)

    # -- creating -----------------------------------------------------------------------
    def create_many(self, items: list[NewTicket]) -> list[TicketRead | DeskError]:
        """File many new tickets in one transaction (group commit); isolate a bad one."""
        try:
            with self.db.write() as s:
                return self._create_batch(s, items)
        except (IntegrityViolation, DeskError) as exc:
            if len(items) == 1:
                return [self._as_desk_error(exc, items[0])]
        out: list[TicketRead | DeskError] = []
        for item in items:
            try:
                with self.db.write() as s:
                    out.append(self._create_one(s, item))
            except (IntegrityViolation, DeskError) as exc:
                out.append(self._as_desk_error(exc, item))
        return out

    @staticmethod
    def _as_desk_error(exc: Exception, item: NewTicket) -> DeskError:
        if isinstance(exc, DeskError):
            return exc
        if "foreign key" in str(exc).lower():
            return InvalidInput(
                f"account {item.account_id} or a contact of the request does not exist"
            )
        return InvalidInput(f"the database refused a value of the request: {exc}")

    def _create_one(self, s: Session, item: NewTicket) -> TicketRead | DeskError:
        """File one ticket in the caller's transaction (rows readable in `s` afterwards)."""
        return self._create_batch(s, [item])[0]

    def _idempotent_replays(
        self, s: Session, items: list[NewTicket]
    ) -> dict[tuple[int, str], IdempotencyRecord]:
        """The stored answers of the items' idempotency keys, in one query."""
        keys = {
            (item.requester.user_id, item.idempotency_key)
            for item in items
            if item.idempotency_key and item.requester.user_id is not None
        }
        return IdempotencyRepository(s).get_many(keys)

    def _create_batch(self, s: Session, items: list[NewTicket]) -> list[TicketRead | DeskError]:
        """File tickets with a few multi-row statements per batch, not a flush per row: the
        ticket rows (with their message count), first messages, 'created' events with their
        timeline entries and outbox rows, and the idempotency records."""
        replays = self._idempotent_replays(s, items)
        out: list[TicketRead | DeskError | None] = [None] * len(items)
        first_of_key: dict[tuple[int, str], int] = {}  # a key repeated within the batch
        repeats: list[tuple[int, int]] = []
        fresh: list[int] = []
        for i, item in enumerate(items):
            ident = (
                (item.requester.user_id, item.idempotency_key)
                if item.idempotency_key and item.requester.user_id is not None
                else None
            )
            if ident is not None:
                rec = replays.get(ident)
                earlier = first_of_key.get(ident)
                if rec is not None or earlier is not None:
                    stored_hash = rec.request_hash if rec else items[earlier or 0].request_hash
                    if stored_hash != item.request_hash:
                        out[i] = IdempotencyMismatch(REUSED)
                    elif rec is not None:
                        out[i] = TicketRead.model_validate(rec.response)
                    else:
                        repeats.append((i, earlier or 0))
                    continue
                first_of_key[ident] = i
            fresh.append(i)
        fresh = self._admissible(s, items, fresh, out)
        if fresh:
            self._insert_new(s, items, fresh, out)
        for i, earlier in repeats:
            out[i] = out[earlier]
        return [r for r in out if r is not None]

    def _admissible(
        self,
        s: Session,
        items: list[NewTicket],
        fresh: list[int],
        out: list[TicketRead | DeskError | None],
    ) -> list[int]:
        """The fresh items that may be filed; the others get their error in `out`. A contact
        must be one of the ticket's account (another account's is answered like one that does
        not exist); customers choose at most `high`; a customer account opens at most
        `customer_tickets_per_hour` tickets an hour."""
        repo = TicketRepository(s)
        contacts = repo.contact_accounts({c for i in fresh if (c := items[i].contact_id)})
        limit = self.config.customer_tickets_per_hour
        now = self.now()
        by_customer = {items[i].account_id for i in fresh if items[i].requester.role == "customer"}
        window = timedelta(hours=1)
        opened = repo.opened_since(by_customer, now - window, CUSTOMER_CHANNELS) if limit else {}
        kept: list[int] = []
        for i in fresh:
            item = items[i]
            customer = item.requester.role == "customer"
            if item.contact_id is not None and contacts.get(item.contact_id) != item.account_id:
                out[i] = ContactNotFound(f"contact {item.contact_id} not found")
            elif customer and item.priority is Priority.urgent:
                out[i] = PriorityNotAllowed(
                    "customers choose a priority up to 'high'; support sets 'urgent'"
                )
            elif customer and limit and opened.get(item.account_id, (0, now))[0] >= limit:
                oldest = opened[item.account_id][1]
                out[i] = RateLimited(
                    f"at most {limit} tickets an hour per account; add to an open ticket instead",
                    retry_after=int((oldest + window - now).total_seconds()) + 1,
                )
            else:
                if customer and limit:
                    n, oldest = opened.get(item.account_id, (0, now))
                    opened[item.account_id] = (n + 1, oldest)
                kept.append(i)
        return kept

    def _insert_new(
        self,
        s: Session,
        items: list[NewTicket],
        fresh: list[int],
        out: list[TicketRead | DeskError | None],
    ) -> None:
        now = self.now()
        targets = self.sla_targets(s)
        rows: list[dict[str, Any]] = []
        for i in fresh:
            item = items[i]
            category, priority = classify(item.subject, item.body)
            category = item.category or category
            priority = item.priority.value if item.priority else priority
            target = targets.get(priority)
            first_due, resolve_due = target.due(now) if target else (None, None)
            rows.append(
                {
                    "account_id": item.account_id,
                    "contact_id": item.contact_id,
                    "requester_user_id": item.requester.user_id,
                    "subject": item.subject,
                    "category": category,
                    "channel": item.channel.value,
                    "status": "new",
                    "priority": priority,
                    "tier": 1,
                    "owner_agent_id": None,
                    "first_response_due": first_due,
                    "resolution_due": resolve_due,
                    "first_responded_at": None,
                    "sla_paused_at": None,
                    "sla_warned_at": None,
                    "sla_breached_at": None,
                    "resolved_at": None,
                    "closed_at": None,
                    "updated_at": now,
                    "created_at": now,
                    "message_count": 1,
                    "version": 1,
                }
            )
        ids, timeline_ids = allocate_ids(s, [TICKETS, TIMELINE], len(fresh))
        messages: list[dict[str, Any]] = []
        events: list[NewEvent] = []
        records: list[dict[str, Any]] = []
        for i, ticket_id, row in zip(fresh, ids, rows, strict=True):
            item = items[i]
            row["id"] = ticket_id
            number = ticket_number(ticket_id)
            channel = item.channel.value
            messages.append(
                {
                    "ticket_id": ticket_id,
                    "direction": "inbound",
                    "channel": channel,
                    "visibility": "public",
                    "author_user_id": item.requester.user_id,
                    "author_name": item.requester.name,
                    "body": item.body,
                    "email_message_id": item.email_message_id,
                    "headers": item.email_headers or {},
                    "created_at": now,
                }
            )
            data = {
                "owner_agent_id": None,
                "status": "new",
                "channel": channel,
                "category": row["category"],
                "priority": row["priority"],
            }
            events.append(
                NewEvent(
                    ticket_id=ticket_id,
                    account_id=item.account_id,
                    kind="created",
                    summary=f"{number} opened by {channel}: {item.subject}",
                    data=event_payload(number, "new", 1, data),
                    actor_user_id=item.requester.user_id,
                    actor_label=item.requester.name,
                )
            )
            read = TicketRead(
                number=number, owner=None, **{k: v for k, v in row.items() if k in READ_FIELDS}
            )
            out[i] = read
            if item.idempotency_key and item.requester.user_id is not None:
                records.append(
                    {
                        "user_id": item.requester.user_id,
                        "key": item.idempotency_key,
                        "request_hash": item.request_hash,
                        "status_code": 201,
                        "response": read.model_dump(mode="json"),
                        "created_at": now,
                    }
                )
        # One round trip on PostgreSQL for every row of the batch, in foreign-key order.
        insert_all(
            s,
            [
                (TICKETS, rows),
                (MESSAGES, messages),
                *TicketRepository.event_rows(events, timeline_ids, at=now),
                (IDEMPOTENCY, records),
            ],
        )

    # -- assignment ---------------------------------------------------------------------
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
                name = self.owner_name(s, agent_id)
                number = ticket_number(ticket_id)
                events.append(
                    NewEvent(
                        ticket_id=ticket_id,
                        account_id=row.account_id,
                        kind="assigned",
                        summary=f"{number} is handled by {name} (level {tier})",
                        data=event_payload(
                            number,
                            "open",
                            row.tier,
                            {
                                "owner_agent_id": agent_id,
                                "status": "open",
                                "agent_id": agent_id,
                                "agent": name,
                            },
                        ),
                        actor_user_id=SYSTEM.user_id,
                        actor_label=SYSTEM.name,
                    )
                )
                out.append(self.read(s, row))
            TicketRepository(s).add_events(events, at=now)
        return out

    # -- operations on one ticket ---------------------------------------------------------
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
        return OpOutcome(ticket=self.read(s, t), **effects)

    def _op_take(self, s: Session, t: Ticket, by: Principal) -> OpOutcome:
        if by.role != "agent" or by.agent_id is None:
            raise NotAllowed("only agents take tickets")
        if t.owner_agent_id == by.agent_id:
            return self._done(s, t)
        if t.owner_agent_id is not None:
            raise AlreadyOwned(f"{t.number} is owned by {self.owner_name(s, t.owner_agent_id)}")
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
        name = self.owner_name(s, agent_id)
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

    # -- lookups ----------------------------------------------------------------------
    def account_of(self, ticket_id: int) -> int:
        with self.db.read() as s:
            t = TicketRepository(s).find(ticket_id)
            if t is None:
                raise TicketNotFound(f"ticket {ticket_id} not found")
            return t.account_id

    def account_exists(self, account_id: int) -> bool:
        with self.db.read() as s:
            return AccountRepository(s).find(account_id) is not None

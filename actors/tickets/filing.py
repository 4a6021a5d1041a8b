"""Filing new tickets: group commit of many tickets with a few multi-row statements."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from actors.clock import Clock
from actors.config import ActorConfig
from actors.errors import (
    ContactNotFound,
    DeskError,
    IdempotencyMismatch,
    InvalidInput,
    MailAlreadySettled,
    PriorityNotAllowed,
    RateLimited,
)
from actors.idempotency import REUSED
from actors.sla.policy import SlaPolicies
from actors.tickets.classify import classify
from actors.tickets.dto import NewTicket
from actors.tickets.states import FILED
from store.db import Database
from store.errors import IntegrityViolation
from store.models import IdempotencyRecord
from store.models.enums import CUSTOMER_CHANNELS, InboundStatus, Priority
from store.models.ticket import ticket_number
from store.read.tickets import TicketRead
from store.repositories import (
    IdempotencyRepository,
    InboundMailRepository,
    MessageRepository,
    TicketEventRepository,
    TicketRepository,
)
from store.repositories.message import MESSAGES, NewAttachment
from store.repositories.ticket import TICKETS
from store.repositories.ticket_event import NewEvent, event_payload
from store.repositories.timeline import TIMELINE, allocate_ids, insert_all

IDEMPOTENCY = cast(Table, IdempotencyRecord.__table__)
READ_FIELDS = frozenset(TicketRead.model_fields)


class TicketFiling:
    def __init__(self, db: Database, config: ActorConfig, sla: SlaPolicies, now: Clock) -> None:
        self.db = db
        self.config = config
        self.sla = sla
        self.now = now

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
        # What customers open themselves (the portal, the API) is limited; mail is not: an MTA
        # would only retry it, and loops are stopped where the desk answers mail.
        by_customer = {
            items[i].account_id
            for i in fresh
            if items[i].requester.role == "customer" and items[i].channel in CUSTOMER_CHANNELS
        }
        window = timedelta(hours=1)
        opened = repo.opened_since(by_customer, now - window, CUSTOMER_CHANNELS) if limit else {}
        kept: list[int] = []
        for i in fresh:
            item = items[i]
            customer = item.requester.role == "customer"
            limited = customer and item.channel in CUSTOMER_CHANNELS
            if item.contact_id is not None and contacts.get(item.contact_id) != item.account_id:
                out[i] = ContactNotFound(f"contact {item.contact_id} not found")
            elif customer and item.priority is Priority.urgent:
                out[i] = PriorityNotAllowed(
                    "customers choose a priority up to 'high'; support sets 'urgent'"
                )
            elif limited and limit and opened.get(item.account_id, (0, now))[0] >= limit:
                oldest = opened[item.account_id][1]
                out[i] = RateLimited(
                    f"at most {limit} tickets an hour per account; add to an open ticket instead",
                    retry_after=int((oldest + window - now).total_seconds()) + 1,
                )
            else:
                if limited and limit:
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
        targets = self.sla.targets(s)
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
                    "status": FILED,
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
                    "inbound_mail_id": item.inbound_mail_id,
                    "created_at": now,
                }
            )
            data = {
                "owner_agent_id": None,
                "status": FILED,
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
                    data=event_payload(number, FILED, 1, data),
                    tier=1,
                    owner_agent_id=None,
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
                *TicketEventRepository.event_rows(events, timeline_ids, at=now),
                (IDEMPOTENCY, records),
            ],
        )
        filed = [(items[i], tid) for i, tid in zip(fresh, ids, strict=True)]
        self._settle_mails(s, filed, now)
        self._store_files(s, filed)

    @staticmethod
    def _settle_mails(s: Session, filed: list[tuple[NewTicket, int]], now: datetime) -> None:
        """Tickets opened by received mail claim their stored mail in the same unit of work
        (a mail claimed before fails this batch, which then files one by one: only that
        ticket is refused)."""
        mails = InboundMailRepository(s)
        for item, ticket_id in filed:
            if item.inbound_mail_id is None:
                continue
            if not mails.claim(item.inbound_mail_id, InboundStatus.ticketed, at=now,
                               ticket_id=ticket_id, detail="opened a new ticket"):  # fmt: skip
                raise MailAlreadySettled(f"mail {item.inbound_mail_id} was settled before")

    @staticmethod
    def _store_files(s: Session, filed: list[tuple[NewTicket, int]]) -> None:
        """The files of each new ticket (a received mail's, or uploaded with it) on its first
        message, in the same unit of work: an acknowledged ticket never lacks them."""
        with_files = [(item, tid) for item, tid in filed if item.attachments]
        if not with_files:
            return
        messages = MessageRepository(s)
        first = messages.first_message_ids([tid for _, tid in with_files])
        for item, ticket_id in with_files:
            messages.add_attachments(
                first[ticket_id],
                [NewAttachment(a.filename, a.content_type, a.data) for a in item.attachments],
            )

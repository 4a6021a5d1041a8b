"""Settling changes: what an executor starts, and the outcomes it reports.

Recording an outcome writes the change's status, the attempt, the timeline entry and outbox
row, the ticket's way back to `open` and, when a customer's self-service change failed, a
tier-1 ticket with the failure attached - again in one transaction, and only once per change
(a conditional UPDATE on the status). The change id (a UUID) is also the id in the host's
journal, so a change handed to an executor twice is applied once.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from actors.changes.access import (
    _category,
)
from actors.changes.dto import (
    ACCEPTED,
    Recorded,
)
from actors.changes.standing import record_standing
from actors.changes.stored import (
    clean_output,
    describe_stored,
    rebuild_change,
    scrub_kept_secrets,
)
from actors.changes.timeline import announce_applying, change_timeline
from actors.config import ActorConfig
from actors.errors import (
    DeskError,
)
from actors.principal import SYSTEM, Principal
from actors.text import scrub
from actors.tickets.commands import ChangeSettled
from actors.tickets.dto import NewTicket, QueuedTicket
from actors.tickets.service import TicketService
from automation.executor.outcome import ChangeOutcome
from automation.executor.request import ChangeRequest as HostChange
from store.db import Database
from store.models import ChangeRequest, Ticket
from store.models.base import utcnow
from store.models.enums import ChangeStatus, Channel, Priority
from store.models.ticket import ticket_id_from_number
from store.read.changes import CUSTOMER_ERROR, KEPT_SECRETS, PENDING, is_change_id, public_params
from store.repositories import (
    ChangeRepository,
    HostRepository,
    MessageRepository,
    TicketEventRepository,
    TicketRepository,
)
from store.repositories.message import NewAttachment

STATUS_OF_OUTCOME = {
    "applied": "applied",
    "already_applied": "applied",
    "failed": "failed",
    "rolled_back": "rolled_back",
    "unknown": "failed",
}
RECORD_TRIES = 3  # a change's outcome that fails to record this often is dead-lettered


class ChangeSettler:
    def __init__(self, db: Database, config: ActorConfig, now: Any = utcnow) -> None:
        self.db = db
        self.config = config
        self.now = now
        self.tickets = TicketService(db, config, now)

    def pending_for(self, host_ids: list[int], *, older_than: float = 0.0) -> list[tuple[str, int]]:
        """(change id, host id) of every change still queued or applying on these hosts."""
        out: list[tuple[str, int]] = []
        now = utcnow()
        with self.db.read() as s:
            repo = ChangeRepository(s)
            for host_id in host_ids:
                for row in repo.pending(host_id=host_id):
                    if (now - row.updated_at).total_seconds() >= older_than:
                        out.append((row.id, host_id))
        return out

    def start(self, change_ids: list[str]) -> list[tuple[int, HostChange]]:
        """Mark these changes `applying` and return (host id, host change) for those still
        pending; a change already settled is left alone. A change that can not be rebuilt
        from what is stored (a rule tightened since it was accepted) fails on its own, with
        the reason: it never holds the others back."""
        out: list[tuple[int, HostChange]] = []
        broken: list[tuple[str, str]] = []
        with self.db.write() as s:
            repo = ChangeRepository(s)
            hosts = HostRepository(s)
            for change_id in change_ids:
                row = repo.find(change_id) if is_change_id(change_id) else None
                if row is None or row.status not in PENDING or row.host_id is None:
                    continue
                try:
                    change = rebuild_change(row.kind, row.params)
                    request = HostChange.model_validate(  # re-validates `change`: in context
                        {"change_id": row.id, "host_id": hosts.get(row.host_id).name,
                         "change": change},
                        context=ACCEPTED,
                    )  # fmt: skip
                except Exception as exc:
                    broken.append((row.id, f"its stored parameters are no longer valid: {exc}"))
                    continue
                if row.status == "queued":
                    row.status = "applying"
                    row.updated_at = self.now()
                    ticket = TicketRepository(s).get(row.ticket_id) if row.ticket_id else None
                    describe = describe_stored(row.kind, row.params)
                    announce_applying(s, row, f"Change being applied: {describe}", ticket)
                out.append((row.host_id, request))
        for change_id, reason in broken:
            self.dead_letter(change_id, reason)
        return out

    def dead_letter(self, change_id: str, reason: str) -> bool:
        """Settle a change as failed with `reason`, writing as little as possible (status,
        attempt, timeline entry): for a change whose outcome could not be recorded the usual
        way. False when it was settled already."""
        with self.db.write() as s:
            repo = ChangeRepository(s)
            reason = clean_output(reason)[:2000]
            if not repo.settle(change_id, PENDING, status="failed", error=reason,
                               updated_at=self.now()):  # fmt: skip
                return False
            row = repo.get(change_id)
            s.refresh(row)
            repo.add_attempt(row.id, outcome="failed", error=reason)
            summary = f"Change failed: {describe_stored(row.kind, row.params)}"
            change_timeline(s, row, "failed", summary, SYSTEM, error=CUSTOMER_ERROR["failed"])
            return True

    def record(self, outcomes: list[ChangeOutcome]) -> Recorded:
        """Record outcomes reported by an executor, in one transaction; each change settles
        once (a later report of a settled change only adds nothing)."""
        result = Recorded()
        with self.db.write() as s:
            for outcome in outcomes:
                self._record_one(s, outcome, result)
        return result

    def _record_one(self, s: Session, outcome: ChangeOutcome, result: Recorded) -> None:
        status = STATUS_OF_OUTCOME[outcome.status]
        now = self.now()
        error = clean_output(outcome.error) if outcome.error is not None else None
        if outcome.status == "unknown":
            error = f"outcome unknown, an agent must check the host: {error or ''}".strip()
        values: dict[str, Any] = {"status": status, "error": error, "updated_at": now}
        if status == "applied":
            values["applied_at"] = now
        if not ChangeRepository(s).settle(outcome.change_id, PENDING, **values):
            return  # unknown or already settled: recorded once, never twice
        row = ChangeRepository(s).get(outcome.change_id)
        s.refresh(row)
        tries = f" (after {outcome.attempts} tries)" if outcome.attempts > 1 else ""
        ChangeRepository(s).add_attempt(
            row.id, outcome=outcome.status, output=clean_output(outcome.output) + tries, error=error
        )
        result.settled.append(row.id)
        result.accounts.add(row.account_id)
        if status == "applied":  # a suspension on the hosts is one in the SCDB too
            record_standing(s, row.account_id, row.kind, now)
        describe = describe_stored(row.kind, row.params)
        if row.kind in KEPT_SECRETS:  # settled: the host has the secret, we need it no more
            row.params = scrub_kept_secrets(row.params)
        ticket = TicketRepository(s).lock(row.ticket_id) if row.ticket_id else None
        opened: Ticket | None = None
        if status != "applied" and row.source == "portal" and ticket is None:
            opened = self._failure_ticket(s, row, describe, outcome, result)
            row.ticket_id = opened.id
        word = {"applied": "applied", "failed": "failed", "rolled_back": "rolled back"}[status]
        summary = f"Change {word}: {describe}"
        if opened is not None:
            summary += f"; support will follow up in {opened.number}"
        # The timeline is the customer's: the plain words, not the host's output.
        change_timeline(s, row, status, summary, SYSTEM, ticket=ticket or opened,
                       error=CUSTOMER_ERROR.get(status))  # fmt: skip
        if ticket is not None:
            self._settle_ticket(s, ticket, row, status, describe, result)

    def _settle_ticket(
        self,
        s: Session,
        ticket: Ticket,
        row: ChangeRequest,
        status: str,
        describe: str,
        result: Recorded,
    ) -> None:
        """The ticket hears its change settled: with no other pending, it is back at work."""
        others = ChangeRepository(s).pending_count(PENDING, ticket_id=ticket.id, excluding=row.id)
        step = ChangeSettled(
            change_id=row.id,
            change_kind=row.kind,
            status=ChangeStatus(status),
            describe=describe,
            others_pending=bool(others),
            error=CUSTOMER_ERROR.get(status),
        )
        outcome = self.tickets.lifecycle.apply(s, ticket, step, SYSTEM)
        if outcome.enqueue is not None:  # back in its tier's queue (it had no owner)
            result.tickets.append(outcome.enqueue)

    def _failure_ticket(
        self,
        s: Session,
        row: ChangeRequest,
        describe: str,
        outcome: ChangeOutcome,
        result: Recorded,
    ) -> Ticket:
        """A tier-1 ticket for a failed self-service change, in the same transaction as the
        failure itself: a failure is never recorded without its ticket, nor ticketed twice.
        While a ticket for an earlier failure of the same service is still open, the failure
        is added to that ticket instead: repeated failures make one ticket, not a flood."""
        # The ticket's first message is the customer's to read too: plain words; the host's
        # error and output go into the internal note's attachment.
        body = (
            f"A self-service change failed and needs a look.\n\n"
            f"Change: {describe}\nChange id: {row.id}\nKind: {row.kind}\n"
            f"Outcome: {outcome.status}\n"
        )
        earlier = (
            ChangeRepository(s).open_failure_ticket(row.service_id, excluding=row.id)
            if row.service_id is not None
            else None
        )
        if earlier is not None:
            ticket = TicketRepository(s).lock(earlier)
            self._attach_output(s, ticket, row, body, outcome, note="Another self-service "
                                f"change of this service failed: {describe}.")  # fmt: skip
            ticket.updated_at = self.now()
            s.flush()
            TicketEventRepository(s).add_event(
                ticket, "change_failed",
                summary=f"{ticket.number}: another change failed: {describe}",
                actor_label=SYSTEM.name, visibility="internal",
                data={"owner_agent_id": ticket.owner_agent_id, "change_id": row.id,
                      "change_kind": row.kind},
            )  # fmt: skip
            return ticket
        item = NewTicket(
            account_id=row.account_id,
            subject=scrub(f"Self-service change failed: {describe}", lines=False)[:300],
            body=scrub(body)[:100_000],
            channel=Channel.portal,
            priority=Priority.high,
            category=_category(row.kind),
            requester=Principal(role="system", name="GDCAS automation"),
        )
        read = self.tickets.create_one(s, item)
        if isinstance(read, DeskError):
            raise read
        ticket_id = ticket_id_from_number(read.number)
        assert ticket_id is not None
        ticket = TicketRepository(s).get(ticket_id)
        self._attach_output(s, ticket, row, body, outcome, note="")
        result.tickets.append(
            QueuedTicket(
                id=ticket.id,
                tier=read.tier,
                priority=read.priority.value,
                category=read.category,
                created_at=read.created_at,
            )
        )
        return ticket

    def _attach_output(
        self,
        s: Session,
        ticket: Ticket,
        row: ChangeRequest,
        body: str,
        outcome: ChangeOutcome,
        *,
        note: str,
    ) -> None:
        """An internal note on the ticket with the host's output of the change attached."""
        MessageRepository(s).add_message(
            ticket,
            direction="internal",
            channel="portal",
            visibility="internal",
            body=f"{note} GDCAS output of change {row.id} attached.".strip(),
            author_name="GDCAS automation",
            attachments=[
                NewAttachment(
                    filename=f"change-{row.id}.log",
                    content_type="text/plain",
                    content=(
                        f"{body}Error: {outcome.error or '-'}\n\n--- parameters ---\n"
                        f"{json.dumps(public_params(row.kind, row.params), indent=2)}\n"
                        f"--- host output ---\n{outcome.output}\n"
                    ).encode(),
                )
            ],
        )
        s.expire(ticket, ["message_count"])

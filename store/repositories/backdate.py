"""Moving a ticket's recorded past to an earlier time: for the demo's history only.

A demo made on first start can not wait days for its tickets to age, so the demo moves what
happened on some of them (made through the desk like any ticket, seconds ago) back to when it
would have happened. Nothing else in the platform rewrites time: timestamps are facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from store.models import (
    Attachment,
    Call,
    ChangeAttempt,
    ChangeRequest,
    Message,
    TicketEvent,
    TimelineEntry,
)
from store.repositories.base import Repository
from store.repositories.ticket import TicketRepository

# A ticket's times: what happened (placed in the window) and what is due (moved along).
HAPPENED = (
    "created_at",
    "updated_at",
    "first_responded_at",
    "sla_paused_at",
    "sla_warned_at",
    "sla_breached_at",
    "resolved_at",
    "closed_at",
)
DUE = ("first_response_due", "resolution_due")


class BackdateRepository(Repository):
    def backdate_ticket(
        self,
        ticket_id: int,
        *,
        started: datetime,
        ended: datetime,
        changes: Iterable[str] = (),
    ) -> None:
        """Place everything recorded of a ticket between `started` and `ended`, keeping its
        order and proportions: the ticket's times, messages, attachments, events, timeline
        entries, calls, its changes and `changes` (ids of changes that belong to its story but
        are not linked to it, such as a customer's self-service change) with their attempts.
        Due times move by as much as the ticket's creation, so the SLA targets stay as filed.
        Placing a ticket again puts it in the new window (the result depends on the window only)."""
        ticket = TicketRepository(self.session).lock(ticket_id)
        s = self.session
        linked = or_(ChangeRequest.ticket_id == ticket_id, ChangeRequest.id.in_(list(changes)))
        change_rows = list(s.scalars(select(ChangeRequest).where(linked)))
        change_ids = [c.id for c in change_rows]
        messages = list(s.scalars(select(Message).where(Message.ticket_id == ticket_id)))
        message_ids = [m.id for m in messages]
        on_timeline = or_(
            TimelineEntry.ticket_id == ticket_id, TimelineEntry.change_id.in_(change_ids)
        )
        rows: list[tuple[object, tuple[str, ...]]] = [(ticket, HAPPENED)]
        rows += [(m, ("created_at",)) for m in messages]
        attachments = select(Attachment).where(Attachment.message_id.in_(message_ids))
        rows += [(a, ("created_at",)) for a in s.scalars(attachments)]
        events = select(TicketEvent).where(TicketEvent.ticket_id == ticket_id)
        rows += [(e, ("created_at",)) for e in s.scalars(events)]
        rows += [(e, ("created_at",)) for e in s.scalars(select(TimelineEntry).where(on_timeline))]
        calls = select(Call).where(Call.ticket_id == ticket_id)
        rows += [(c, ("created_at", "started_at", "ended_at")) for c in s.scalars(calls)]
        rows += [(c, ("created_at", "updated_at", "applied_at")) for c in change_rows]
        attempts = select(ChangeAttempt).where(ChangeAttempt.change_id.in_(change_ids))
        rows += [(a, ("started_at", "finished_at")) for a in s.scalars(attempts)]
        t0 = ticket.created_at
        times = [t for row, cols in rows for c in cols if (t := getattr(row, c)) is not None]
        t1 = max(times, default=t0)
        span = (t1 - t0).total_seconds()
        scale = (ended - started).total_seconds() / span if span > 0 else 0.0

        def place(t: datetime) -> datetime:
            return started + timedelta(seconds=max((t - t0).total_seconds(), 0.0) * scale)

        for row, cols in rows:
            for col in cols:
                if (t := getattr(row, col)) is not None:
                    setattr(row, col, place(t))
        for col in DUE:
            if (due := getattr(ticket, col)) is not None:
                setattr(ticket, col, due + (started - t0))
        s.flush()

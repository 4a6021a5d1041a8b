"""The account timeline: one ordered feed, paged, with internal entries hidden from customers."""

from __future__ import annotations

from store.db import Database
from store.models import OutboxEvent
from store.repositories import OutboxRepository, TicketRepository, TimelineRepository
from tests.factories import make_account, make_ticket


def test_timeline_is_newest_first_and_pages_without_gaps(db: Database) -> None:
    with db.write() as s:
        account = make_account(s)
        other = make_account(s)
        for i in range(25):
            TimelineRepository(s).append(account.id, kind="note", summary=f"entry {i}")
            TimelineRepository(s).append(other.id, kind="note", summary=f"other {i}")
    seen: list[str] = []
    before = None
    with db.read() as s:
        while True:
            page = TimelineRepository(s).page(account.id, before_id=before, limit=10)
            if not page:
                break
            seen += [e.summary for e in page]
            before = page[-1].id
    assert seen == [f"entry {i}" for i in reversed(range(25))]


def test_ticket_events_land_on_the_timeline_and_in_the_outbox_together(db: Database) -> None:
    with db.write() as s:
        account = make_account(s)
        ticket = make_ticket(s, account)
        repo = TicketRepository(s)
        repo.add_event(ticket, "created", summary=f"{ticket.number} opened", actor_label="web")
        repo.add_event(
            ticket, "note", summary="internal triage", visibility="internal", actor_label="agent"
        )
    with db.read() as s:
        public = TimelineRepository(s).page(account.id)
        everything = TimelineRepository(s).page(account.id, include_internal=True)
        outbox = OutboxRepository(s).unpublished()
    assert [e.kind for e in public] == ["ticket.created"]
    assert [e.kind for e in everything] == ["ticket.note", "ticket.created"]
    assert public[0].ticket_id == ticket.id and ticket.number.startswith("TT-")
    assert [o.topic for o in outbox] == ["ticket.created", "ticket.note"]
    assert outbox[0].payload["data"]["number"] == ticket.number


def test_outbox_marks_published(db: Database) -> None:
    with db.write() as s:
        account = make_account(s)
        for i in range(3):
            TimelineRepository(s).append(account.id, kind="note", summary=str(i))
    with db.write() as s:
        rows = OutboxRepository(s).unpublished(limit=2)
        OutboxRepository(s).mark_published([r.id for r in rows])
    with db.read() as s:
        left = OutboxRepository(s).unpublished()
        assert [r.payload["summary"] for r in left] == ["2"]
        assert s.query(OutboxEvent).count() == 3

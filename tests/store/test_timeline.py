"""The account timeline: one ordered feed, paged, with internal entries hidden from customers;
the outbox row of each entry, with its audience."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from store.db import Database
from store.models import OutboxEvent
from store.models.base import JsonDoc, UTCDateTime, utcnow
from store.models.outbox import Audience
from store.repositories import OutboxRepository, TicketEventRepository, TimelineRepository
from store.repositories.timeline import NewEntry
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
        repo = TicketEventRepository(s)
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


def test_an_entry_is_heard_by_its_account_when_public_and_by_the_staff_it_names(
    db: Database,
) -> None:
    with db.write() as s:
        account = make_account(s)
        TimelineRepository(s).append(account.id, kind="note", summary="p", agents=(7, None, 7))
        TimelineRepository(s).append(account.id, kind="note", summary="i", visibility="internal",
                                     tiers=(2,))  # fmt: skip
        TimelineRepository(s).append_many(
            [NewEntry(account_id=account.id, kind="note", summary="m", tiers=(3, 1))], at=utcnow()
        )
    with db.read() as s:
        got = [r.audience for r in OutboxRepository(s).unpublished()]
    assert got == [
        Audience(account.id, True, tiers=(), agents=(7,)),
        Audience(account.id, False, tiers=(2,), agents=()),
        Audience(account.id, True, tiers=(1, 3), agents=()),
    ]


@pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgresql"], indirect=True)
def test_outbox_rows_from_before_the_audience_columns_keep_whom_they_reached(
    fresh_db_url: str,
) -> None:
    """Migration 0003 gives the rows already written the audience they were published to (the
    old rule read it from the payload), so that a replay across the upgrade reaches the same
    people."""
    db = Database(fresh_db_url)
    db.upgrade("0002")
    old = sa.table("outbox_events", sa.column("topic", sa.String()),
                   sa.column("account_id", sa.Integer()), sa.column("payload", JsonDoc),
                   sa.column("created_at", UTCDateTime()))  # fmt: skip
    escalated = {"visibility": "public", "data": {"tier": 2, "from_tier": 1, "previous_owner": 8,
                                                  "owner_agent_id": None}}  # fmt: skip
    internal = {"visibility": "internal", "data": {"tier": 1, "owner_agent_id": 4, "x": "y"}}
    with db.write_engine.begin() as conn:
        conn.execute(old.insert(), [
            {"topic": "ticket.escalated", "account_id": 5, "payload": escalated,
             "created_at": utcnow()},
            {"topic": "ticket.message", "account_id": 5, "payload": internal,
             "created_at": utcnow()},
            {"topic": "note", "account_id": None, "payload": {}, "created_at": utcnow()},
        ])  # fmt: skip
    db.upgrade()
    with db.read() as s:
        got = [r.audience for r in s.scalars(sa.select(OutboxEvent).order_by(OutboxEvent.id))]
    db.dispose()
    assert got == [
        Audience(5, True, tiers=(1, 2), agents=(8,)),
        Audience(5, False, tiers=(1,), agents=(4,)),
        Audience(None, False),
    ]

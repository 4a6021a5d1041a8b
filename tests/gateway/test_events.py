"""The live stream: replay after a reconnect, and who hears what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select

from store.models import OutboxEvent
from store.repositories import OutboxRepository, TimelineRepository, UserRepository
from store.repositories.timeline import NewEntry
from tests.desk import PASSWORD, Desk, wait_until
from tests.sse import SseRecorder

pytestmark = pytest.mark.ray


def test_reconnect_with_last_event_id_gets_what_was_missed(desk: Desk) -> None:
    _, customer = desk.customer()
    url = f"{desk.base_url}/api/v1/events"
    first = SseRecorder(url, customer).start()
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "A", "body": "a"}).json()["number"]
    created = first.wait_for(lambda e: e["topic"] == "ticket.created")
    first.stop()
    with desk.http(customer) as c:  # while the customer is away
        c.post(f"/api/v1/tickets/{number}/messages", json={"body": "one"})
        c.post(f"/api/v1/tickets/{number}/messages", json={"body": "two"})
    again = SseRecorder(url, customer, last_event_id=created["id"]).start()
    again.wait_for(
        lambda e: e["topic"] == "ticket.message" and e["summary"] and e["id"] > created["id"]
    )
    msgs = again.wait_for(
        lambda e: len([x for x in again.events if x["topic"] == "ticket.message"]) >= 2
    )
    assert msgs is not None
    ids = [e["id"] for e in again.events]
    assert ids == sorted(ids) and len(ids) == len(set(ids)) and created["id"] not in ids
    again.stop()


def test_agents_hear_their_tier_admins_hear_everything(desk: Desk) -> None:
    _, customer = desk.customer()
    _, l2_token = desk.agent(2, online=False)
    email = f"admin.{uuid.uuid4().hex[:8]}@sitedesk.test"
    with desk.db.write() as s:
        UserRepository(s).create(email=email, display_name="Admin", role="admin", password=PASSWORD)
    url = f"{desk.base_url}/api/v1/events"
    l2 = SseRecorder(url, l2_token).start()
    admin = SseRecorder(url, desk.login(email)).start()
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "tier one", "body": "x"}).json()[
            "number"
        ]
    _, l1_token = desk.agent(1, online=False)
    with desk.http(l1_token) as c:
        c.post(
            f"/api/v1/tickets/{number}/messages", json={"body": "note", "visibility": "internal"}
        )
        c.post(f"/api/v1/tickets/{number}/escalate", json={"reason": "needs level 2"})
    # Level 2 hears the ticket once it enters its queue, including internal staff events.
    l2.wait_for(lambda e: e["topic"] == "ticket.escalated" and e["data"]["number"] == number)
    assert "ticket.created" not in l2.topics(number)  # it was a level-1 matter then
    admin.wait_for(lambda e: e["topic"] == "ticket.escalated" and e["data"]["number"] == number)
    seen = admin.topics(number)
    assert "ticket.created" in seen and "ticket.message" in seen  # the internal note too
    l2.stop()
    admin.stop()


def test_a_customer_back_after_1000_other_accounts_events_gets_all_of_its_own(desk: Desk) -> None:
    """The replay is filtered by who may hear it before it is cut, not after (defect 4)."""
    _, customer = desk.customer()
    other, _ = desk.customer("Busy")
    url = f"{desk.base_url}/api/v1/events"
    first = SseRecorder(url, customer).start()
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "A", "body": "a"}).json()["number"]
    created = first.wait_for(lambda e: e["topic"] == "ticket.created")
    first.stop()
    with desk.http(customer) as c:  # while the customer is away, a busy hour elsewhere
        c.post(f"/api/v1/tickets/{number}/messages", json={"body": "before"})
    with desk.db.write() as s:
        TimelineRepository(s).append_many(
            [NewEntry(account_id=other.id, kind="note", summary=f"busy {i}") for i in range(1100)],
            at=datetime.now(UTC),
        )
    with desk.http(customer) as c:
        c.post(f"/api/v1/tickets/{number}/messages", json={"body": "after"})

    def all_published() -> bool:  # so that nothing missed can come live instead of replayed
        with desk.db.read() as s:
            return not OutboxRepository(s).unpublished(limit=1)

    wait_until(all_published, what="the outbox published")
    again = SseRecorder(url, customer, last_event_id=created["id"]).start()
    again.wait_for(lambda e: len([x for x in again.events if x["topic"] == "ticket.message"]) >= 2)
    assert [e["topic"] for e in again.events] == ["ticket.message", "ticket.message"]
    assert all(e["account_id"] != other.id for e in again.events)
    again.stop()


def test_a_client_that_missed_more_than_the_outbox_keeps_is_told_to_reload(desk: Desk) -> None:
    _, customer = desk.customer()
    url = f"{desk.base_url}/api/v1/events"
    first = SseRecorder(url, customer).start()
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "A", "body": "a"}).json()["number"]
    created = first.wait_for(lambda e: e["topic"] == "ticket.created")
    first.stop()
    with desk.http(customer) as c:  # while the customer is away
        c.post(f"/api/v1/tickets/{number}/messages", json={"body": "one"})
        c.post(f"/api/v1/tickets/{number}/messages", json={"body": "two"})
    with desk.db.write() as s:  # retention pruned all but the newest event
        newest = s.scalar(select(func.max(OutboxEvent.id)))
        s.execute(delete(OutboxEvent).where(OutboxEvent.id < newest))
    again = SseRecorder(url, customer, last_event_id=created["id"]).start()
    reset = again.wait_for(lambda e: e["topic"] == "reset")
    assert reset["reason"] == "expired" and "reload" in reset["message"]
    assert again.events[0] == reset  # before anything else
    with desk.http(customer) as c:  # and the stream goes on live
        later = c.post("/api/v1/tickets", json={"subject": "B", "body": "b"}).json()["number"]
    again.wait_for(lambda e: e["topic"] == "ticket.created" and e["data"]["number"] == later)
    again.stop()

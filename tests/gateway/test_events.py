"""The live stream: replay after a reconnect, and who hears what."""

from __future__ import annotations

import uuid

import pytest

from store.repositories import UserRepository
from tests.desk import PASSWORD, Desk
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

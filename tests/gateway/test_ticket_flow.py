"""A ticket's whole life over HTTP, on real Ray actors, PostgreSQL and Redis, watched live."""

from __future__ import annotations

from typing import Any

import pytest

from store.repositories import AccountRepository, TokenRepository, UserRepository
from tests.desk import Desk, wait_until
from tests.sse import SseRecorder

pytestmark = pytest.mark.ray


def ticket(desk: Desk, token: str, number: str) -> dict[str, Any]:
    with desk.http(token) as c:
        r = c.get(f"/api/v1/tickets/{number}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def owned_by(desk: Desk, token: str, number: str, agent_id: int) -> dict[str, Any] | None:
    t = ticket(desk, token, number)
    return t if t["owner"] and t["owner"]["agent_id"] == agent_id else None


def test_lifecycle_through_three_tiers_with_live_updates(desk: Desk) -> None:
    account, customer = desk.customer("Ada Baker")
    _, other_customer = desk.customer("Ben Fern")
    l1, l1_token = desk.agent(1)
    l2, l2_token = desk.agent(2)
    l3, l3_token = desk.agent(3)
    events = f"{desk.base_url}/api/v1/events"
    mine = SseRecorder(events, customer).start()
    theirs = SseRecorder(events, other_customer).start()
    l1_stream = SseRecorder(events, l1_token).start()

    # The customer opens a ticket in the portal.
    with desk.http(customer) as c:
        r = c.post("/api/v1/tickets", json={"subject": "Website down", "body": "502 errors"})
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    assert number.startswith("TT-") and r.json()["account_id"] == account.id
    assert r.json()["channel"] == "portal" and r.json()["tier"] == 1

    # Tier 1 takes ownership (auto-assigned: the only online L1 agent).
    wait_until(lambda: owned_by(desk, l1_token, number, l1.id), what="L1 ownership")
    l1_stream.wait_for(lambda e: e["topic"] == "ticket.assigned" and e["data"]["number"] == number)
    with desk.http(l1_token) as c:
        assert (
            c.post(
                f"/api/v1/tickets/{number}/messages",
                json={"body": "Looking into it", "visibility": "public"},
            ).status_code
            == 201
        )
        assert (
            c.post(
                f"/api/v1/tickets/{number}/messages",
                json={"body": "nginx upstream?", "visibility": "internal"},
            ).status_code
            == 201
        )
        r = c.post(f"/api/v1/tickets/{number}/escalate", json={"reason": "needs server access"})
    assert r.status_code == 200, r.text
    assert r.json()["tier"] == 2

    # Tier 2 gets it, escalates to tier 3.
    wait_until(lambda: owned_by(desk, l2_token, number, l2.id), what="L2 ownership")
    with desk.http(l2_token) as c:
        r = c.post(f"/api/v1/tickets/{number}/escalate", json={"reason": "kernel issue"})
    assert r.status_code == 200 and r.json()["tier"] == 3
    wait_until(lambda: owned_by(desk, l3_token, number, l3.id), what="L3 ownership")

    # A fourth level does not exist.
    with desk.http(l3_token) as c:
        r = c.post(f"/api/v1/tickets/{number}/escalate", json={"reason": "even higher"})
        assert r.status_code == 409
        assert r.json()["error"] == "top_tier_reached" and "highest" in r.json()["message"]
        r = c.post(f"/api/v1/tickets/{number}/resolve", json={"note": "Fixed the upstream."})
    assert r.status_code == 200 and r.json()["status"] == "resolved"

    # The customer replies to the resolved ticket: it reopens, still owned by L3.
    with desk.http(customer) as c:
        r = c.post(f"/api/v1/tickets/{number}/messages", json={"body": "Still down for me"})
        assert r.status_code == 201
        assert r.json()["status"] == "open" and r.json()["owner"]["agent_id"] == l3.id
    with desk.http(l3_token) as c:
        assert c.post(f"/api/v1/tickets/{number}/resolve").json()["status"] == "resolved"
        r = c.post(f"/api/v1/tickets/{number}/close")
    assert r.status_code == 200 and r.json()["status"] == "closed"

    # The customer saw every public step live, and none of the internal ones.
    mine.wait_for(lambda e: e["topic"] == "ticket.closed" and e["data"]["number"] == number)
    seen = mine.topics(number)
    for step in ["ticket.created", "ticket.assigned", "ticket.message", "ticket.escalated",
                 "ticket.resolved", "ticket.reopened", "ticket.closed"]:  # fmt: skip
        assert step in seen, (step, seen)
    assert seen.count("ticket.escalated") == 2
    assert all(e["visibility"] == "public" for e in mine.events)
    assert "nginx upstream?" not in str(mine.events)
    # ... and the other customer's stream saw nothing of it.
    assert theirs.topics(number) == []
    assert all(e.get("account_id") != account.id for e in theirs.events)

    # The full record: customer view hides the internal note; staff view has it.
    public = ticket(desk, customer, number)
    assert [m["body"] for m in public["messages"]] == [
        "502 errors", "Looking into it", "Fixed the upstream.", "Still down for me",
    ]  # fmt: skip
    staff = ticket(desk, l3_token, number)
    assert "nginx upstream?" in [m["body"] for m in staff["messages"]]
    kinds = [e["kind"] for e in staff["events"]]
    assert kinds.count("assigned") == 3 and kinds[-1] == "closed"
    for s in (mine, theirs, l1_stream):
        s.stop()


def test_closed_ticket_can_not_be_reopened_or_messaged(desk: Desk) -> None:
    _, customer = desk.customer()
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "Q", "body": "q"}).json()["number"]
        assert c.post(f"/api/v1/tickets/{number}/close").status_code == 200
        r = c.post(f"/api/v1/tickets/{number}/reopen")
        assert r.status_code == 409 and r.json()["error"] == "invalid_transition"
        r = c.post(f"/api/v1/tickets/{number}/messages", json={"body": "hello?"})
        assert r.status_code == 409


def test_agent_logs_a_phone_call_for_any_account(desk: Desk) -> None:
    account, customer = desk.customer()
    _, token = desk.agent(1, online=False)
    with desk.http(token) as c:
        r = c.post("/api/v1/tickets", json={
            "account_id": account.id, "subject": "Caller cannot log in to webmail",
            "body": "Called at 10:02, password reset did not help",
        })  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.json()["channel"] == "phone" and r.json()["category"] == "email"
        r = c.post("/api/v1/tickets", json={"subject": "x", "body": "y"})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "account_id"
    with desk.http(customer) as c:
        listed = c.get("/api/v1/tickets").json()
    assert listed["total"] == 1 and listed["items"][0]["channel"] == "phone"


def test_idempotency_key_returns_the_first_ticket(desk: Desk) -> None:
    _, customer = desk.customer()
    body = {"subject": "Mailbox full", "body": "quota"}
    with desk.http(customer) as c:
        first = c.post("/api/v1/tickets", json=body, headers={"Idempotency-Key": "abc-1"})
        again = c.post("/api/v1/tickets", json=body, headers={"Idempotency-Key": "abc-1"})
        other = c.post("/api/v1/tickets", json={**body, "body": "other"},
                       headers={"Idempotency-Key": "abc-1"})  # fmt: skip
        listed = c.get("/api/v1/tickets").json()
    assert first.status_code == 201 and again.status_code == 201
    assert first.json()["number"] == again.json()["number"]
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    assert listed["total"] == 1


def test_take_handover_and_queue(desk: Desk) -> None:
    account, customer = desk.customer()
    a, a_token = desk.agent(2, online=False)
    b, _ = desk.agent(2, online=False)
    l1_agent, l1_token = desk.agent(1, online=False)
    with desk.http(l1_token) as c:
        number = c.post("/api/v1/tickets", json={
            "account_id": account.id, "subject": "DB slow", "body": "mysql", "priority": "high",
        }).json()["number"]  # fmt: skip
        r = c.post(f"/api/v1/tickets/{number}/escalate", json={"reason": "database"})
        assert r.status_code == 200
        # Not their tier: an L1 agent can not take an L2 ticket.
        r = c.post(f"/api/v1/tickets/{number}/take")
        assert r.status_code == 403 and r.json()["error"] == "not_allowed"
    with desk.http(a_token) as c:
        queue = c.get("/api/v1/queues/2").json()
        waiting = [t for t in queue["waiting"] if t["number"] == number]
        assert waiting and waiting[0]["first_response_due"] is not None
        r = c.post(f"/api/v1/tickets/{number}/take")
        assert r.status_code == 200 and r.json()["owner"]["agent_id"] == a.id
        assert number not in [t["number"] for t in c.get("/api/v1/queues/2").json()["waiting"]]
        r = c.post(f"/api/v1/tickets/{number}/handover", json={"agent_id": b.id})
        assert r.status_code == 200 and r.json()["owner"]["agent_id"] == b.id
        r = c.post(f"/api/v1/tickets/{number}/take")
        assert r.status_code == 409 and r.json()["error"] == "already_owned"
        r = c.post(f"/api/v1/tickets/{number}/handover", json={"agent_id": l1_agent.id})
        assert r.status_code == 422 and r.json()["error"] == "invalid_handover"
    with desk.http(customer) as c:
        assert c.get("/api/v1/queues/2").status_code == 403
        assert c.post(f"/api/v1/tickets/{number}/take").status_code == 403


def test_account_view_is_warm_but_never_stale(desk: Desk) -> None:
    account, customer = desk.customer()
    with desk.http(customer) as c:
        before = c.get(f"/api/v1/accounts/{account.id}").json()
        assert before["open_tickets"] == []
        number = c.post("/api/v1/tickets", json={"subject": "New", "body": "n"}).json()["number"]
        after = c.get(f"/api/v1/accounts/{account.id}").json()
        assert [t["number"] for t in after["open_tickets"]] == [number]
        same = c.get(f"/api/v1/accounts/{account.id}").json()
        assert same["built_at"] == after["built_at"]  # served from the warm cache
        c.post(f"/api/v1/tickets/{number}/close")
        closed = c.get(f"/api/v1/accounts/{account.id}").json()
    assert closed["open_tickets"] == [] and closed["past_tickets"][0]["status"] == "closed"


# -- hardening (issue 7) ---------------------------------------------------------------------
def test_text_with_control_characters_is_refused_naming_the_field(desk: Desk) -> None:
    _, customer = desk.customer("Ctrl")
    with desk.http(customer) as c:
        for body, field in [
            ({"subject": "Site\u0000down", "body": "help"}, "subject"),
            ({"subject": "Site down", "body": "escape \u001b[2J"}, "body"),
            ({"subject": "Site\u2028down", "body": "help"}, "subject"),
            ({"subject": "x" * 301, "body": "help"}, "subject"),
        ]:
            r = c.post("/api/v1/tickets", json=body)
            assert r.status_code == 422, r.text
            assert [d["field"] for d in r.json()["detail"]] == [field]
        ok = c.post("/api/v1/tickets", json={"subject": "Site down", "body": "line\r\n\tnext"})
        assert ok.status_code == 201, ok.text
        number = ok.json()["number"]
        r = c.post(f"/api/v1/tickets/{number}/messages", json={"body": "nul \u0000"})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"
        assert c.get("/api/v1/tickets", params={"owner": "\u00b2"}).status_code == 422
    assert ticket(desk, customer, number)["messages"][0]["body"] == "line\n\tnext"


def test_customers_choose_at_most_high_and_only_their_own_contacts(desk: Desk) -> None:
    account, customer = desk.customer("Prio")
    other, _ = desk.customer("Other")
    with desk.db.read() as s:
        theirs = AccountRepository(s).contacts(other.id)[0].id
        mine = AccountRepository(s).contacts(account.id)[0].id
    with desk.http(customer) as c:
        r = c.post("/api/v1/tickets", json={"subject": "Down", "body": "b", "priority": "urgent"})
        assert r.status_code == 403 and r.json()["error"] == "priority_not_allowed"
        r = c.post("/api/v1/tickets", json={"subject": "Down", "body": "b", "priority": "high"})
        assert r.status_code == 201 and r.json()["priority"] == "high"
        answers = []
        for contact in (theirs, 10_000_000):
            r = c.post("/api/v1/tickets", json={"subject": "s", "body": "b", "contact_id": contact})
            answers.append((r.status_code, r.json()["error"],
                            r.json()["message"].replace(str(contact), "N")))  # fmt: skip
        assert answers[0] == answers[1] == (422, "contact_not_found", "contact N not found")
        r = c.post("/api/v1/tickets", json={"subject": "s", "body": "b", "contact_id": mine})
        assert r.status_code == 201
    _, agent = desk.agent(1, online=False)
    with desk.http(agent) as c:
        r = c.post("/api/v1/tickets", json={"account_id": account.id, "subject": "Outage",
                                            "body": "b", "priority": "urgent"})  # fmt: skip
        assert r.status_code == 201 and r.json()["priority"] == "urgent"


def test_a_customer_account_opens_a_bounded_number_of_tickets_an_hour(desk: Desk) -> None:
    from actors.config import ActorConfig

    limit = ActorConfig(database_url="-", redis_url="-").customer_tickets_per_hour
    _, customer = desk.customer("Flood")
    _, neighbour = desk.customer("Neighbour")
    with desk.http(customer) as c:
        for i in range(limit):
            r = c.post("/api/v1/tickets", json={"subject": f"n{i}", "body": "b"})
            assert r.status_code == 201, r.text
        r = c.post("/api/v1/tickets", json={"subject": "one more", "body": "b"})
    assert r.status_code == 429 and r.json()["error"] == "rate_limited"
    assert 3500 < int(r.headers["Retry-After"]) <= 3601
    with desk.http(neighbour) as c:
        assert c.post("/api/v1/tickets", json={"subject": "mine", "body": "b"}).status_code == 201


def test_a_message_keeps_the_channel_it_came_by(desk: Desk) -> None:
    """Defect 6: a customer's message is `portal` when they are logged in, `api` with an API
    token; staff's goes out by the ticket's channel unless they name another; a note has the
    ticket's channel. (Every message was `portal`.)"""
    account, email = desk.new_customer("Chan")
    portal = desk.login(email)
    with desk.db.write() as s:
        user = UserRepository(s).by_email(email)
        assert user is not None
        api, _ = TokenRepository(s).issue(user.id, name="shop integration")
    _, agent = desk.agent(1, online=False)
    with desk.http(agent) as c:
        r = c.post("/api/v1/tickets", json={"account_id": account.id, "subject": "Call",
                                            "body": "Called about a bounce"})  # fmt: skip
        assert r.status_code == 201 and r.json()["channel"] == "phone", r.text
        number = r.json()["number"]
    messages = f"/api/v1/tickets/{number}/messages"
    for token, body in [(portal, {"body": "From the portal"}), (api, {"body": "From my shop"}),
                        (agent, {"body": "Called back"}),
                        (agent, {"body": "Wrote back", "channel": "email"}),
                        (agent, {"body": "Note", "visibility": "internal"})]:  # fmt: skip
        with desk.http(token) as c:
            r = c.post(messages, json=body)
            assert r.status_code == 201, r.text
    with desk.http(api) as c:
        r = c.post(messages, json={"body": "x", "channel": "phone"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "channel"
    got = [(m["body"], m["channel"]) for m in ticket(desk, agent, number)["messages"]]
    assert got == [
        ("Called about a bounce", "phone"), ("From the portal", "portal"),
        ("From my shop", "api"), ("Called back", "phone"), ("Wrote back", "email"),
        ("Note", "phone"),
    ]  # fmt: skip
    # A ticket a customer opens has the channel they came by too, unless they name one.
    for token, want in [(portal, "portal"), (api, "api")]:
        with desk.http(token) as c:
            r = c.post("/api/v1/tickets", json={"subject": "New", "body": "Hello"})
        assert r.status_code == 201 and r.json()["channel"] == want, r.text


def test_a_level_1_agent_can_not_work_a_ticket_escalated_past_them(desk: Desk) -> None:
    """Issue 8 defect 13: the policy (actors/policy.py) is enforced where the step runs."""
    account, customer = desk.customer()
    _, l1_token = desk.agent(1, online=False)
    l2, l2_token = desk.agent(2, online=False)
    with desk.http(l1_token) as c:
        number = c.post("/api/v1/tickets", json={
            "account_id": account.id, "subject": "Site down", "body": "500 errors",
        }).json()["number"]  # fmt: skip
        assert c.post(f"/api/v1/tickets/{number}/escalate", json={"reason": "php"}).is_success
        for path, body in [
            ("resolve", {}),
            ("escalate", {"reason": "again"}),
            ("handover", {"agent_id": l2.id}),
            ("messages", {"body": "Fixed it", "visibility": "public"}),
            ("close", None),
        ]:
            r = c.post(f"/api/v1/tickets/{number}/{path}", json=body)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["error"] == "not_allowed" and "level 2" in r.json()["message"]
        # Level 1 may still leave level 2 a note: that is how levels talk.
        r = c.post(f"/api/v1/tickets/{number}/messages",
                   json={"body": "customer is on PHP 7", "visibility": "internal"})  # fmt: skip
        assert r.status_code == 201, r.text
    assert ticket(desk, customer, number)["status"] == "new"
    with desk.http(l2_token) as c:
        assert c.post(f"/api/v1/tickets/{number}/take").is_success
        assert c.post(f"/api/v1/tickets/{number}/resolve", json={}).is_success

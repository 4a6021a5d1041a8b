"""SLA clocks on the deployed actors, with an injected clock moved forward by the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import ray

from tests.desk import Desk, wait_until
from tests.sse import SseRecorder

pytestmark = pytest.mark.ray


@pytest.fixture
def sla(desk: Desk) -> Iterator[Any]:
    handle = desk.deployment.directory.sla()
    yield handle
    ray.get(handle.reset_clock.remote())


def detail(desk: Desk, token: str, number: str) -> dict[str, Any]:
    with desk.http(token) as c:
        return dict(c.get(f"/api/v1/tickets/{number}").json())


def kinds(t: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in t["events"]]


def urgent_ticket(desk: Desk, token: str, account_id: int, subject: str = "Question") -> str:
    """An urgent ticket for the account, logged by staff (customers choose at most 'high')."""
    with desk.http(token) as c:
        r = c.post("/api/v1/tickets", json={"account_id": account_id, "subject": subject,
                                            "body": "x", "priority": "urgent"})  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["number"])


def test_warning_then_breach_escalates_and_tells_the_owner(desk: Desk, sla: Any) -> None:
    account, customer = desk.customer()
    l1, l1_token = desk.agent(1)
    owner_stream = SseRecorder(f"{desk.base_url}/api/v1/events", l1_token).start()
    number = urgent_ticket(desk, l1_token, account.id, "Shop checkout broken")
    wait_until(lambda: detail(desk, l1_token, number)["owner"], what="assignment")
    t = detail(desk, l1_token, number)
    assert t["first_response_due"] is not None  # urgent: 30 minutes, around the clock

    ray.get(sla.advance.remote(20 * 60))  # 20 of 30 minutes: nothing yet
    assert "sla_warning" not in kinds(detail(desk, l1_token, number))

    ray.get(sla.advance.remote(5 * 60))  # 25 minutes: past 80 %, a warning
    wait_until(lambda: "sla_warning" in kinds(detail(desk, l1_token, number)), what="warning")
    t = detail(desk, l1_token, number)
    assert t["tier"] == 1 and t["owner"]["agent_id"] == l1.id

    ray.get(sla.advance.remote(6 * 60))  # 31 minutes: breached, escalated to level 2
    wait_until(lambda: detail(desk, l1_token, number)["tier"] == 2, what="auto-escalation")
    t = detail(desk, l1_token, number)
    assert "sla_breach" in kinds(t) and "escalated" in kinds(t)
    assert t["sla_breached_at"] is not None and t["owner"] is None and t["status"] == "new"
    # The owner was told: their stream carried the warning and the breach.
    owner_stream.wait_for(
        lambda e: e["topic"] == "ticket.sla_breach" and e["data"]["number"] == number
    )
    assert "ticket.sla_warning" in owner_stream.topics(number)
    # The customer sees the escalation but not the internal SLA bookkeeping.
    public = kinds(detail(desk, customer, number))
    assert "escalated" in public and "sla_breach" not in public and "sla_warning" not in public
    owner_stream.stop()


def test_answered_in_time_no_first_response_breach(desk: Desk, sla: Any) -> None:
    account, _ = desk.customer()
    _, l1_token = desk.agent(1)
    number = urgent_ticket(desk, l1_token, account.id)
    wait_until(lambda: detail(desk, l1_token, number)["owner"], what="assignment")
    with desk.http(l1_token) as c:
        assert (
            c.post(f"/api/v1/tickets/{number}/messages", json={"body": "On it"}).status_code == 201
        )
    tid = int(number[3:])

    def clocks() -> set[str]:
        return {p["which"] for p in ray.get(sla.pending.remote()) if p["ticket_id"] == tid}

    # The reply reaches the SLA clock after the 201 (the account session tells it without waiting):
    # the first-response timer goes, only the resolution clock still runs.
    wait_until(lambda: clocks() == {"resolution"}, what="first-response timer stopped")
    ray.get(sla.advance.remote(40 * 60))  # past the 30-minute first-response target
    assert clocks() == {"resolution"}
    t = detail(desk, l1_token, number)
    assert t["tier"] == 1 and "sla_breach" not in kinds(t)


def test_waiting_on_the_customer_pauses_the_clock(desk: Desk, sla: Any) -> None:
    account, _ = desk.customer()
    _, l1_token = desk.agent(1)
    number = urgent_ticket(desk, l1_token, account.id)
    wait_until(lambda: detail(desk, l1_token, number)["owner"], what="assignment")
    with desk.http(l1_token) as c:
        r = c.post(f"/api/v1/tickets/{number}/messages",
                   json={"body": "Which domain?", "pending_customer": True})  # fmt: skip
    assert r.json()["status"] == "pending_customer"
    ticket_id = int(number[3:])

    def paused() -> bool:
        return not [p for p in ray.get(sla.pending.remote()) if p["ticket_id"] == ticket_id]

    wait_until(paused, what="timers paused")
    ray.get(sla.advance.remote(10 * 3600))  # far past every target while paused
    t = detail(desk, l1_token, number)
    assert "sla_breach" not in kinds(t) and t["tier"] == 1


def test_resolved_ticket_closes_itself_after_the_quiet_period(desk: Desk, sla: Any) -> None:
    _, customer = desk.customer()
    _, l1_token = desk.agent(1)
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "Q", "body": "x"}).json()["number"]
    wait_until(lambda: detail(desk, l1_token, number)["owner"], what="assignment")
    with desk.http(l1_token) as c:
        assert c.post(f"/api/v1/tickets/{number}/resolve").status_code == 200
    ray.get(sla.advance.remote(71 * 3600))
    assert detail(desk, customer, number)["status"] == "resolved"
    ray.get(sla.advance.remote(2 * 3600))  # 73 h > the 72 h quiet period
    wait_until(lambda: detail(desk, customer, number)["status"] == "closed", what="auto-close")

"""SLA clocks on the deployed actors, with an injected clock moved forward by the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import ray

from store.repositories import TicketRepository
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


def timers(sla: Any, ticket_id: int) -> dict[tuple[str, str], datetime]:
    """The clock's live timers of one ticket: (action, which) -> when."""
    return {(p["action"], p["which"]): datetime.fromisoformat(p["when"])
            for p in ray.get(sla.pending.remote()) if p["ticket_id"] == ticket_id}  # fmt: skip


def fired(sla: Any, ticket_id: int) -> list[tuple[str, str]]:
    """What the clock has fired for one ticket, in order: (action, which)."""
    return [(h["action"], h["which"]) for h in ray.get(sla.history.remote())
            if h.get("ticket_id") == ticket_id]  # fmt: skip


def not_due_yet(sla: Any, ticket_id: int, *expected: tuple[str, str]) -> bool:
    """The clock holds these timers of the ticket, each due after the clock's own now: it has
    looked at them since it was moved, and nothing of them could fire yet."""
    now = datetime.fromisoformat(ray.get(sla.now.remote()))
    live = timers(sla, ticket_id)
    return all(key in live and live[key] > now for key in expected)


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
    tid = int(number[3:])
    # The warning is the clock's next timer of the ticket, due at 24 minutes, after its now.
    assert not_due_yet(sla, tid, ("warning", "first_response"), ("breach", "first_response"))
    assert fired(sla, tid) == [] and "sla_warning" not in kinds(detail(desk, l1_token, number))

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
    # A second ticket, filed after it and never answered: its first-response breach comes
    # later than the answered ticket's would have, and the clock fires in time order.
    later = int(urgent_ticket(desk, l1_token, account.id, "Unanswered")[3:])
    wait_until(lambda: ("breach", "first_response") in timers(sla, later), what="later's timers")
    ray.get(sla.advance.remote(40 * 60))  # past the 30-minute first-response target
    wait_until(lambda: ("breach", "first_response") in fired(sla, later), what="later's breach")
    assert fired(sla, tid) == [] and clocks() == {"resolution"}
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
    # A ticket filed after it that does not wait: its resolution breach (4 h) comes after
    # every due time of the paused one, and the clock fires in time order.
    later = int(urgent_ticket(desk, l1_token, account.id, "Not waiting")[3:])
    wait_until(lambda: ("breach", "resolution") in timers(sla, later), what="later's timers")
    ray.get(sla.advance.remote(10 * 3600))  # far past every target while paused
    wait_until(lambda: ("breach", "resolution") in fired(sla, later), what="later's breach")
    t = detail(desk, l1_token, number)
    assert fired(sla, ticket_id) == [] and "sla_breach" not in kinds(t) and t["tier"] == 1


def test_resolved_ticket_closes_itself_after_the_quiet_period(desk: Desk, sla: Any) -> None:
    _, customer = desk.customer()
    _, l1_token = desk.agent(1)
    with desk.http(customer) as c:
        number = c.post("/api/v1/tickets", json={"subject": "Q", "body": "x"}).json()["number"]
    wait_until(lambda: detail(desk, l1_token, number)["owner"], what="assignment")
    with desk.http(l1_token) as c:
        assert c.post(f"/api/v1/tickets/{number}/resolve").status_code == 200
    ticket_id = int(number[3:])
    wait_until(lambda: ("close", "quiet") in timers(sla, ticket_id), what="the auto-close timer")
    ray.get(sla.advance.remote(71 * 3600))
    # The clock holds the auto-close for 72 h after the resolution, after its own now.
    assert not_due_yet(sla, ticket_id, ("close", "quiet"))
    assert fired(sla, ticket_id) == [] and detail(desk, customer, number)["status"] == "resolved"
    ray.get(sla.advance.remote(2 * 3600))  # 73 h > the 72 h quiet period
    wait_until(lambda: detail(desk, customer, number)["status"] == "closed", what="auto-close")


def back_in_time(desk: Desk, ticket_id: int, hours: float) -> None:
    """Move every time the ticket recorded `hours` into the past: as if filed and worked on
    then (the account lanes run on the system clock; only the SLA clock's can be moved)."""
    with desk.db.write() as s:
        t = TicketRepository(s).get(ticket_id)
        for name in ("created_at", "updated_at", "first_response_due", "resolution_due",
                     "first_responded_at", "resolved_at", "sla_paused_at"):  # fmt: skip
            value = getattr(t, name)
            if value is not None:
                setattr(t, name, value - timedelta(hours=hours))


def test_a_ticket_reopened_after_its_due_time_goes_on_with_the_time_it_had_left(
    desk: Desk, sla: Any
) -> None:
    """Defect 2: the hours a ticket spent resolved do not count against its resolution SLA.
    Reopened after its due time, it is neither breached nor escalated at once: its breach
    comes when the time it had left at its resolution has run out again."""
    account, customer = desk.customer()
    _, l1_token = desk.agent(1)
    number = urgent_ticket(desk, l1_token, account.id, "Mail bounces")  # 240 minutes, 24x7
    wait_until(lambda: detail(desk, l1_token, number)["owner"], what="assignment")
    with desk.http(l1_token) as c:
        r = c.post(f"/api/v1/tickets/{number}/resolve", json={"note": "Fixed the MX record."})
    assert r.status_code == 200, r.text
    ticket_id = int(number[3:])
    back_in_time(desk, ticket_id, hours=5)  # resolved five hours ago, due four hours after
    left = datetime.fromisoformat(r.json()["resolution_due"]) - datetime.fromisoformat(
        r.json()["resolved_at"]
    )
    with desk.http(customer) as c:
        r = c.post(f"/api/v1/tickets/{number}/messages", json={"body": "Bouncing again"})
    assert r.status_code == 201 and r.json()["status"] == "open", r.text
    due = datetime.fromisoformat(r.json()["resolution_due"])
    reopened_at = datetime.fromisoformat(r.json()["updated_at"])

    def breach() -> list[dict[str, Any]]:
        fired = [h for h in ray.get(sla.history.remote()) if h.get("ticket_id") == ticket_id
                 and h.get("action") == "breach"]  # fmt: skip
        timers = [p for p in ray.get(sla.pending.remote())
                  if p["ticket_id"] == ticket_id and p["action"] == "breach"]  # fmt: skip
        return fired + timers

    # The reopening reaches the SLA clock after the 201: wait for its new breach timer.
    found = wait_until(breach, what="the reopened ticket's breach timer")
    assert len(found) == 1 and "when" in found[0], f"breached at once: {found}"
    assert datetime.fromisoformat(found[0]["when"]) == due
    assert abs(due - reopened_at - left) < timedelta(seconds=1)  # the time it had left
    assert datetime.fromisoformat(ray.get(sla.now.remote())) < due
    t = detail(desk, l1_token, number)
    assert t["tier"] == 1 and "sla_breach" not in kinds(t) and t["sla_breached_at"] is None

    # When the time it had left has run out, it breaches and escalates as any ticket does.
    now = datetime.fromisoformat(ray.get(sla.now.remote()))
    ray.get(sla.advance.remote((due - now).total_seconds() + 60))
    wait_until(lambda: detail(desk, l1_token, number)["tier"] == 2, what="auto-escalation")
    assert kinds(detail(desk, l1_token, number)).count("sla_breach") == 1

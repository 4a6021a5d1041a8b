"""The demo company's phone side: its contacts' numbers in E.164, and a phone ticket with a
logged call that the caller's number finds."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from store.db import Database
from store.demo import load_demo
from store.models import Call
from store.read.calls import CallReads
from store.read.tickets import TicketProjection


def test_the_demo_has_a_phone_ticket_with_a_logged_call(db: Database, tmp_path: Path) -> None:
    load_demo(db, tmp_path / "logins.json")
    load_demo(db, tmp_path / "logins.json")  # loading again adds nothing
    with db.read() as s:
        [call] = s.scalars(select(Call))
    assert (call.caller_number, call.duration_seconds, call.status) == (
        "+12025550101",
        252,
        "ended",
    )
    found = CallReads(db).lookup("+12025550101")
    assert [m.account_code for m in found.matches] == ["DEMO-0001"]
    assert call.ticket_id is not None
    assert [c.ticket_number for c in found.recent_calls] == [found.matches[0].open_ticket]
    ticket = TicketProjection(db).detail(call.ticket_id, include_internal=True)
    assert (ticket.channel, ticket.status, ticket.message_count) == ("phone", "new", 2)
    [logged] = [m for m in ticket.messages if m.visibility == "internal"]
    assert logged.channel == "phone" and logged.body.startswith("Phone call from +12025550101")
    assert [e.kind for e in ticket.events] == ["created", "call_logged"]
    customer = TicketProjection(db).detail(call.ticket_id, include_internal=False)
    assert [m.visibility for m in customer.messages] == ["public"]

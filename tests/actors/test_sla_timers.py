"""Which timers a ticket needs, as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.sla.sla_clock import timers_for
from store.models import Ticket

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
QUIET = timedelta(hours=72)


def make(**kw: object) -> Ticket:
    args: dict[str, object] = {
        "id": 7, "account_id": 3, "status": "open", "created_at": T0,
        "first_response_due": T0 + timedelta(minutes=100),
        "resolution_due": T0 + timedelta(minutes=1000),
        "first_responded_at": None, "sla_paused_at": None, "resolved_at": None,
    }  # fmt: skip
    args.update(kw)
    return Ticket(**args)


def test_open_ticket_gets_warning_and_breach_for_both_goals() -> None:
    timers = {(t.action, t.which): t.when for t in timers_for(make(), set(), 80, QUIET)}
    assert timers == {
        ("warning", "first_response"): T0 + timedelta(minutes=80),
        ("breach", "first_response"): T0 + timedelta(minutes=100),
        ("warning", "resolution"): T0 + timedelta(minutes=800),
        ("breach", "resolution"): T0 + timedelta(minutes=1000),
    }


def test_answered_ticket_and_already_fired_timers_are_left_out() -> None:
    t = make(first_responded_at=T0 + timedelta(minutes=5))
    timers = timers_for(t, {("warning", "resolution")}, 80, QUIET)
    assert [(x.action, x.which) for x in timers] == [("breach", "resolution")]


def test_paused_or_closed_ticket_has_no_timer() -> None:
    assert timers_for(make(sla_paused_at=T0), set(), 80, QUIET) == []
    assert timers_for(make(status="closed"), set(), 80, QUIET) == []


def test_resolved_ticket_gets_an_auto_close_timer() -> None:
    timers = timers_for(make(status="resolved", resolved_at=T0), set(), 80, QUIET)
    assert [(x.action, x.when) for x in timers] == [("close", T0 + QUIET)]

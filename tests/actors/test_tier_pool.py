"""A tier pool on the running desk: the SCDB stays the truth even while events never stop."""

from __future__ import annotations

import time

import pytest
import ray

from store.repositories import AccountRepository, TicketRepository
from tests.desk import Desk
from tests.factories import make_ticket

pytestmark = pytest.mark.ray


def test_a_busy_pool_still_resyncs_with_the_scdb(desk: Desk) -> None:
    """A ticket that reached the SCDB without telling the pool (a crash between commit and
    hand-over, say) is assigned at the next resync, even while other events wake the pool
    all the time (before, the resync ran only after 5 s without any event)."""
    agent, _ = desk.agent(3)
    account, _ = desk.customer("Resync")
    with desk.db.write() as s:
        ticket = make_ticket(
            s, AccountRepository(s).get(account.id), subject="Filed behind the pool's back",
            tier=3,
        )  # fmt: skip
        ticket_id = ticket.id
    pool = desk.deployment.directory.pool(3)
    deadline = time.monotonic() + 20
    owner = None
    while time.monotonic() < deadline and owner is None:
        ray.get(pool.release.remote(0, 0))  # an event: wakes the pool, tells it nothing new
        with desk.db.read() as s:
            owner = TicketRepository(s).get(ticket_id).owner_agent_id
        if owner is None:
            time.sleep(0.5)  # the pace of the events, not a wait for the outcome
    assert owner == agent.id  # the only online agent of tier 3 (the desk puts others away)

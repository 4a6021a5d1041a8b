"""A tier pool on the running desk: the SCDB stays the truth even while events never stop."""

from __future__ import annotations

import asyncio
import time

import pytest
import ray

from actors.config import ActorConfig
from actors.tickets.tier_pool import TierPool
from store.db import Database
from store.repositories import AccountRepository, TicketRepository
from tests.conftest import REDIS_URL
from tests.desk import Desk
from tests.factories import make_agent, make_ticket

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


def test_a_reload_under_way_keeps_a_presence_set_meanwhile(db: Database) -> None:
    """A reload that read the agents just before one of them came online (or went offline)
    does not bring the old presence back: she came online, she gets tickets."""
    with db.write() as s:
        agent_id = make_agent(s, 1).id  # offline, as agents start
    pool = TierPool(1, ActorConfig(database_url=db.url, redis_url=REDIS_URL))

    async def story() -> str:
        began = pool.presence_seq
        read = pool._read()  # a reload reads her offline ...
        await pool.set_presence(agent_id, "online")  # ... she comes online meanwhile ...
        pool._apply(began, *read)  # ... and then the reload lands
        return pool.agents[agent_id].presence

    assert asyncio.run(story()) == "online"
    assert pool.agents[agent_id].presence == "online"
    pool._load()  # a reload that begins later reads the SCDB, which says the same
    assert pool.agents[agent_id].presence == "online"

"""Tier queues and agents' presence."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Path

from actors.tickets.dto import TicketRead
from cluster.calls import call
from gateway.auth import Caller, PlatformDep, require_staff
from gateway.errors import Forbidden
from gateway.routes.tickets import directory
from gateway.schemas import AgentRead, PresenceIn, QueueRead
from store.repositories import AgentRepository, TicketRepository

router = APIRouter(prefix="/api/v1", tags=["queues"])


@router.get("/queues/{tier}", response_model=QueueRead)
async def queue(caller: Caller, platform: PlatformDep, tier: int = Path(ge=1, le=3)) -> QueueRead:
    """The tier's waiting tickets (most urgent, then oldest, first) with their SLA due times,
    and the tier's agents with their presence and load. Staff only."""
    require_staff(caller)

    def query() -> QueueRead:
        with platform.db.read() as s:
            waiting: list[TicketRead] = [
                platform.reader.read(s, t) for t in TicketRepository(s).queue(tier, limit=500)
            ]
            load = TicketRepository(s).load_by_owner(tier)
            agents = [
                AgentRead(
                    agent_id=a.id,
                    name=u.display_name,
                    tier=a.tier,
                    presence=a.presence,
                    capacity=a.capacity,
                    skills=list(a.skills),
                    owned=load.get(a.id, 0),
                )
                for a, u in AgentRepository(s).with_users(tier)
            ]
        return QueueRead(tier=tier, waiting=waiting, agents=agents)

    return await asyncio.to_thread(query)


@router.put("/agents/me/presence", response_model=AgentRead)
async def set_presence(body: PresenceIn, caller: Caller, platform: PlatformDep) -> AgentRead:
    """An agent goes online (gets new tickets), away or offline (keeps what they own)."""
    if caller.agent_id is None or caller.tier is None:
        raise Forbidden("only agents have a presence")
    await call(directory(platform).pool(caller.tier).set_presence, caller.agent_id, body.presence)

    def read() -> AgentRead:
        with platform.db.read() as s:
            agent = AgentRepository(s).get(caller.agent_id or 0)
            owned = TicketRepository(s).count_owned(agent.id)
            return AgentRead(
                agent_id=agent.id, name=caller.name, tier=agent.tier, presence=agent.presence,
                capacity=agent.capacity, skills=list(agent.skills), owned=owned or 0,
            )  # fmt: skip

    return await asyncio.to_thread(read)

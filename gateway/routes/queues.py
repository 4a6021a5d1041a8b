"""Tier queues and agents' presence."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Path

from cluster.calls import call
from gateway.auth import Caller, PlatformDep, require_staff
from gateway.deps import QueueReadsDep
from gateway.errors import Forbidden, error_responses
from gateway.routes.tickets import directory
from gateway.schemas import PresenceIn
from store.read.queues import AgentRead, QueueRead

router = APIRouter(prefix="/api/v1", tags=["queues"])


@router.get(
    "/queues/{tier}",
    response_model=QueueRead,
    responses=error_responses({403: "`forbidden`: staff only"}),
)
async def queue(caller: Caller, queues: QueueReadsDep, tier: int = Path(ge=1, le=3)) -> QueueRead:
    """The tier's waiting tickets (most urgent, then oldest, first) with their SLA due times,
    and the tier's agents with their presence and load. Staff only."""
    require_staff(caller)
    return await asyncio.to_thread(queues.queue, tier)


@router.put(
    "/agents/me/presence",
    response_model=AgentRead,
    responses=error_responses({403: "`forbidden`: only agents have a presence"}),
)
async def set_presence(
    body: PresenceIn, caller: Caller, platform: PlatformDep, queues: QueueReadsDep
) -> AgentRead:
    """An agent goes online (gets new tickets), away or offline (keeps what they own)."""
    if caller.agent_id is None or caller.tier is None:
        raise Forbidden("only agents have a presence")
    await call(directory(platform).pool(caller.tier).set_presence, caller.agent_id, body.presence)
    return await asyncio.to_thread(queues.agent, caller.agent_id, caller.name)

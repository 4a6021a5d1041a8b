"""A support tier's queue as staff read it: the waiting tickets and the tier's agents."""

from __future__ import annotations

from pydantic import BaseModel

from store.db import Database
from store.read.tickets import TicketProjection, TicketRead
from store.repositories import AgentRepository, TicketRepository


class AgentRead(BaseModel):
    agent_id: int
    name: str
    tier: int
    presence: str
    capacity: int
    skills: list[str]
    owned: int


class QueueRead(BaseModel):
    tier: int
    waiting: list[TicketRead]
    agents: list[AgentRead]


class QueueReads:
    def __init__(self, db: Database, tickets: TicketProjection) -> None:
        self.db = db
        self.tickets = tickets

    def queue(self, tier: int, *, limit: int = 500) -> QueueRead:
        """The tier's waiting tickets (most urgent, then oldest, first) and its agents with
        their presence and load."""
        waiting = self.tickets.queue(tier, limit=limit)
        with self.db.read() as s:
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

    def agent(self, agent_id: int, name: str) -> AgentRead:
        """One agent with their presence and how many tickets they own."""
        with self.db.read() as s:
            agent = AgentRepository(s).get(agent_id)
            owned = TicketRepository(s).count_owned(agent.id)
            return AgentRead(
                agent_id=agent.id, name=name, tier=agent.tier, presence=agent.presence,
                capacity=agent.capacity, skills=list(agent.skills), owned=owned or 0,
            )  # fmt: skip

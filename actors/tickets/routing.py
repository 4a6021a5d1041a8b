"""Assignment policy of a tier pool, as a pure function: who gets which waiting ticket."""

from __future__ import annotations

from dataclasses import dataclass, field

from actors.tickets.dto import QueuedTicket
from store.models.enums import PRIORITY_RANK, UNRANKED


@dataclass
class AgentSlot:
    agent_id: int
    capacity: int
    skills: frozenset[str]
    presence: str = "offline"
    owned: set[int] = field(default_factory=set)

    @property
    def free(self) -> bool:
        return self.presence == "online" and len(self.owned) < self.capacity


def queue_order(t: QueuedTicket) -> tuple[int, float, int]:
    """Most urgent, then oldest, then first filed: the order of the SQL queue
    (`TicketRepository.queue`), from the same table."""
    return (PRIORITY_RANK.get(t.priority, UNRANKED), t.created_at.timestamp(), t.id)


def plan_assignments(
    queue: list[QueuedTicket], agents: list[AgentSlot], cursor: int
) -> tuple[list[tuple[int, int]], int]:
    """Pairs (ticket id, agent id) to assign now, and the new round-robin cursor.

    Most urgent, then oldest, first. Round robin among online agents under their capacity.
    A ticket goes to an agent with the skill for its category; when no online agent of the
    tier has that skill at all, any free agent takes it, so no category starves. A ticket
    whose skilled agents are all busy waits for one of them.
    """
    if not agents:
        return [], cursor
    load = {a.agent_id: len(a.owned) for a in agents}
    online = [a for a in agents if a.presence == "online"]
    pairs: list[tuple[int, int]] = []
    n = len(agents)
    for ticket in sorted(queue, key=queue_order):
        skilled_online = any(ticket.category in a.skills for a in online)
        for step in range(n):
            a = agents[(cursor + step) % n]
            if a.presence != "online" or load[a.agent_id] >= a.capacity:
                continue
            if skilled_online and ticket.category not in a.skills:
                continue
            pairs.append((ticket.id, a.agent_id))
            load[a.agent_id] += 1
            cursor = (cursor + step + 1) % n
            break
    return pairs, cursor

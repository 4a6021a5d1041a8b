"""The assignment policy: priority and age first, round robin, capacity and skills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from actors.tickets.dto import QueuedTicket
from actors.tickets.routing import AgentSlot, plan_assignments

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def ticket(
    i: int, priority: str = "normal", category: str = "general", age: int = 0
) -> QueuedTicket:
    return QueuedTicket(id=i, tier=1, priority=priority, category=category,
                        created_at=T0 - timedelta(minutes=age))  # fmt: skip


def agent(
    i: int,
    skills: tuple[str, ...] = ("general",),
    capacity: int = 5,
    presence: str = "online",
    owned: int = 0,
) -> AgentSlot:
    return AgentSlot(
        agent_id=i,
        capacity=capacity,
        skills=frozenset(skills),
        presence=presence,
        owned=set(range(1000, 1000 + owned)),
    )


def test_round_robin_spreads_work() -> None:
    pairs, _ = plan_assignments([ticket(i) for i in range(1, 7)], [agent(1), agent(2), agent(3)], 0)
    assert [a for _, a in pairs] == [1, 2, 3, 1, 2, 3]


def test_cursor_continues_where_the_last_round_stopped() -> None:
    _, cursor = plan_assignments([ticket(1)], [agent(1), agent(2)], 0)
    pairs, _ = plan_assignments([ticket(2)], [agent(1), agent(2)], cursor)
    assert pairs == [(2, 2)]


def test_urgent_then_oldest_first() -> None:
    queue = [ticket(1, age=5), ticket(2, "urgent"), ticket(3, age=50), ticket(4, "low", age=99)]
    pairs, _ = plan_assignments(queue, [agent(1, capacity=3)], 0)
    assert [t for t, _ in pairs] == [2, 3, 1]  # capacity 3: the low one waits


def test_capacity_and_presence_are_respected() -> None:
    agents = [
        agent(1, capacity=2, owned=2),
        agent(2, presence="away"),
        agent(3, presence="offline"),
    ]
    pairs, _ = plan_assignments([ticket(1)], agents, 0)
    assert pairs == []


def test_skills_are_matched_and_busy_specialists_are_waited_for() -> None:
    agents = [agent(1, ("general",)), agent(2, ("dns",), capacity=1)]
    pairs, _ = plan_assignments(
        [ticket(1, category="dns"), ticket(2, category="dns", age=-1)], agents, 0
    )
    assert pairs == [(1, 2)]  # the second DNS ticket waits for the DNS agent


def test_a_category_nobody_online_knows_goes_to_anyone_free() -> None:
    pairs, _ = plan_assignments([ticket(1, category="billing")], [agent(1, ("dns",))], 0)
    assert pairs == [(1, 1)]

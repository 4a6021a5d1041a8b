"""One support tier: its queue of waiting tickets and its agents."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from typing import Any

from actors.config import ActorConfig
from actors.directory import Directory, fire, start_when_running
from actors.tickets.dto import QueuedTicket
from actors.tickets.lifecycle import queued
from actors.tickets.routing import AgentSlot, plan_assignments, queue_order
from actors.tickets.service import TicketService
from store.db import Database
from store.models.enums import OWNED_STATUSES
from store.repositories import AgentRepository, TicketRepository

RESYNC_SECONDS = 5.0
log = logging.getLogger(__name__)


class TierPool:
    """The queue and the agents of support tier 1, 2 or 3, and the assignment policy.

    State: waiting tickets, each agent's presence, capacity, skills and owned tickets, and a
    round-robin cursor. Persisted: all of it is derived from the SCDB (tickets and agents);
    assignment itself is a conditional UPDATE there, so no ticket is ever assigned twice.
    Recovery: rebuilt from the SCDB at start, and re-read every few seconds, which also picks
    up any hand-over that was lost while this actor was down.
    Bound: the queue in memory is a window of at most `queues.pool_queue_max` tickets, the
    first in queue order (most urgent, then oldest); the rest wait in the SCDB, where they
    were committed before anyone was told, and are read in as soon as the window is half
    empty. Nothing is refused here: a ticket reaches a pool only once it is acknowledged.
    """

    def __init__(self, tier: int, config: ActorConfig, directory: Directory | None = None) -> None:
        self.tier = tier
        self.config = config
        self.db = Database(config.database_url, pool_size=config.db_pool_size)
        self.service = TicketService(self.db, config)
        self.directory = directory or Directory(config.namespace, config.session_shards)
        self.queue: dict[int, QueuedTicket] = {}
        self.limit = config.queues.pool_queue_max
        self.overflow = False  # more tickets wait in the SCDB than the window holds
        self.agents: dict[int, AgentSlot] = {}
        self.cursor = 0
        self.assigned = 0
        self.unannounced = False  # tickets enqueued whose outbox rows nobody poked about yet
        # Presence set here, by agent: (sequence, presence). A reload that began before a
        # presence was set must not bring back the one it replaced (an agent who just went
        # offline getting tickets, one who just came online left out of the skills rule).
        self.presence_seq = 0
        self.presence_set: dict[int, tuple[int, str]] = {}
        self.kick: asyncio.Event | None = None
        self.loop_task: asyncio.Task[None] | None = None
        self._load()
        start_when_running(self._ensure_loop)

    # -- rebuilding from the SCDB -------------------------------------------------------
    def _load(self) -> None:
        began = self.presence_seq
        self._apply(began, *self._read())

    def _read(self) -> tuple[dict[int, AgentSlot], dict[int, QueuedTicket], bool]:
        """The tier's agents (with what they own) and the first `limit` waiting tickets, as
        the SCDB has them, and whether more are waiting there."""
        with self.db.read() as s:
            agents = {
                a.id: AgentSlot(
                    agent_id=a.id,
                    capacity=a.capacity,
                    skills=frozenset(a.skills),
                    presence=a.presence,
                )
                for a in AgentRepository(s).all(self.tier)
            }
            for agent_id, ticket_id in TicketRepository(s).owned_by(list(agents), OWNED_STATUSES):
                agents[agent_id].owned.add(ticket_id)
            rows = TicketRepository(s).queue(self.tier, limit=self.limit + 1)
            waiting = {t.id: queued(t) for t in rows[: self.limit]}
        return agents, waiting, len(rows) > self.limit

    def _apply(
        self,
        began: int,
        agents: dict[int, AgentSlot],
        waiting: dict[int, QueuedTicket],
        overflow: bool = False,
    ) -> None:
        """Take what a reload read (it began when `presence_seq` was `began`), keeping each
        presence set here since then: the reload may have read the one it replaced."""
        for agent_id, (seq, presence) in list(self.presence_set.items()):
            if seq > began and agent_id in agents:
                agents[agent_id].presence = presence
        self.agents, self.queue, self.overflow = agents, waiting, overflow

    def _trim(self) -> None:
        """Keep the window at `limit`: the last in queue order wait in the SCDB only."""
        if len(self.queue) > self.limit:
            keep = heapq.nsmallest(self.limit, self.queue.values(), key=queue_order)
            self.queue = {t.id: t for t in keep}
            self.overflow = True

    def _ensure_loop(self) -> None:
        if self.kick is None:
            self.kick = asyncio.Event()
            self.loop_task = asyncio.create_task(self._run())
            self.kick.set()

    async def _run(self) -> None:
        assert self.kick is not None
        next_load = time.monotonic() + RESYNC_SECONDS
        while True:
            try:
                # Woken by events, and every RESYNC_SECONDS whatever they do: a busy tier that
                # is kicked all the time must still pick up what reached the SCDB another way.
                with contextlib.suppress(TimeoutError):
                    timeout = max(0.0, next_load - time.monotonic())
                    await asyncio.wait_for(self.kick.wait(), timeout=timeout)
                if time.monotonic() >= next_load:
                    await asyncio.to_thread(self._load)  # the safety net: the SCDB is the truth
                    next_load = time.monotonic() + RESYNC_SECONDS
                self.kick.clear()
                await self._assign()
                if self.overflow and len(self.queue) <= self.limit // 2:
                    next_load = 0.0  # the window is half empty: read on in the SCDB now
                    self.kick.set()
            except Exception:  # the database away, say: keep the loop, retry at the next resync
                log.exception("tier %d pool: assignment round failed", self.tier)
                await asyncio.sleep(1.0)

    async def _assign(self) -> None:
        pairs, cursor = plan_assignments(
            list(self.queue.values()), list(self.agents.values()), self.cursor
        )
        if not pairs:
            self._announce(False)
            return
        results = await asyncio.to_thread(self.service.assign_many, self.tier, pairs)
        self.cursor = cursor
        done: list[int] = []
        for (ticket_id, agent_id), result in zip(pairs, results, strict=True):
            self.queue.pop(ticket_id, None)  # assigned now, or changed elsewhere meanwhile
            if result is not None:
                self.agents[agent_id].owned.add(ticket_id)
                done.append(ticket_id)
        self.assigned += len(done)
        # No SLA re-track here: the router tracked each ticket when it was filed, and an
        # assignment (new -> open, an owner) changes none of its timers (see timers_for).
        self._announce(bool(done))

    def _announce(self, assigned: bool) -> None:
        """Poke the notifier once for the 'assigned' rows just committed and the 'created'
        rows of the tickets the router handed over (it leaves that poke to us, so that one
        drain publishes both)."""
        if assigned or self.unannounced:
            self.unannounced = False
            try:
                notifier = self.directory.notifier()
            except Exception as exc:  # restarting: its one-second poll publishes the rows
                log.warning("tier %d pool: notifier not found: %s", self.tier, exc)
                return
            fire(notifier.poke)

    def _nudge(self) -> None:
        self._ensure_loop()
        assert self.kick is not None
        self.kick.set()

    # -- messages from the router, the account sessions and agents -------------------------
    async def enqueue(self, tickets: list[QueuedTicket]) -> None:
        for t in tickets:
            if t.tier == self.tier:
                self.queue[t.id] = t
        self._trim()
        self.unannounced = True
        self._nudge()

    async def release(self, agent_id: int, ticket_id: int) -> None:
        """The agent no longer works on the ticket (resolved, escalated, handed over)."""
        slot = self.agents.get(agent_id)
        if slot is not None:
            slot.owned.discard(ticket_id)
        self._nudge()

    async def reclaim(self, agent_id: int, ticket_id: int) -> None:
        """The agent works on the ticket (again): it took it, or the customer reopened it."""
        self.queue.pop(ticket_id, None)
        slot = self.agents.get(agent_id)
        if slot is not None:
            slot.owned.add(ticket_id)
        self._nudge()

    async def set_presence(self, agent_id: int, presence: str) -> None:
        def save() -> None:
            with self.db.write() as s:
                AgentRepository(s).set_presence(agent_id, presence)

        await asyncio.to_thread(save)
        if agent_id not in self.agents:
            await asyncio.to_thread(self._load)
        self.presence_seq += 1
        self.presence_set[agent_id] = (self.presence_seq, presence)
        self.agents[agent_id].presence = presence
        self._nudge()

    async def resync(self) -> None:
        await asyncio.to_thread(self._load)
        self._nudge()

    async def snapshot(self) -> dict[str, Any]:
        self._ensure_loop()
        return {
            "tier": self.tier,
            "waiting": sorted(self.queue),
            "more_in_scdb": self.overflow,
            "assigned": self.assigned,
            "agents": {
                a.agent_id: {
                    "presence": a.presence,
                    "capacity": a.capacity,
                    "owned": sorted(a.owned),
                    "skills": sorted(a.skills),
                }
                for a in self.agents.values()
            },
        }

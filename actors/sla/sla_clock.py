"""SLA clocks: event-driven timers for first response, resolution and auto-close."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from actors.clock import SystemClock
from actors.config import ActorConfig
from actors.directory import Directory, start_when_running
from actors.principal import SYSTEM
from actors.tickets.commands import AutoClose, SlaFired
from actors.tickets.service import TicketService
from store.db import Database
from store.models.enums import OPEN_STATUSES, TicketStatus
from store.models.ticket import ticket_id_from_number
from store.read.tickets import TicketRead
from store.repositories import TicketEventRepository, TicketRepository

DEFAULT_WARN_PERCENT = 80
log = logging.getLogger(__name__)


Goal = Literal["first_response", "resolution"]


@dataclass(frozen=True, order=True)
class Timer:
    when: datetime
    ticket_id: int
    account_id: int
    action: Literal["warning", "breach", "close"]
    which: Goal | Literal["quiet"]


class TicketTimes(Protocol):
    """What the timers of a ticket depend on (a Ticket row has it, so does `NewTimes`)."""

    id: int
    account_id: int
    status: str
    created_at: datetime
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_responded_at: datetime | None
    sla_paused_at: datetime | None
    resolved_at: datetime | None


@dataclass
class NewTimes:
    id: int
    account_id: int
    status: str
    created_at: datetime
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_responded_at: datetime | None = None
    sla_paused_at: datetime | None = None
    resolved_at: datetime | None = None


def timers_for(
    t: TicketTimes,
    fired: set[tuple[str, str]],
    warn_percent: int,
    quiet: timedelta,
) -> list[Timer]:
    """The timers a ticket needs now. `fired` holds the (action, which) already recorded."""
    out: list[Timer] = []
    if t.status == TicketStatus.resolved and t.resolved_at is not None:
        return [Timer(t.resolved_at + quiet, t.id, t.account_id, "close", "quiet")]
    if t.status not in OPEN_STATUSES or t.sla_paused_at is not None:
        return out
    goals: list[tuple[Goal, datetime | None]] = [("resolution", t.resolution_due)]
    if t.first_responded_at is None:
        goals.insert(0, ("first_response", t.first_response_due))
    for which, due in goals:
        if due is None:
            continue
        if ("warning", which) not in fired:
            warn = t.created_at + (due - t.created_at) * (warn_percent / 100)
            out.append(Timer(warn, t.id, t.account_id, "warning", which))
        if ("breach", which) not in fired:
            out.append(Timer(due, t.id, t.account_id, "breach", which))
    return out


class SlaClock:
    """Watches every open ticket's due times and acts when one comes.

    State: a heap of timers (warn at 80% of the time, breach at the due time, auto-close of
    resolved tickets after the quiet period). Persisted: due times are on the tickets, and
    what fired is a ticket event, so nothing fires twice. Recovery: rebuilt from the SCDB at
    start; timers are woken by events (`track`), not by a periodic sweep of the tickets.
    The clock is injected: tests deploy an OffsetClock and move it forward.
    """

    def __init__(
        self,
        config: ActorConfig,
        directory: Directory | None = None,
        clock: SystemClock | None = None,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.db = Database(config.database_url, pool_size=2)
        self.service = TicketService(self.db, config, now=self.clock.now)
        self.directory = directory or Directory(config.namespace, config.session_shards)
        self.quiet = timedelta(hours=config.auto_close_after_hours)
        self.heap: list[tuple[datetime, int, Timer]] = []
        self.current: dict[int, set[Timer]] = {}  # live timers by ticket (others are stale)
        self.seq = itertools.count()
        self.fired: deque[dict[str, Any]] = deque(maxlen=1000)
        self.warn_percent: dict[str, int] = {}
        self.wake: asyncio.Event | None = None
        self._reload(None)
        start_when_running(self._start)

    def _start(self) -> None:
        if self.wake is None:
            self.wake = asyncio.Event()
            asyncio.get_running_loop().create_task(self._run())

    def _reload(self, ticket_ids: list[int] | None) -> None:
        """Re-read tickets (all open and resolved ones when None) and replace their timers."""
        with self.db.read() as s:
            tickets = TicketRepository(s).with_timers(ticket_ids)
            fired = TicketEventRepository(s).sla_fired([t.id for t in tickets])
            targets = self.service.sla_targets(s)
        self.warn_percent = {prio: t.warn_percent for prio, t in targets.items()}
        if ticket_ids is None:
            self.heap, self.current = [], {}
        for tid in ticket_ids or []:
            self.current.pop(tid, None)
        for t in tickets:
            pct = (
                targets[t.priority].warn_percent if t.priority in targets else DEFAULT_WARN_PERCENT
            )
            timers = set(timers_for(t, fired.get(t.id, set()), pct, self.quiet))
            if timers:
                self.current[t.id] = timers
                for timer in timers:
                    heapq.heappush(self.heap, (timer.when, next(self.seq), timer))

    async def track_filed(self, tickets: list[TicketRead]) -> None:
        """New tickets from the router: their timers come from what it filed, no re-read."""
        for t in tickets:
            tid = ticket_id_from_number(t.number)
            if tid is None:
                continue
            times = NewTimes(
                id=tid, account_id=t.account_id, status=t.status.value, created_at=t.created_at,
                first_response_due=t.first_response_due, resolution_due=t.resolution_due,
            )  # fmt: skip
            pct = self.warn_percent.get(t.priority.value, DEFAULT_WARN_PERCENT)
            timers = set(timers_for(times, set(), pct, self.quiet))
            self.current[tid] = timers
            for timer in timers:
                heapq.heappush(self.heap, (timer.when, next(self.seq), timer))
        self._start()
        assert self.wake is not None
        self.wake.set()

    async def track(self, ticket_ids: list[int]) -> None:
        """A ticket was created or changed: re-read it and reset its timers."""
        await asyncio.to_thread(self._reload, ticket_ids)
        self._start()
        assert self.wake is not None
        self.wake.set()

    async def advance(self, seconds: float) -> None:
        """Move an injected clock forward (tests); the system clock refuses."""
        self.clock.advance(seconds)
        self._start()
        assert self.wake is not None
        self.wake.set()

    async def reset_clock(self) -> None:
        """Put an injected clock back to system time and rebuild every timer (tests)."""
        self.clock.reset()
        await asyncio.to_thread(self._reload, None)
        self._start()
        assert self.wake is not None
        self.wake.set()

    async def _run(self) -> None:
        assert self.wake is not None
        while True:
            while self.heap and self.heap[0][2] not in self.current.get(
                self.heap[0][2].ticket_id, ()
            ):
                heapq.heappop(self.heap)  # drop timers replaced since they were set
            timeout = None
            if self.heap:
                timeout = (self.heap[0][0] - self.clock.now()).total_seconds()
                if timeout <= 0:
                    _, _, timer = heapq.heappop(self.heap)
                    self.current.get(timer.ticket_id, set()).discard(timer)
                    try:
                        await self._fire(timer)
                    except Exception:  # the database away, say: try this timer again soon
                        log.exception("SLA timer %r could not fire; retrying", timer)
                        retry_at = self.clock.now() + timedelta(seconds=5)
                        self.current.setdefault(timer.ticket_id, set()).add(timer)
                        heapq.heappush(self.heap, (retry_at, next(self.seq), timer))
                    continue
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=timeout)

    async def _fire(self, timer: Timer) -> None:
        sessions = self.directory.sessions_for(timer.account_id)
        at = self.clock.now()
        command: AutoClose | SlaFired
        if timer.action == "close" or timer.which == "quiet":
            command = AutoClose(at=at)
        else:
            command = SlaFired(which=timer.which, action=timer.action, at=at)
        try:
            await sessions.operate.remote(timer.account_id, timer.ticket_id, command, SYSTEM)
        except Exception as exc:  # the ticket changed meanwhile, or the lane is restarting
            self.fired.append({"timer": repr(timer), "error": str(exc)})
            await asyncio.to_thread(self._reload, [timer.ticket_id])
            return
        self.fired.append(
            {"ticket_id": timer.ticket_id, "action": timer.action, "which": timer.which}
        )

    async def history(self) -> list[dict[str, Any]]:
        return list(self.fired)

    async def pending(self) -> list[dict[str, Any]]:
        """Live timers, soonest first (for operators and tests)."""
        live = sorted(t for timers in self.current.values() for t in timers)
        return [
            {
                "ticket_id": t.ticket_id,
                "action": t.action,
                "which": t.which,
                "when": t.when.isoformat(),
            }
            for t in live
        ]

    async def now(self) -> str:
        return self.clock.now().isoformat()

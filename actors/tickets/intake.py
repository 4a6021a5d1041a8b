"""Intake and routing of new requests from every channel."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from actors.config import ActorConfig
from actors.directory import Directory, fire
from actors.errors import DeskError
from actors.tickets.dto import NewTicket, QueuedTicket
from actors.tickets.service import TicketService
from actors.tickets.states import FILED
from store.db import Database
from store.models.ticket import ticket_id_from_number
from store.read.tickets import TicketRead


class Intake:
    """Files new tickets in the SCDB and hands them to the tier-1 pool.

    State: only the requests waiting for the next group commit; a request is acknowledged
    after its transaction commits. Requests arriving during a commit form the next batch, so
    batches grow with load and one transaction carries many tickets.
    Recovery: nothing to rebuild. A hand-over lost in a crash is found by the pool's resync,
    and a retried request with the same idempotency key gets the ticket filed the first time.
    """

    def __init__(self, config: ActorConfig, directory: Directory | None = None) -> None:
        self.config = config
        self.db = Database(config.database_url, pool_size=config.db_pool_size)
        self.service = TicketService(self.db, config)
        self.directory = directory or Directory(config.namespace, config.session_shards)
        self.pending: list[tuple[NewTicket, asyncio.Future[TicketRead]]] = []
        self.wake: asyncio.Event | None = None
        self.workers: list[asyncio.Task[None]] = []
        self.filed = 0
        self.batches = 0
        self.batched = 0
        self.commit_seconds = 0.0

    def _start(self) -> None:
        if self.wake is None:
            self.wake = asyncio.Event()
            flushers = 1 if self.db.is_sqlite else 2
            self.workers = [asyncio.create_task(self._flusher()) for _ in range(flushers)]

    async def create(self, item: NewTicket) -> TicketRead:
        """File one ticket; returns once it is committed. Raises a DeskError when refused."""
        self._start()
        assert self.wake is not None
        fut: asyncio.Future[TicketRead] = asyncio.get_running_loop().create_future()
        self.pending.append((item, fut))
        self.wake.set()
        return await fut

    async def create_batch(self, items: list[NewTicket]) -> list[TicketRead | DeskError]:
        """File many tickets (a gateway's concurrent requests, sent in one call); returns once
        all are committed: each one's ticket, or the DeskError that refused it. A database
        failure raises for the whole call (none of its refused tickets is acknowledged; a
        retry with the same idempotency keys returns the ones that were filed)."""
        self._start()
        assert self.wake is not None
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[TicketRead]] = []
        for item in items:
            fut: asyncio.Future[TicketRead] = loop.create_future()
            self.pending.append((item, fut))
            futures.append(fut)
        self.wake.set()
        results = await asyncio.gather(*futures, return_exceptions=True)
        out: list[TicketRead | DeskError] = []
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, DeskError):
                raise r
            out.append(r)
        return out

    async def _flusher(self) -> None:
        assert self.wake is not None
        while True:
            await self.wake.wait()
            self.wake.clear()
            if self.config.intake_batch_wait_ms and len(self.pending) < 4:
                await asyncio.sleep(self.config.intake_batch_wait_ms / 1000)
            while self.pending:
                batch = self.pending[: self.config.intake_batch_max]
                del self.pending[: len(batch)]
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[NewTicket, asyncio.Future[TicketRead]]]) -> None:
        started = time.perf_counter()
        try:
            results = await asyncio.to_thread(self.service.create_many, [i for i, _ in batch])
        except Exception as exc:  # the database failed: every caller hears it, none is acked
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.batches += 1
        self.batched += len(batch)
        self.commit_seconds += time.perf_counter() - started
        filed: list[QueuedTicket] = []
        for (_, fut), result in zip(batch, results, strict=True):
            if isinstance(result, DeskError):
                fut.set_exception(result)
                continue
            fut.set_result(result)
            if result.status == FILED and result.owner is None:
                filed.append(
                    QueuedTicket(
                        id=ticket_id_from_number(result.number) or 0,
                        tier=result.tier,
                        priority=result.priority.value,
                        category=result.category,
                        created_at=result.created_at,
                    )
                )
        self.filed += len(filed)
        if filed:
            # The pool pokes the notifier after its assignment, so that one drain publishes
            # the 'created' and the 'assigned' rows together (its 1 s poll is the safety net).
            fire(self.directory.pool(1).enqueue, filed)
            fire(
                self.directory.sla().track_filed, [r for r in results if isinstance(r, TicketRead)]
            )
        else:
            fire(self.directory.notifier().poke)

    async def stats(self) -> dict[str, Any]:
        return {
            "filed": self.filed,
            "pending": len(self.pending),
            "batches": self.batches,
            "mean_batch": self.batched / self.batches if self.batches else 0.0,
            "mean_commit_ms": 1000 * self.commit_seconds / self.batches if self.batches else 0.0,
        }

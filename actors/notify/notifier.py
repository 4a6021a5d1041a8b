"""Relays the transactional outbox to Redis pub/sub, from where the gateway streams it. (Mail
from the same outbox is planned and sent by its own actor, mail_actor.MailOut.)"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import redis.asyncio as aioredis

from actors.config import ActorConfig
from actors.directory import start_when_running
from actors.notify.audience import HOLE_WAIT_SECONDS, channels_for
from store.db import Database
from store.models.base import utcnow
from store.models.outbox import Audience
from store.repositories import OutboxRepository
from store.retention import Pruned, prune

POLL_SECONDS = 1.0
COALESCE_SECONDS = 0.025  # one drain per burst: live updates wait <= 25 ms, CPU halves
# Rows go out in id order: a row whose smaller ids are not all out waits up to
# HOLE_WAIT_SECONDS for them (a transaction that took an id and has not committed yet), then goes
# out without the ones that never come (rolled back). Found by bench/chaos.py: streams saw ids
# out of order, and one cut off between the two would have missed the late row (replays send
# late rows too now).


class Notifier:
    """Publishes every outbox row to the channels of the audience stored with it.

    State: a Redis client and a wake-up flag. Persisted: the outbox rows themselves; a row is
    marked published only after Redis took it, so a crash re-sends (at least once) and the
    stream carries the outbox id for clients to drop repeats.
    Recovery: on start it drains whatever is unpublished; pokes make it prompt, a one-second
    poll makes it certain. Housekeeping: every `prune_every_seconds` it forgets the outbox rows
    and idempotency answers past their retention (store/retention.py).
    Bound: a drain holds at most `queues.outbox_publish_batch` rows; while Redis is down
    nothing is held at all (the rows wait in the outbox, the next poll tries again), so what
    piles up during an outage piles up in the SCDB, not here.
    """

    def __init__(self, config: ActorConfig) -> None:
        self.db = Database(config.database_url, pool_size=2)
        self.redis = aioredis.Redis.from_url(config.redis_url)
        self.wake: asyncio.Event | None = None
        self.published = 0
        self.batch = config.queues.outbox_publish_batch
        self.largest_drain = 0  # rows held at once, at most `batch`
        self.failed_drains = 0
        self.retention = config.retention
        self.next_prune = time.monotonic() + 60
        self.next_id: int | None = None  # every row below it went out, or was waited for
        self.hole_seen: dict[int, float] = {}  # the first id of a hole -> when first seen
        self.held = False  # the last drain held rows back behind a hole
        start_when_running(self._start)

    def _start(self) -> None:
        if self.wake is None:
            self.wake = asyncio.Event()
            asyncio.get_running_loop().create_task(self._run())

    async def poke(self) -> None:
        self._start()
        assert self.wake is not None
        self.wake.set()

    async def _run(self) -> None:
        assert self.wake is not None
        while True:
            wait = HOLE_WAIT_SECONDS / 4 if self.held else POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            self.wake.clear()
            await asyncio.sleep(COALESCE_SECONDS)  # pokes of the next few ms ride along
            try:
                while await self.drain() == self.batch:
                    pass
                if time.monotonic() >= self.next_prune:
                    self.next_prune = time.monotonic() + self.retention.prune_every_seconds
                    await asyncio.to_thread(self.prune)
            except Exception:  # Redis or the database away: the rows wait in the outbox
                self.failed_drains += 1
                await asyncio.sleep(POLL_SECONDS)

    def prune(self) -> Pruned:
        """Housekeeping: forget outbox rows and idempotency answers past their retention."""
        return prune(self.db, self.retention, utcnow())

    async def drain(self) -> int:
        """Publish one batch of unpublished rows; returns how many."""

        def fetch() -> list[tuple[dict[str, Any], Audience]]:
            with self.db.read() as s:
                rows = OutboxRepository(s).unpublished(limit=self.batch)
                return [(r.envelope(), r.audience) for r in rows]

        fetched = await asyncio.to_thread(fetch)
        if not fetched:
            self.held = False
            return 0
        rows = await asyncio.to_thread(self._in_order, fetched)
        self.held = len(rows) < len(fetched)
        if not rows:
            return 0
        self.largest_drain = max(self.largest_drain, len(rows))
        pipe = self.redis.pipeline(transaction=False)
        for envelope, audience in rows:
            message = json.dumps(envelope)
            for channel in channels_for(audience):
                pipe.publish(channel, message)
        await pipe.execute()

        def mark() -> None:
            with self.db.write() as s:
                OutboxRepository(s).mark_published([envelope["id"] for envelope, _ in rows])

        await asyncio.to_thread(mark)
        self.published += len(rows)
        return len(fetched) if not self.held else len(rows)

    def _in_order(
        self, rows: list[tuple[dict[str, Any], Audience]]
    ) -> list[tuple[dict[str, Any], Audience]]:
        """The rows that may go out now, in id order: up to the first hole (ids not committed
        yet) younger than HOLE_WAIT_SECONDS. A row below `next_id` (late, past its wait) goes
        out at once."""
        if self.next_id is None:
            self.next_id = int(rows[0][0]["id"])
        out = []
        for envelope, audience in rows:
            i = int(envelope["id"])
            if i > self.next_id:
                # Not out yet, below `i`: an id not committed yet (or never), or a row that
                # committed after this batch was read (the next drain takes it, in order).
                with self.db.read() as s:
                    sent = OutboxRepository(s).published_between(self.next_id, i)
                if i - self.next_id - sent:
                    first = self.hole_seen.setdefault(self.next_id, time.monotonic())
                    if time.monotonic() - first < HOLE_WAIT_SECONDS:
                        break
                self.hole_seen.pop(self.next_id, None)
            out.append((envelope, audience))
            self.next_id = max(self.next_id, i + 1)
        return out

    async def stats(self) -> dict[str, int]:
        return {"published": self.published, "largest_drain": self.largest_drain,
                "failed_drains": self.failed_drains}  # fmt: skip

"""Relays the transactional outbox to Redis pub/sub, from where the gateway streams it, and
turns it into e-mail: the mails an event sends are planned in the same unit of work that marks
it published (so once), and sent by a loop of their own that a slow relay never holds up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy.exc import DBAPIError

from actors.config import ActorConfig
from actors.directory import start_when_running
from actors.notify.audience import channels_for
from actors.notify.mail_out import MailPlanner
from actors.notify.mailer import Mailer
from store.db import Database
from store.models.base import utcnow
from store.models.outbox import Audience
from store.repositories import OutboxRepository
from store.retention import Pruned, prune

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
COALESCE_SECONDS = 0.025  # one drain per burst: live updates wait <= 25 ms, CPU halves
BATCH = 500


class Notifier:
    """Publishes every outbox row to the channels of the audience stored with it.

    State: a Redis client and a wake-up flag. Persisted: the outbox rows themselves; a row is
    marked published only after Redis took it, so a crash re-sends (at least once) and the
    stream carries the outbox id for clients to drop repeats.
    Recovery: on start it drains whatever is unpublished; pokes make it prompt, a one-second
    poll makes it certain. Housekeeping: every `prune_every_seconds` it forgets the outbox rows
    and idempotency answers past their retention (store/retention.py).
    Mail: planned with the publishing (mail_out.MailPlanner), sent by `_mail_loop`
    (mailer.Mailer), which retries on its own schedule. Off when no Message-ID key is set.
    """

    def __init__(self, config: ActorConfig) -> None:
        self.db = Database(config.database_url, pool_size=2)
        self.redis = aioredis.Redis.from_url(config.redis_url)
        self.wake: asyncio.Event | None = None
        self.published = 0
        self.retention = config.retention
        self.next_prune = time.monotonic() + 60
        self.planner: MailPlanner | None = None
        self.mailer: Mailer | None = None
        if config.mail.mail_secret.get_secret_value():
            self.planner = MailPlanner(config.mail)
            self.mailer = Mailer(self.db, config.mail)
        self.mail_wake: asyncio.Event | None = None
        self.planned = 0
        self.tasks: list[asyncio.Task[None]] = []
        start_when_running(self._start)

    def _start(self) -> None:
        if self.wake is None:
            self.wake = asyncio.Event()
            self.mail_wake = asyncio.Event()
            loop = asyncio.get_running_loop()
            self.tasks = [loop.create_task(self._run())]
            if self.mailer is not None:
                self.tasks.append(loop.create_task(self._mail_loop()))

    async def poke(self) -> None:
        self._start()
        assert self.wake is not None
        self.wake.set()

    async def _run(self) -> None:
        assert self.wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=POLL_SECONDS)
            self.wake.clear()
            await asyncio.sleep(COALESCE_SECONDS)  # pokes of the next few ms ride along
            try:
                while await self.drain() == BATCH:
                    pass
                if time.monotonic() >= self.next_prune:
                    self.next_prune = time.monotonic() + self.retention.prune_every_seconds
                    await asyncio.to_thread(self.prune)
            except Exception:  # Redis or the database away: the rows wait in the outbox
                await asyncio.sleep(POLL_SECONDS)

    def prune(self) -> Pruned:
        """Housekeeping: forget outbox rows and idempotency answers past their retention."""
        return prune(self.db, self.retention, utcnow())

    async def drain(self) -> int:
        """Publish one batch of unpublished rows; returns how many."""

        def fetch() -> list[tuple[dict[str, Any], Audience]]:
            with self.db.read() as s:
                rows = OutboxRepository(s).unpublished(limit=BATCH)
                return [(r.envelope(), r.audience) for r in rows]

        rows = await asyncio.to_thread(fetch)
        if not rows:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for envelope, audience in rows:
            message = json.dumps(envelope)
            for channel in channels_for(audience):
                pipe.publish(channel, message)
        await pipe.execute()

        def mark() -> int:
            with self.db.write() as s:
                planned = self._plan_mail(s, [envelope for envelope, _ in rows])
                OutboxRepository(s).mark_published([envelope["id"] for envelope, _ in rows])
                return planned

        planned = await asyncio.to_thread(mark)
        self.published += len(rows)
        if planned:
            self.planned += planned
            assert self.mail_wake is not None
            self.mail_wake.set()
        return len(rows)

    def _plan_mail(self, s: Any, envelopes: list[dict[str, Any]]) -> int:
        """The mails of these events, in the unit of work that marks them published. A
        database error undoes both (the batch is tried again); a fault in a rule or a template
        loses those events' mail, logged, rather than stop the live stream."""
        if self.planner is None:
            return 0
        try:
            with s.begin_nested():
                return self.planner.plan(s, envelopes, utcnow())
        except DBAPIError:
            raise
        except Exception:
            ids = [e["id"] for e in envelopes]
            log.exception("planning the mail of outbox rows %s failed", ids)
            return 0

    async def _mail_loop(self) -> None:
        """Send what is due; then wait for new mail, the next retry, or the poll."""
        assert self.mail_wake is not None and self.mailer is not None
        while True:
            try:
                while await asyncio.to_thread(self.mailer.send_due, utcnow()):
                    pass
                next_at = await asyncio.to_thread(self.mailer.next_due_at)
            except Exception:  # the database away: try again at the next poll
                log.exception("sending mail failed")
                next_at = None
            wait = POLL_SECONDS
            if next_at is not None:
                wait = min(max((next_at - utcnow()).total_seconds(), 0.0), 60.0) or POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.mail_wake.wait(), timeout=max(wait, 0.05))
            self.mail_wake.clear()

    async def stats(self) -> dict[str, int]:
        sent = self.mailer.sent if self.mailer else 0
        failed = self.mailer.failed if self.mailer else 0
        return {"published": self.published, "mail_planned": self.planned, "mail_sent": sent,
                "mail_failed": failed}  # fmt: skip

"""The desk's outgoing mail as an actor of its own: it plans the mails of every outbox row
(mail_out.MailPlanner) and sends them (mailer.Mailer), apart from the notifier, so rendering
and a slow relay never delay the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from actors.config import ActorConfig
from actors.directory import start_when_running
from actors.notify.mail_out import MailPlanner
from actors.notify.mailer import Mailer
from store.db import Database
from store.models.base import utcnow
from store.repositories import OutboxRepository

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # a notice leaves within about this long of its event's commit


class MailOut:
    """Plans and sends the desk's mail.

    State: none that matters; a wake-up flag. Persisted: each outbox row's `mailed_at` (set in
    the unit of work that plans its mails, so each row is planned once, whatever the order its
    transaction committed in) and the planned mails (`mail_deliveries`), each marked sent only
    after the relay's answer is recorded. Recovery: on start it plans whatever rows are not
    looked at and sends whatever is due. Without a Message-ID key (SITEDESK_MAIL_SECRET) it
    plans nothing and only marks the rows looked at.
    Bound: planning reads at most `queues.outbox_mail_batch` rows at once, and sending takes
    at most the mailer's batch of due mails (mailer.BATCH) at once; while the relay is down
    the planned mails wait in the SCDB (`mail_deliveries`, retried with back-off), not here.
    """

    def __init__(self, config: ActorConfig) -> None:
        self.db = Database(config.database_url, pool_size=2)
        self.planner: MailPlanner | None = None
        self.mailer: Mailer | None = None
        if config.mail.mail_secret.get_secret_value():
            self.planner = MailPlanner(config.mail)
            self.mailer = Mailer(self.db, config.mail)
        self.send_wake: asyncio.Event | None = None
        self.planned = 0
        self.batch = config.queues.outbox_mail_batch
        self.largest_batch = 0  # outbox rows held at once, at most `batch`
        self.tasks: list[asyncio.Task[None]] = []
        start_when_running(self._start)

    def _start(self) -> None:
        if self.send_wake is None:
            self.send_wake = asyncio.Event()
            loop = asyncio.get_running_loop()
            self.tasks = [loop.create_task(self._plan_loop())]
            if self.mailer is not None:
                self.tasks.append(loop.create_task(self._send_loop()))

    async def _plan_loop(self) -> None:
        assert self.send_wake is not None
        while True:
            try:
                looked, planned = await asyncio.to_thread(self.plan_batch)
            except Exception:  # the database away: the rows wait
                log.exception("planning mail failed")
                looked, planned = 0, 0
            if planned:
                self.planned += planned
                self.send_wake.set()
            if looked < self.batch:
                await asyncio.sleep(POLL_SECONDS)

    def plan_batch(self) -> tuple[int, int]:
        """Plan the mails of the next outbox rows not looked at; (rows, mails planned)."""
        with self.db.write() as s:
            rows = OutboxRepository(s).unmailed(limit=self.batch)
            if not rows:
                return 0, 0
            self.largest_batch = max(self.largest_batch, len(rows))
            planned = self._plan(s, [r.envelope() for r in rows])
            OutboxRepository(s).mark_mailed([r.id for r in rows])
            return len(rows), planned

    def _plan(self, s: Session, envelopes: list[dict[str, Any]]) -> int:
        """A database error undoes the batch (tried again); a fault in a rule or a template
        loses those rows' mail, logged, rather than stop all mail."""
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

    async def _send_loop(self) -> None:
        """Send what is due; then wait for new mail, the next retry, or the poll."""
        assert self.send_wake is not None and self.mailer is not None
        while True:
            try:
                while await asyncio.to_thread(self.mailer.send_due, utcnow()):
                    pass
                next_at = await asyncio.to_thread(self.mailer.next_due_at)
            except Exception:  # the database away: try again at the next poll
                log.exception("sending mail failed")
                next_at = None
            wait = 1.0
            if next_at is not None:
                wait = min(max((next_at - utcnow()).total_seconds(), 0.05), 60.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.send_wake.wait(), timeout=wait)
            self.send_wake.clear()

    async def stats(self) -> dict[str, int]:
        m = self.mailer
        return {"mail_planned": self.planned, "mail_sent": m.sent if m else 0,
                "mail_failed": m.failed if m else 0,
                "largest_batch": self.largest_batch}  # fmt: skip

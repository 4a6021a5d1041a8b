"""Intake and routing of new requests from every channel."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from actors.config import ActorConfig
from actors.directory import Directory, fire
from actors.errors import DeskError, InvalidTransition, MailAlreadySettled, QueueFull, as_raised
from actors.phone.webhook import CallEnded, CallStarted
from actors.principal import SYSTEM, Principal
from actors.tickets.calls import CallDesk, CallOpen, CallReceipt
from actors.tickets.commands import LogCall
from actors.tickets.dto import NewTicket, QueuedTicket
from actors.tickets.mail_intake import InboundEnvelope, MailIntake, MailReceipt, Plan
from actors.tickets.service import TicketService
from actors.tickets.states import FILED
from store.db import Database
from store.models.enums import InboundStatus
from store.models.ticket import ticket_id_from_number
from store.read.tickets import TicketRead


class Intake:
    """Files new tickets in the SCDB and hands them to the tier-1 pool.

    State: only the requests waiting for the next group commit; a request is acknowledged
    after its transaction commits. Requests arriving during a commit form the next batch, so
    batches grow with load and one transaction carries many tickets.
    Bound: at most `queues.intake_queue_max` tickets and mails are held (waiting, being
    planned or committing); one more is refused at once with `QueueFull` (`intake_full`: 503
    with Retry-After, 451 at the SMTP door), never taken and then lost.
    Recovery: nothing to rebuild. A hand-over lost in a crash is found by the pool's resync,
    and a retried request with the same idempotency key gets the ticket filed the first time.
    """

    def __init__(self, config: ActorConfig, directory: Directory | None = None) -> None:
        self.config = config
        self.db = Database(config.database_url, pool_size=config.db_pool_size)
        self.service = TicketService(self.db, config)
        self.mail = MailIntake(self.db, config, self.service.now)
        self.mails = 0
        self.directory = directory or Directory(config.namespace, config.session_shards)
        self.pending: list[tuple[NewTicket, asyncio.Future[TicketRead]]] = []
        self.committing = 0  # tickets in a group commit now
        self.receiving = 0  # mails being kept and planned now
        self.refused = 0
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

    @property
    def held(self) -> int:
        return len(self.pending) + self.committing + self.receiving

    def _room(self, wanted: int) -> int:
        """How many of `wanted` new requests fit under the bound."""
        return max(0, min(wanted, self.config.queues.intake_queue_max - self.held))

    def _full(self, refused: int = 1) -> QueueFull:
        self.refused += refused
        return QueueFull(
            f"the intake holds {self.held} requests already; try again in a moment",
            retry_after=1, code="intake_full",
        )  # fmt: skip

    async def create(self, item: NewTicket) -> TicketRead:
        """File one ticket; returns once it is committed. Raises a DeskError when refused
        (`QueueFull` at once when the intake holds its bound)."""
        self._start()
        assert self.wake is not None
        if not self._room(1):
            raise self._full()
        fut: asyncio.Future[TicketRead] = asyncio.get_running_loop().create_future()
        self.pending.append((item, fut))
        self.wake.set()
        return await fut

    async def create_batch(self, items: list[NewTicket]) -> list[TicketRead | DeskError]:
        """File many tickets (a gateway's concurrent requests, sent in one call); returns once
        all are committed: each one's ticket, or the DeskError that refused it (`QueueFull`
        for those beyond the bound, at once: they are not taken). A database failure raises
        for the whole call (none of its refused tickets is acknowledged; a retry with the same
        idempotency keys returns the ones that were filed)."""
        self._start()
        assert self.wake is not None
        loop = asyncio.get_running_loop()
        room = self._room(len(items))
        futures: list[asyncio.Future[TicketRead]] = []
        for item in items[:room]:
            fut: asyncio.Future[TicketRead] = loop.create_future()
            self.pending.append((item, fut))
            futures.append(fut)
        full = self._full(len(items) - room) if room < len(items) else None
        self.wake.set()
        results = await asyncio.gather(*futures, return_exceptions=True)
        out: list[TicketRead | DeskError] = []
        for r in results:
            if isinstance(r, BaseException) and not isinstance(r, DeskError):
                raise r
            out.append(r)
        if full is not None:
            out += [full] * (len(items) - room)
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
                self.committing += len(batch)
                try:
                    await self._commit(batch)
                finally:
                    self.committing -= len(batch)

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

    # -- e-mail (rules in actors/tickets/mail_intake.py) ---------------------------------------
    async def receive_mail(self, envelope: InboundEnvelope) -> MailReceipt:
        """Keep a received mail and make its ticket step; returns once both are committed (the
        SMTP door's 250). A database or actor failure raises: the door answers 451 and the
        sending server retries, which settles the kept mail exactly once. A full intake
        refuses it before keeping anything (`QueueFull`: 451)."""
        if not self._room(1):
            raise self._full()
        self.receiving += 1
        try:
            plan = await asyncio.to_thread(self.mail.plan, envelope)
        finally:
            self.receiving -= 1
        receipt = await self._carry_out(plan)
        self.mails += 1
        return receipt

    async def release_held(self, contact_id: int, account_id: int) -> list[MailReceipt]:
        """An agent linked a sender on no account to `account_id`: its held mails are filed
        now, in the order they came."""
        released = await asyncio.to_thread(self.mail.link_contact, contact_id, account_id)
        out = []
        for inbound_id in released:
            mail, flags, category = await asyncio.to_thread(self.mail.parsed, inbound_id)
            plan = await asyncio.to_thread(self.mail.plan_stored, inbound_id, mail, flags, category)
            out.append(await self._carry_out(plan))
        return out

    async def _carry_out(self, plan: Plan) -> MailReceipt:
        if plan.kind == "settled":
            assert plan.receipt is not None
            return plan.receipt
        if plan.kind == "append":
            assert plan.account_id is not None and plan.ticket_id is not None and plan.command
            lane = self.directory.sessions_for(plan.account_id)
            try:
                outcome = await lane.operate.remote(
                    plan.account_id, plan.ticket_id, plan.command, SYSTEM
                )
            except InvalidTransition as exc:  # the ticket is closed: a follow-up ticket
                why = as_raised(exc).message
                follow = await asyncio.to_thread(self.mail.plan_follow_up, plan, why)
                return await self._carry_out(follow)
            status = InboundStatus.bounce if plan.command.bounce else InboundStatus.appended
            return MailReceipt(
                inbound_id=plan.inbound_id,
                status=status,
                ticket_number=outcome.ticket.number,
                detail=plan.detail,
                duplicate=outcome.replayed,
            )
        if plan.kind == "new":
            assert plan.ticket is not None
            try:
                ticket = await self.create(plan.ticket)
            except MailAlreadySettled:  # a twin of this mail was filed meanwhile
                return await asyncio.to_thread(self.mail.receipt_of, plan.inbound_id)
            return MailReceipt(
                inbound_id=plan.inbound_id,
                status=InboundStatus.ticketed,
                ticket_number=ticket.number,
                detail=plan.detail,
            )
        return await asyncio.to_thread(self.mail.settle, plan)

    async def stats(self) -> dict[str, Any]:
        return {
            "mails": self.mails,
            "filed": self.filed,
            "pending": len(self.pending),
            "held": self.held,
            "refused": self.refused,
            "batches": self.batches,
            "mean_batch": self.batched / self.batches if self.batches else 0.0,
            "mean_commit_ms": 1000 * self.commit_seconds / self.batches if self.batches else 0.0,
        }

    # -- phone calls (rules in actors/tickets/calls.py) ----------------------------------------
    def _phone(self) -> tuple[CallDesk, dict[str, asyncio.Lock]]:
        if not hasattr(self, "_call_desk"):
            self._call_desk = CallDesk(self.db, self.service.now)
            self._call_locks: dict[str, asyncio.Lock] = {}
        return self._call_desk, self._call_locks

    async def open_from_call(
        self, call: CallOpen, by: Principal, key: str | None = None, request_hash: str = ""
    ) -> CallReceipt:
        """A call an agent took becomes a phone ticket with the call logged on it; a retried
        idempotency key returns the same ticket and logs nothing twice."""
        desk, _ = self._phone()
        item = await asyncio.to_thread(desk.plan_open, call, by, key, request_hash)
        ticket = await self.create(item)
        step_key = f"{key}:call" if key else None
        return await self._log_call(ticket, desk.log_of(call), by, step_key, request_hash)

    async def call_started(self, event: CallStarted) -> CallReceipt:
        """The provider says a call rings: kept once, and the answering agent's console opens
        the caller's account (the `call.started` event, published now)."""
        desk, _ = self._phone()
        receipt = await asyncio.to_thread(desk.started, event)
        if receipt.status == "ringing":
            fire(self.directory.notifier().poke)
        return receipt

    async def call_ended(self, event: CallEnded) -> CallReceipt:
        """The provider says a call ended: logged on the caller's open ticket, or on a new
        phone ticket; a repeated event finds it logged and changes nothing."""
        desk, locks = self._phone()
        if len(locks) > 10_000:
            for done in [k for k, lk in locks.items() if not lk.locked()]:
                del locks[done]
        async with locks.setdefault(event.call_id, asyncio.Lock()):  # one plan per call at once
            plan = await asyncio.to_thread(desk.plan_ended, event)
            if plan.kind == "append":
                assert plan.ticket_id is not None and plan.command is not None
                try:
                    return await self._log_call(plan.ticket_id, plan.command, plan.by)
                except InvalidTransition:  # the ticket was closed meanwhile: a new one
                    plan = await asyncio.to_thread(desk.follow_up, plan, event)
            if plan.kind == "new":
                assert plan.ticket is not None and plan.command is not None
                ticket = await self.create(plan.ticket)
                return await self._log_call(ticket, plan.command, plan.by)
            assert plan.receipt is not None
            return plan.receipt

    async def _log_call(
        self,
        ticket: TicketRead | int,
        command: LogCall,
        by: Principal,
        key: str | None = None,
        request_hash: str = "",
    ) -> CallReceipt:
        """Log the call on the ticket through its account's lane."""
        if isinstance(ticket, int):
            ticket_id = ticket
            where = await asyncio.to_thread(self.service.projection.where, ticket_id)
            if where is None:
                raise InvalidTransition(f"ticket {ticket_id} is gone")
            account_id = where[1]
        else:
            ticket_id = ticket_id_from_number(ticket.number) or 0
            account_id = ticket.account_id
        lane = self.directory.sessions_for(account_id)
        outcome = await lane.operate.remote(account_id, ticket_id, command, by, key, request_hash)
        return CallReceipt(
            status="duplicate" if outcome.replayed else "logged",
            provider_call_id=command.provider_call_id,
            account_id=account_id,
            agent_id=by.agent_id,
            ticket_number=outcome.ticket.number,
            ticket=outcome.ticket,
        )

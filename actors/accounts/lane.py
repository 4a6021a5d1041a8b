"""Account sessions: one serial lane per customer account, many accounts per shard actor."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from actors.accounts.dto import AccountView
from actors.accounts.view import Watermark, build_account_view, view_watermark
from actors.changes.dto import NewChange
from actors.changes.requests import ChangeService
from actors.changes.shards import hand_over
from actors.changes.stored import request_secrets
from actors.directory import Directory, fire
from actors.errors import ServiceNotFound
from actors.principal import Principal
from actors.tickets.commands import TicketCommand
from actors.tickets.dto import OpOutcome
from actors.tickets.service import TicketService
from store.db import Database
from store.read.changes import PENDING, ChangeDetail
from store.read.tickets import TicketProjection

VIEW_CACHE_SIZE = 5000


class AccountSessions:
    """Hosts the sessions of the accounts that hash to this shard.

    State: a lock per active account, so what happens to one account happens in order (its
    tickets' steps and its change requests alike), and a warm cache of each account's
    360-degree view. Persisted: nothing of its own; every operation commits in the SCDB
    before it answers, views are rebuilt from there.
    Recovery: after a restart the locks start empty and views are rebuilt on first use; an
    operation retried with the same idempotency key returns the first answer.
    """

    def __init__(
        self,
        index: int,
        db: Database,
        *,
        service: TicketService,
        changes: ChangeService,
        reads: TicketProjection,
        directory: Directory,
    ) -> None:
        self.index = index
        self.db = db
        self.service = service
        self.changes = changes
        self.reads = reads
        self.directory = directory
        self.locks: dict[int, asyncio.Lock] = {}
        self.views: OrderedDict[int, tuple[Watermark, AccountView]] = OrderedDict()
        self.operations = 0

    def _lock(self, account_id: int) -> asyncio.Lock:
        if len(self.locks) > 2 * VIEW_CACHE_SIZE:  # forget idle lanes
            for key in [k for k, lk in self.locks.items() if not lk.locked()]:
                del self.locks[key]
        return self.locks.setdefault(account_id, asyncio.Lock())

    async def operate(
        self,
        account_id: int,
        ticket_id: int,
        command: TicketCommand,
        by: Principal,
        key: str | None = None,
        request_hash: str = "",
    ) -> OpOutcome:
        """Run a ticket command in the account's lane, then tell the pools and the clock."""
        async with self._lock(account_id):
            outcome = await asyncio.to_thread(
                self.service.operate,
                ticket_id,
                command,
                by,
                key=key,
                request_hash=request_hash,
            )
            self.views.pop(account_id, None)
        self.operations += 1
        self._apply(ticket_id, outcome)
        return outcome

    def _apply(self, ticket_id: int, outcome: OpOutcome) -> None:
        """Tell the pools what changed. Every message is idempotent, so a replay may resend."""
        tier = outcome.ticket.tier
        if outcome.released_agent is not None:
            from_tier = outcome.enqueue.tier - 1 if outcome.enqueue else tier
            fire(self.directory.pool(from_tier).release, outcome.released_agent, ticket_id)
        if outcome.reclaimed_agent is not None:
            fire(self.directory.pool(tier).reclaim, outcome.reclaimed_agent, ticket_id)
        if outcome.enqueue is not None:
            fire(self.directory.pool(outcome.enqueue.tier).enqueue, [outcome.enqueue])
        fire(self.directory.sla().track, [ticket_id])
        fire(self.directory.notifier().poke)

    async def request_change(
        self,
        account_id: int,
        by: Principal,
        change: NewChange,
        key: str | None = None,
        request_hash: str = "",
    ) -> ChangeDetail:
        """Record a change request of this account in its lane (a linked ticket's move to
        `pending_change` happens in order with the ticket's other steps), then wake the
        executor that owns the change's host. The change must be of one of the account's
        services (else ServiceNotFound); a retried key answers with the first change."""
        if change.account_id not in (None, account_id):  # said to be another account's
            raise ServiceNotFound(f"service {change.service_id} not found")
        mine = change.model_copy(update={"account_id": account_id})
        async with self._lock(account_id):
            detail = await asyncio.to_thread(
                self.changes.create, by, mine, key=key, request_hash=request_hash
            )
            self.views.pop(account_id, None)
        self.operations += 1
        if detail.host_id is not None and detail.status in PENDING:
            secrets = request_secrets(mine.kind, mine.params)
            # a replay too: harmless (the host's journal knows the change)
            hand_over(self.directory, [(detail.host_id, detail.id)],
                      {detail.id: secrets} if secrets else None)  # fmt: skip
        fire(self.directory.notifier().poke)
        return detail

    async def view(self, account_id: int) -> AccountView:
        """The account's 360-degree view: the cached one while its watermark holds (the
        account's timeline has not moved, nor its own row, contacts or services), else rebuilt.
        A few indexed lookups check it, so no writer anywhere has to tell us."""
        mark = await asyncio.to_thread(view_watermark, self.db, account_id)
        cached = self.views.get(account_id)
        if cached is not None and cached[0] == mark:
            self.views.move_to_end(account_id)
            return cached[1]
        view = await asyncio.to_thread(build_account_view, self.db, self.reads, account_id)
        self.views[account_id] = (mark, view)
        while len(self.views) > VIEW_CACHE_SIZE:
            self.views.popitem(last=False)
        return view

    async def stats(self) -> dict[str, int]:
        return {"operations": self.operations, "views": len(self.views), "lanes": len(self.locks)}

"""Account sessions: one serial lane per customer account, many accounts per shard actor."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

from actors.accounts.dto import AccountView
from actors.accounts.view import build_account_view
from actors.config import ActorConfig
from actors.directory import Directory, fire
from actors.principal import Principal
from actors.tickets.dto import OpOutcome
from actors.tickets.service import TicketService
from store.db import Database
from store.repositories import TimelineRepository

VIEW_CACHE_SIZE = 5000


class AccountSessions:
    """Hosts the sessions of the accounts that hash to this shard.

    State: a lock per active account, so what happens to one account happens in order, and a
    warm cache of each account's 360-degree view. Persisted: nothing of its own; every
    operation commits in the SCDB before it answers, views are rebuilt from there.
    Recovery: after a restart the locks start empty and views are rebuilt on first use; an
    operation retried with the same idempotency key returns the first answer.
    """

    def __init__(self, index: int, config: ActorConfig, directory: Directory | None = None):
        self.index = index
        self.db = Database(config.database_url, pool_size=config.db_pool_size)
        self.service = TicketService(self.db, config)
        self.directory = directory or Directory(config.namespace, config.session_shards)
        self.locks: dict[int, asyncio.Lock] = {}
        self.views: OrderedDict[int, tuple[int, AccountView]] = OrderedDict()
        self.operations = 0

    def _lock(self, account_id: int) -> asyncio.Lock:
        if len(self.locks) > 2 * VIEW_CACHE_SIZE:  # forget idle lanes
            for key in [k for k, lk in self.locks.items() if not lk.locked()]:
                del self.locks[key]
        return self.locks.setdefault(account_id, asyncio.Lock())

    async def operate(
        self,
        account_id: int,
        op: str,
        ticket_id: int,
        by: Principal,
        key: str | None = None,
        request_hash: str = "",
        args: dict[str, Any] | None = None,
    ) -> OpOutcome:
        """Run a ticket operation in the account's lane, then tell the pools and the clock."""
        async with self._lock(account_id):
            outcome = await asyncio.to_thread(
                self.service.operate,
                op,
                ticket_id,
                by,
                key=key,
                request_hash=request_hash,
                **(args or {}),
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

    def _watermark(self, account_id: int) -> int:
        with self.db.read() as s:
            return TimelineRepository(s).latest_id(account_id)

    async def view(self, account_id: int) -> AccountView:
        """The account's 360-degree view: the cached one while the account's timeline has not
        moved (every change to an account writes a timeline entry), else rebuilt. One indexed
        lookup checks it, so no writer anywhere has to tell us."""
        mark = await asyncio.to_thread(self._watermark, account_id)
        cached = self.views.get(account_id)
        if cached is not None and cached[0] == mark:
            self.views.move_to_end(account_id)
            return cached[1]
        view = await asyncio.to_thread(build_account_view, self.service, account_id)
        self.views[account_id] = (mark, view)
        while len(self.views) > VIEW_CACHE_SIZE:
            self.views.popitem(last=False)
        return view

    async def stats(self) -> dict[str, int]:
        return {"operations": self.operations, "views": len(self.views), "lanes": len(self.locks)}

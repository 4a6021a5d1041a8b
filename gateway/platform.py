"""What the gateway talks to, opened once at start and handed to every request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis as sync_redis
import redis.asyncio as aioredis

from actors.changes.shards import executor_names
from actors.config import ActorConfig
from actors.directory import Directory
from actors.errors import DeskError
from actors.principal import Principal
from actors.tickets.dto import NewTicket
from cluster.calls import ComponentRestarting, call
from gateway.errors import Overloaded
from gateway.event_hub import REVOKED_CHANNEL, EventHub
from gateway.login_guard import LoginGuard
from gateway.ratelimit import RateLimiter, Resource
from gateway.settings import GatewaySettings
from store.db import Database
from store.read import ReadModels
from store.read.hosts import HostHealth
from store.read.tickets import TicketRead

TOKEN_CACHE_SECONDS = 10.0
REVOKED_PREFIX = "sitedesk:revoked:"
# A revocation mark outlives every cache entry made before the token was revoked.
REVOKED_MARK_SECONDS = int(TOKEN_CACHE_SECONDS * 3)
KNOWN_ACCOUNTS_MAX = 100_000


def mark_revoked(redis_url: str, digests: list[str]) -> None:
    """From outside a gateway (`sitedesk token revoke`): the mark and the message that
    `Platform.revoke_everywhere` sends, so that running gateways drop their cached copies."""
    client = sync_redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.set(REVOKED_PREFIX + digest, "1", ex=REVOKED_MARK_SECONDS)
                pipe.publish(REVOKED_CHANNEL, digest)
            pipe.execute()
    finally:
        client.close()


class IntakeBatcher:
    """Sends the gateway's concurrent ticket creations to the router in few actor calls.

    A call goes out at once while fewer than `max_in_flight` are under way, so a lone request
    waits for nothing; requests that arrive meanwhile ride together in the next call. Under
    load this saves an actor call (serialisation, scheduling: most of a millisecond of CPU on
    each side) per ticket. Each request still gets its own answer or its own error.

    At most `max_queued` requests wait for a call (`ticket_queue_max`): one more is refused at
    once with 503 `intake_busy` and `Retry-After` (it was never acknowledged: the client sends
    it again), instead of piling up while the intake is slow or restarting."""

    def __init__(
        self,
        send: Callable[[list[NewTicket]], Awaitable[list[TicketRead | DeskError]]],
        *,
        max_in_flight: int = 4,
        max_batch: int = 256,
        max_queued: int = 1000,
    ) -> None:
        self.send = send
        self.max_in_flight = max_in_flight
        self.max_batch = max_batch
        self.max_queued = max_queued
        self.queue: list[tuple[NewTicket, asyncio.Future[TicketRead]]] = []
        self.in_flight = 0
        self.refused = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: NewTicket) -> TicketRead:
        if len(self.queue) >= self.max_queued:
            self.refused += 1
            raise Overloaded(
                f"{len(self.queue)} new tickets are waiting for the desk already; try again "
                "in a moment", retry_after=1, code="intake_busy",
            )  # fmt: skip
        fut: asyncio.Future[TicketRead] = asyncio.get_running_loop().create_future()
        self.queue.append((item, fut))
        if self.in_flight < self.max_in_flight:
            self._launch()
        return await fut

    def _launch(self) -> None:
        batch = self.queue[: self.max_batch]
        del self.queue[: len(batch)]
        self.in_flight += 1
        task = asyncio.get_running_loop().create_task(self._deliver(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, batch: list[tuple[NewTicket, asyncio.Future[TicketRead]]]) -> None:
        try:
            results = await self.send([item for item, _ in batch])
        except Exception as exc:  # the call failed: every request of the batch hears it
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            for (_, fut), result in zip(batch, results, strict=True):
                if fut.done():  # the client went away
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
        finally:
            self.in_flight -= 1
            while self.queue and self.in_flight < self.max_in_flight:
                self._launch()


@dataclass
class Platform:
    db: Database
    redis_url: str
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    uses_ray: bool = True
    directory: Directory | None = None
    # The actors' configuration (limits included), so that what the gateway checks itself
    # follows the same knobs; unset: the defaults.
    config: ActorConfig | None = None
    redis: aioredis.Redis | None = None
    # Rate limits and revocation marks have their own bounded pool: nothing else can use up
    # the connections a log-in needs.
    limits: aioredis.Redis | None = None
    hub: EventHub | None = None
    logins: LoginGuard | None = None
    limiter: RateLimiter | None = None
    # The rate limits' clock (their windows follow it); tests move it instead of waiting.
    clock: Callable[[], float] = time.time
    _hub_opening: asyncio.Lock = field(default_factory=asyncio.Lock)
    _tokens: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    _reads: ReadModels | None = None
    _known_accounts: set[int] = field(default_factory=set)
    # One router call at a time per gateway: at 200 tickets/s this cut the calls (and their
    # ~1 ms of CPU on each side) about fourfold; the router's group commit still overlaps the
    # calls of several gateway replicas.
    intake_calls_in_flight: int = 1
    _intake: IntakeBatcher | None = None

    async def open(self) -> None:
        self.redis = aioredis.Redis.from_url(self.redis_url, decode_responses=True)
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url,
            max_connections=self.settings.limits_redis_pool_size,
            timeout=5,
            decode_responses=True,
        )
        self.limits = aioredis.Redis(connection_pool=pool)
        self.logins = LoginGuard(self.limits, self.settings)
        desk = self.config.namespace if self.config is not None else "sitedesk"  # one per SCDB
        self.limiter = RateLimiter(self.limits, self.settings, desk=desk, clock=self.clock)
        await self.live()

    async def count_search(self, user_id: int) -> None:
        """Count one search of the user in this minute's window (shared by every gateway,
        gateway/ratelimit.py); TooManyRequests past `searches_per_minute`, with the seconds
        left in the window. Redis unreachable: the search is served uncounted."""
        if self.limiter is None:
            return
        await self.limiter.hit(f"user:{user_id}", Resource.search, fail_open=True)

    async def live(self) -> EventHub | None:
        """The process's event hub, opened on first need (None while Redis is unreachable)."""
        async with self._hub_opening:
            if self.hub is None:
                self.hub = await self._open_hub()
        return self.hub

    async def _open_hub(self) -> EventHub | None:
        assert self.redis is not None
        hub = EventHub(
            self.redis,
            max_streams=self.settings.max_streams,
            max_per_user=self.settings.max_streams_per_user,
            queue_size=self.settings.stream_queue_size,
            on_revoked=self.forget_token,
            on_lost=self.forget_tokens,
        )
        try:
            await hub.open()
        except Exception:  # no Redis yet: /readyz says so; streams answer 503 meanwhile
            await hub.close()
            return None
        return hub

    async def close(self) -> None:
        if self.hub is not None:
            await self.hub.close()
            self.hub = None
        self.limiter = None
        if self.limits is not None:
            await self.limits.aclose()
            self.limits = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    @property
    def reads(self) -> ReadModels:
        """The read models, served straight from the SCDB (writes go through the actors)."""
        if self._reads is None:
            self._reads = ReadModels(self.db)
        return self._reads

    def cached_principal(self, digest: str) -> Principal | None:
        hit = self._tokens.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def cache_principal(self, digest: str, principal: Principal) -> None:
        if len(self._tokens) > 50_000:
            self._tokens.clear()
        self._tokens[digest] = (principal, time.monotonic() + TOKEN_CACHE_SECONDS)

    async def file_ticket(self, item: NewTicket) -> TicketRead:
        """File a new ticket through the router actor, batched with concurrent requests."""
        if self._intake is None:
            assert self.directory is not None
            directory = self.directory

            async def send(items: list[NewTicket]) -> Any:
                return await call(directory.intake().create_batch, items)

            self._intake = IntakeBatcher(
                send,
                max_in_flight=self.intake_calls_in_flight,
                max_queued=self.settings.ticket_queue_max,
            )
        return await self._intake.submit(item)

    async def host_health(self) -> dict[str, HostHealth]:
        """Each managed host's health as its executor sees it, by host name (the hosts of an
        executor that is restarting or not started are left out)."""
        if self.directory is None:
            return {}
        out: dict[str, HostHealth] = {}
        for name in executor_names():
            try:
                out.update(await call(self.directory.get(name).status))
            except (ComponentRestarting, ValueError):  # ValueError: no such actor (yet)
                continue
        return out

    def account_known(self, account_id: int) -> bool:
        """True when this gateway already saw the account exist. Accounts with tickets are
        never deleted (the tickets' foreign key refuses it), and a ticket for an account that
        vanished anyway is refused by that same foreign key, so a stale entry is harmless."""
        return account_id in self._known_accounts

    def remember_account(self, account_id: int) -> None:
        if len(self._known_accounts) >= KNOWN_ACCOUNTS_MAX:
            self._known_accounts.clear()
        self._known_accounts.add(account_id)

    def forget_token(self, digest: str) -> None:
        self._tokens.pop(digest, None)

    async def revoke_everywhere(self, *digests: str) -> None:
        """After the revocation is committed: every gateway stops honouring its cached copy
        of the tokens at once (the mark is checked on each cache hit; the message empties the
        other gateways' caches and ends the tokens' live streams)."""
        if not digests:
            return
        for digest in digests:
            self.forget_token(digest)
        assert self.limits is not None
        async with self.limits.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.set(REVOKED_PREFIX + digest, "1", ex=REVOKED_MARK_SECONDS)
                pipe.publish(REVOKED_CHANNEL, digest)
            await pipe.execute()

    async def revoked(self, digest: str) -> bool:
        assert self.limits is not None
        return bool(await self.limits.exists(REVOKED_PREFIX + digest))

    def forget_tokens(self) -> None:
        self._tokens.clear()

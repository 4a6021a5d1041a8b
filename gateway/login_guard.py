"""Limits on log-in, kept in Redis so that every gateway counts alike.

Failed log-ins are counted per account (whatever the client address: an attacker has many),
per client address (one address guessing many accounts) and for the whole desk. An account
that failed `login_free_failures` times is locked, for a time that doubles with each further
failure; a successful log-in clears it. The argon2 check itself runs on at most
`login_hash_concurrency` threads per gateway with a short queue before them: beyond it a log-in
is answered 503 at once instead of piling up threads and memory."""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from gateway.errors import Overloaded, TooManyRequests
from gateway.settings import GatewaySettings

PREFIX = "sitedesk:login:"


def account_key(username: str) -> str:
    """A fixed-length key for any username, so that what a caller types never becomes one."""
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def failures_key(username: str) -> str:
    return f"{PREFIX}failures:{account_key(username)}"


class LoginGuard:
    def __init__(self, redis: aioredis.Redis, settings: GatewaySettings) -> None:
        self.redis = redis
        self.settings = settings
        self.hashers = asyncio.Semaphore(settings.login_hash_concurrency)
        self.waiting = 0  # log-ins queued for a hasher
        self.hashing = 0  # log-ins whose password is being checked

    def _keys(self, username: str, client: str) -> tuple[str, str, str, str]:
        account = account_key(username)
        return (
            failures_key(username),
            f"{PREFIX}locked:{account}",
            f"{PREFIX}client:{client}",
            f"{PREFIX}all",
        )

    async def check(self, username: str, client: str) -> None:
        """Raise TooManyRequests while the account is locked, or the client or the whole desk
        failed too often in the window."""
        _, locked, by_client, everyone = self._keys(username, client)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.pttl(locked)
            pipe.get(by_client)
            pipe.ttl(by_client)
            pipe.get(everyone)
            pipe.ttl(everyone)
            lock_ms, client_n, client_ttl, all_n, all_ttl = await pipe.execute()
        if lock_ms > 0:
            raise TooManyRequests(
                "too many failed log-ins for this account; wait and try again",
                retry_after=math.ceil(lock_ms / 1000),
                code="login_locked",
            )
        if int(client_n or 0) >= self.settings.login_failures_per_client:
            raise TooManyRequests(
                "too many failed log-ins from this address; wait a few minutes",
                retry_after=max(client_ttl, 1),
                code="login_rate_limited",
            )
        if int(all_n or 0) >= self.settings.login_failures_global:
            raise TooManyRequests(
                "log-in is paused after too many failures; try again shortly",
                retry_after=max(all_ttl, 1),
                code="login_throttled",
            )

    @asynccontextmanager
    async def hashing_slot(self) -> AsyncIterator[None]:
        """Hold one of the gateway's hashers; Overloaded when the queue before them is full."""
        if self.hashers.locked() and self.waiting >= self.settings.login_hash_queue:
            raise Overloaded(
                "too many log-ins at once; try again in a moment", retry_after=1, code="login_busy"
            )
        self.waiting += 1
        try:
            await self.hashers.acquire()
        finally:
            self.waiting -= 1
        self.hashing += 1
        try:
            yield
        finally:
            self.hashing -= 1
            self.hashers.release()

    async def failed(self, username: str, client: str) -> None:
        failures, locked, by_client, everyone = self._keys(username, client)
        s = self.settings
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(failures)
            pipe.expire(failures, max(s.login_window_seconds, s.login_lock_max_seconds))
            pipe.incr(by_client)
            pipe.expire(by_client, s.login_window_seconds, nx=True)
            pipe.incr(everyone)
            pipe.expire(everyone, s.login_window_seconds, nx=True)
            count = (await pipe.execute())[0]
        if count >= s.login_free_failures:
            doublings = min(count - s.login_free_failures, 30)
            lock = min(s.login_lock_seconds * 2**doublings, s.login_lock_max_seconds)
            await self.redis.set(locked, "1", ex=lock)

    async def succeeded(self, username: str) -> None:
        failures, locked, _, _ = self._keys(username, "")
        await self.redis.delete(failures, locked)

    async def failures(self, username: str) -> int:
        """Failed log-ins of this account not yet forgiven (for operators and tests)."""
        return int(await self.redis.get(self._keys(username, "")[0]) or 0)

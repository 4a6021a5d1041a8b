"""What the gateway talks to, opened once at start and handed to every request."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from actors.config import ActorConfig
from actors.directory import Directory
from actors.dto import Principal
from actors.ticket_service import TicketService
from gateway.settings import GatewaySettings
from store.db import Database

TOKEN_CACHE_SECONDS = 10.0


@dataclass
class Platform:
    db: Database
    redis_url: str
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    uses_ray: bool = True
    directory: Directory | None = None
    redis: aioredis.Redis | None = None
    _tokens: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    _reader: TicketService | None = None

    async def open(self) -> None:
        self.redis = aioredis.Redis.from_url(self.redis_url, decode_responses=True)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    @property
    def reader(self) -> TicketService:
        """Ticket reads served straight from the SCDB (writes go through the actors)."""
        if self._reader is None:
            config = ActorConfig(database_url=self.db.url, redis_url=self.redis_url)
            self._reader = TicketService(self.db, config)
        return self._reader

    def cached_principal(self, digest: str) -> Principal | None:
        hit = self._tokens.get(digest)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def cache_principal(self, digest: str, principal: Principal) -> None:
        if len(self._tokens) > 50_000:
            self._tokens.clear()
        self._tokens[digest] = (principal, time.monotonic() + TOKEN_CACHE_SECONDS)

    def forget_tokens(self) -> None:
        self._tokens.clear()

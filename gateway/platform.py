"""What the gateway talks to, opened once at start and handed to every request."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from gateway.settings import GatewaySettings
from store.db import Database


@dataclass
class Platform:
    db: Database
    redis_url: str
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    uses_ray: bool = True
    redis: aioredis.Redis | None = None

    async def open(self) -> None:
        self.redis = aioredis.Redis.from_url(self.redis_url, decode_responses=True)

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

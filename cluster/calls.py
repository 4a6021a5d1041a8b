"""Calling an actor from the gateway: retried while Ray restarts it, never retried on refusal."""

from __future__ import annotations

import asyncio
from typing import Any

from ray.exceptions import ActorUnavailableError, RayActorError

from cluster.errors import ClusterError

RETRIES = 6


class ComponentRestarting(ClusterError):
    """An actor stayed unreachable through every retry."""


async def call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Await `actor.method.remote(...)`. Every actor method is idempotent (an idempotency key
    travels with each write), so a retry after a crash never applies anything twice."""
    delay = 0.1
    for _ in range(RETRIES):
        try:
            return await method.remote(*args, **kwargs)
        except (RayActorError, ActorUnavailableError) as exc:
            last: Exception = exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise ComponentRestarting(f"a component of the desk is restarting; try again ({last})")

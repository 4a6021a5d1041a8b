"""Finds the other named actors of a deployment, with cached handles."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import ray

from actors import names

log = logging.getLogger(__name__)


class Directory:
    def __init__(self, namespace: str, shards: int) -> None:
        self.namespace = namespace
        self.shards = shards
        self._cache: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        handle = self._cache.get(name)
        if handle is None:
            handle = ray.get_actor(name, namespace=self.namespace)
            self._cache[name] = handle
        return handle

    def forget(self, name: str) -> None:
        """Drop a cached handle (its actor died for good and may be made anew)."""
        self._cache.pop(name, None)

    def intake(self) -> Any:
        return self.get(names.INTAKE)

    def pool(self, tier: int) -> Any:
        return self.get(names.tier_pool(tier))

    def sessions_for(self, account_id: int) -> Any:
        return self.get(names.session_shard(names.shard_of(account_id, self.shards)))

    def sla(self) -> Any:
        return self.get(names.SLA)

    def notifier(self) -> Any:
        return self.get(names.NOTIFIER)


def fire(call: Any, *args: Any, **kwargs: Any) -> None:
    """Send a one-way message to an actor; the SCDB makes a lost one harmless (see resync)."""
    try:
        call.remote(*args, **kwargs)
    except Exception as exc:  # the receiver rebuilds from the SCDB; never fail the sender
        log.warning("one-way actor message not sent: %s", exc)


def start_when_running(start: Callable[[], None]) -> None:
    """Start an actor's background loop now if an event loop runs (inside Ray it does, from
    __init__ on, also after a restart); as a plain object it starts on the first call."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    start()

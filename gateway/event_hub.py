"""One Redis pub/sub subscriber per gateway process, fanned out in process to every open live
stream, so that streams cost no Redis connection each and one customer's streams can not use up
the connections that log-ins and other users' streams need."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from actors.notify import audience as channels

log = logging.getLogger(__name__)

REVOKED_CHANNEL = channels.PREFIX + "revoked"  # token digests revoked on some gateway
SUBSCRIBE_TIMEOUT = 10.0
RECONNECT_PAUSE = 1.0
KEEPALIVE_POLL = 1.0  # how often the reader wakes when nothing happens


class StreamLimit(Exception):
    """No more streams for this user, or on this gateway."""

    def __init__(self, scope: str, limit: int) -> None:
        super().__init__(scope, limit)
        self.scope, self.limit = scope, limit


class Stream:
    """One client's stream: the events of its channels, queued until the client reads them.
    `None` in the queue ends it: the client fell too far behind, or the hub lost Redis; either
    way the client reconnects with Last-Event-ID and the outbox replays what it missed."""

    def __init__(
        self, user_key: str, wanted: tuple[str, ...], size: int, token: str | None = None
    ) -> None:
        self.user_key = user_key
        self.token = token  # the digest of the token it was opened with: revoked, it ends
        self.wanted = wanted
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=size + 1)
        self.size = size
        self.ended = False

    def offer(self, data: str) -> None:
        if self.ended:
            return
        if self.queue.qsize() >= self.size:  # a slow client is dropped, never buffered
            self.end()
            return
        self.queue.put_nowait(data)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.queue.put_nowait(None)  # the one slot kept free for it


class EventHub:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        max_streams: int,
        max_per_user: int,
        queue_size: int,
        on_revoked: Callable[[str], None],
        on_lost: Callable[[], None],
    ) -> None:
        self.redis = redis
        self.max_streams = max_streams
        self.max_per_user = max_per_user
        self.queue_size = queue_size
        self.on_revoked = on_revoked
        self.on_lost = on_lost  # messages may have been missed (revocations too)
        self.streams: set[Stream] = set()
        self.per_user: Counter[str] = Counter()
        self.listeners: dict[str, set[Stream]] = {}
        self.pending: dict[str, asyncio.Future[None]] = {}
        self.pubsub: PubSub | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.pubsub = self.redis.pubsub()
        await self.pubsub.subscribe(REVOKED_CHANNEL)  # also gives the reader its connection
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        for stream in list(self.streams):
            stream.end()
        if self.pubsub is not None:
            await self.pubsub.aclose()
            self.pubsub = None

    @property
    def open_streams(self) -> int:
        return len(self.streams)

    async def join(self, user_key: str, wanted: list[str], token: str | None = None) -> Stream:
        """A new stream on these channels, live once this returns (so that a replay from the
        outbox afterwards leaves no gap); StreamLimit beyond the caps. It ends when the token
        (its digest) is revoked on any gateway."""
        if len(self.streams) >= self.max_streams:
            raise StreamLimit("gateway", self.max_streams)
        if self.per_user[user_key] >= self.max_per_user:
            raise StreamLimit("user", self.max_per_user)
        assert self.pubsub is not None
        stream = Stream(user_key, tuple(dict.fromkeys(wanted)), self.queue_size, token)
        self.streams.add(stream)
        self.per_user[user_key] += 1
        try:
            new = [c for c in stream.wanted if c not in self.listeners]
            for c in stream.wanted:
                self.listeners.setdefault(c, set()).add(stream)
            loop = asyncio.get_running_loop()
            for c in new:
                self.pending[c] = loop.create_future()
            if new:
                await self.pubsub.subscribe(*new)
            waits = [self.pending[c] for c in stream.wanted if c in self.pending]
            if waits:
                await asyncio.wait_for(
                    asyncio.shield(asyncio.gather(*waits)), timeout=SUBSCRIBE_TIMEOUT
                )
        except BaseException:
            await self.leave(stream)
            raise
        return stream

    async def leave(self, stream: Stream) -> None:
        if stream not in self.streams:
            return
        self.streams.discard(stream)
        self.per_user[stream.user_key] -= 1
        if self.per_user[stream.user_key] <= 0:
            del self.per_user[stream.user_key]
        idle = []
        for c in stream.wanted:
            listeners = self.listeners.get(c)
            if listeners is None:
                continue
            listeners.discard(stream)
            if not listeners:
                del self.listeners[c]
                idle.append(c)
        if idle and self.pubsub is not None:
            try:
                await self.pubsub.unsubscribe(*idle)
            except Exception as exc:  # the reader notices a broken connection and recovers
                log.warning("unsubscribe failed: %s", exc)

    async def _read(self) -> None:
        assert self.pubsub is not None
        while True:
            try:
                msg = await self.pubsub.get_message(timeout=KEEPALIVE_POLL)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: streams reconnect and replay
                log.warning("live updates lost Redis: %s", exc)
                self._lost()
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            if msg is not None:
                self._dispatch(msg)

    def _dispatch(self, msg: dict[str, object]) -> None:
        kind, channel, data = msg.get("type"), str(msg.get("channel")), msg.get("data")
        if kind == "subscribe":
            fut = self.pending.pop(channel, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif kind == "message" and isinstance(data, str):
            if channel == REVOKED_CHANNEL:
                for stream in [s for s in self.streams if s.token == data]:
                    stream.end()  # logged out: what it would hear next is not theirs any more
                self.on_revoked(data)
                return
            for stream in list(self.listeners.get(channel, ())):
                stream.offer(data)

    def _lost(self) -> None:
        for stream in list(self.streams):
            stream.end()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("live updates lost Redis"))
        self.pending.clear()
        self.on_lost()

"""Live updates over Server-Sent Events, fed from Redis pub/sub (any gateway replica serves any
client), with replay from the outbox after a reconnect (Last-Event-ID)."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from actors import channels
from actors.dto import Principal
from gateway.auth import Caller, PlatformDep
from gateway.platform import Platform
from store.repositories import OutboxRepository

router = APIRouter(prefix="/api/v1", tags=["events"])

KEEPALIVE_SECONDS = 15.0
REPLAY_LIMIT = 1000


def channels_of(caller: Principal) -> list[str]:
    """A customer hears their own account; an agent their tier's queue and their tickets."""
    if caller.role == "customer" and caller.account_id is not None:
        return [channels.account(caller.account_id)]
    if caller.role == "agent" and caller.agent_id is not None and caller.tier is not None:
        return [channels.tier(caller.tier), channels.agent(caller.agent_id)]
    if caller.role == "admin":
        return [channels.STAFF_ALL]
    return []


def frame(event: dict[str, Any]) -> str:
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {event['topic']}\ndata: {data}\n\n"


def replay(platform: Platform, wanted: set[str], after: int) -> list[dict[str, Any]]:
    """Outbox rows after `after` that this caller would have heard live."""
    with platform.db.read() as s:
        rows = OutboxRepository(s).after(after, limit=REPLAY_LIMIT)
        out = []
        for r in rows:
            if wanted & set(channels.channels_for(r.account_id, r.payload)):
                out.append({"id": r.id, "topic": r.topic, "account_id": r.account_id, **r.payload})
        return out


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    caller: Caller,
    platform: PlatformDep,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """A stream of what happens, as it happens: customers get their own account's public
    events; agents get their tier's queue and the tickets they own; admins get everything.
    Each event's `id` is its outbox id; reconnect with `Last-Event-ID` to get what you missed."""
    subscribed = channels_of(caller)
    assert platform.redis is not None
    pubsub = platform.redis.pubsub()
    if subscribed:
        await pubsub.subscribe(*subscribed)

    async def stream() -> AsyncIterator[str]:
        seen: deque[int] = deque(maxlen=2048)
        try:
            yield "retry: 2000\n: connected\n\n"
            if last_event_id is not None:
                for ev in await asyncio.to_thread(replay, platform, set(subscribed), last_event_id):
                    seen.append(ev["id"])
                    yield frame(ev)
            while not await request.is_disconnected():
                if not subscribed:
                    await asyncio.sleep(KEEPALIVE_SECONDS)
                    yield ": keepalive\n\n"
                    continue
                msg = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=KEEPALIVE_SECONDS
                )
                if msg is None:
                    yield ": keepalive\n\n"
                    continue
                event = json.loads(msg["data"])
                if event["id"] in seen:  # the same event on two of our channels, or replayed
                    continue
                seen.append(event["id"])
                yield frame(event)
        finally:
            await pubsub.aclose()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

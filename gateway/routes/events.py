"""Live updates over Server-Sent Events, fed from Redis pub/sub (any gateway replica serves any
client) through the gateway's one subscriber (gateway/event_hub.py), with replay from the outbox
after a reconnect (Last-Event-ID). Who hears what, live and on replay: actors/notify/audience.py."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import StreamingResponse

from actors.notify import audience
from gateway.auth import Caller, PlatformDep, bearer
from gateway.errors import Overloaded, TooManyRequests
from gateway.event_hub import StreamLimit
from store.repositories.user import token_digest

router = APIRouter(prefix="/api/v1", tags=["events"])

KEEPALIVE_SECONDS = 15.0
STREAM_RETRY_SECONDS = 30


def frame(event: dict[str, Any]) -> str:
    data = json.dumps(event, separators=(",", ":"))
    return f"id: {event['id']}\nevent: {event['topic']}\ndata: {data}\n\n"


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events until the token is revoked or the client is "
            "dropped: each event's `id` (its outbox id), `event` (its topic, e.g. "
            "`ticket.assigned`, `change.applied`, or `reset`) and `data` (the event as JSON); "
            "comments keep the connection alive.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        429: {"description": "`too_many_streams`: too many open streams, with Retry-After"},
        503: {
            "description": "`live_unavailable`: live updates are unavailable (Redis), with "
            "Retry-After"
        },
    },
)
async def events(
    caller: Caller,
    platform: PlatformDep,
    token: Annotated[str | None, Depends(bearer)],
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """A stream of what happens, as it happens: customers get their own account's public
    events; agents get their tier's queue and the tickets they own; admins get everything.
    Each event's `id` is its outbox id; reconnect with `Last-Event-ID` to get what you missed,
    all of it: when that can not be sent (more than 1,000 events, or older than the outbox
    keeps) the stream starts with a `reset` event saying why, and the client reloads instead.
    A user has a few streams at a time (429 beyond); a client that reads too slowly is
    disconnected and catches up with `Last-Event-ID`. A stream ends when its token is revoked
    (log-out, sign out everywhere, a password change elsewhere)."""
    listener = audience.listener_of(caller)
    hub = await platform.live()
    if hub is None:
        raise Overloaded("live updates are unavailable; try again shortly", retry_after=5,
                         code="live_unavailable")  # fmt: skip
    try:
        stream = await hub.join(
            f"user:{caller.user_id}" if caller.user_id else caller.label,
            audience.subscriptions(listener),
            token=token_digest(token) if token else None,
        )
    except StreamLimit as exc:
        where = "for one user" if exc.scope == "user" else "on this gateway"
        raise TooManyRequests(
            f"too many open event streams {where} (at most {exc.limit}); close one first",
            retry_after=STREAM_RETRY_SECONDS,
            code="too_many_streams",
            detail={"limit": exc.limit, "scope": exc.scope},
        ) from None
    except (TimeoutError, ConnectionError) as exc:
        raise Overloaded("live updates are unavailable; try again shortly", retry_after=5,
                         code="live_unavailable") from exc  # fmt: skip

    async def body() -> AsyncIterator[str]:
        seen: deque[int] = deque(maxlen=2048)
        try:
            yield "retry: 2000\n: connected\n\n"
            if last_event_id is not None:  # live since join(): nothing falls in between

                def missed() -> audience.Replay:
                    with platform.db.read() as s:
                        return audience.replay(s, listener, last_event_id)

                missing = await asyncio.to_thread(missed)
                if missing.reset is not None:
                    yield frame(missing.reset)
                for ev in missing.events:
                    seen.append(ev["id"])
                    yield frame(ev)
            while True:
                try:
                    data = await asyncio.wait_for(stream.queue.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if data is None:  # dropped (too slow, or Redis lost): the client reconnects
                    return
                event = json.loads(data)
                if event["id"] in seen:  # the same event on two of our channels, or replayed
                    continue
                seen.append(event["id"])
                yield frame(event)
        finally:
            await hub.leave(stream)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

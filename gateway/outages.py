"""While a component is down, the API says so: `503` with `Retry-After`, never a 500 or a hang.

One place for every outage a request can run into, wherever it surfaces: the database driver's
connection errors (PostgreSQL restarting, SQLite's file locked past its timeout), Redis's
(restarting, unreachable), and an actor call that Ray could not complete (an actor restarting,
a timeout), whether raised in the gateway or inside an actor and handed back by Ray. A request
that takes longer than `REQUEST_DEADLINE_SECONDS` is answered `503` too instead of hanging (the
work it started may still finish: a client retries with the same `Idempotency-Key`, which
answers with the first outcome). Live streams (`text/event-stream`) have no deadline.

Found by bench/chaos.py: a PostgreSQL restart answered reads and writes with 500, and a Redis
restart answered every authenticated read with 500 (the token's revocation check)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.exceptions as redis_errors
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.errors import DeskError
from gateway.errors import desk_response, error_body
from store.errors import DatabaseUnreachableError

log = logging.getLogger(__name__)

REQUEST_DEADLINE_SECONDS = 30.0
RETRY_AFTER = {"database": 2, "redis": 2, "desk": 1, "timeout": 2}
MESSAGES = {
    "database": "the database is not reachable right now; try again shortly",
    "redis": "the live-update and limits store (Redis) is not reachable right now; "
    "try again shortly",
    "desk": "a component of the desk is restarting; try again shortly",
    "timeout": "the desk did not answer in time; try again shortly (with the same "
    "Idempotency-Key, a retry is answered with the first outcome)",
}
CODES = {
    "database": "database_unavailable",
    "redis": "redis_unavailable",
    "desk": "unavailable",
    "timeout": "timeout",
}

REDIS_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError)
RAY_DOWN = (RayActorError, ActorUnavailableError, GetTimeoutError)


def outage_of(exc: BaseException) -> str | None:
    """Which component an exception says is down ('database', 'redis', 'desk', 'timeout'), or
    None when it is not an outage (a bug stays a 500)."""
    if isinstance(exc, RayTaskError):  # raised inside an actor: judge what it raised
        cause = getattr(exc, "cause", None)
        return outage_of(cause) if isinstance(cause, BaseException) else None
    if isinstance(exc, DatabaseUnreachableError | PoolTimeout):
        return "database"
    if isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return "database"
    if isinstance(exc, REDIS_DOWN):
        return "redis"
    if isinstance(exc, RAY_DOWN):
        return "desk"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return None


def unavailable(component: str, detail: str | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(CODES[component], MESSAGES[component], detail),
        503,
        headers={"Retry-After": str(RETRY_AFTER[component])},
    )


async def _outage(request: Request, exc: Exception) -> Any:
    component = outage_of(exc)
    if component is not None:
        log.warning("503 %s: %s", component, " ".join(str(exc).split())[:300])
        return unavailable(component)
    cause = getattr(exc, "cause", None)
    if isinstance(exc, RayTaskError) and isinstance(cause, DeskError):
        return desk_response(cause)  # a refusal the actor raised, unwrapped
    # Not an outage: the handler the exception would have had without these (an actor's
    # store error has its own), else the server error it is.
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        handler = handlers.get(kind)
        if handler is not None and handler is not _outage:
            return await handler(request, exc)
    raise exc


class RequestDeadline:
    """Answers 503 (`timeout`, with Retry-After) for a request that has not started its answer
    within the deadline; streams, once started, run on."""

    def __init__(self, app: ASGIApp, seconds: float = REQUEST_DEADLINE_SECONDS) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, tracked))
        try:
            await asyncio.wait_for(asyncio.shield(task), self.seconds)
        except TimeoutError:
            if started.is_set():  # a stream, or an answer being sent: let it finish
                await task
                return
            task.cancel()
            log.warning("503 timeout: %s %s after %.0f s", scope.get("method"),
                        scope.get("path"), self.seconds)  # fmt: skip
            response = unavailable("timeout")
            await response(scope, receive, send)
        except BaseException:
            task.cancel()
            raise


def install_outage_handlers(app: FastAPI, *, deadline: float = REQUEST_DEADLINE_SECONDS) -> None:
    """Wire the outage answers into `app` (one line in gateway/app.py)."""
    kinds: tuple[type[Exception], ...] = (
        OperationalError,
        DBAPIError,
        PoolTimeout,
        DatabaseUnreachableError,
        *REDIS_DOWN,
        *RAY_DOWN,
        RayTaskError,
        TimeoutError,
    )
    for kind in kinds:
        app.add_exception_handler(kind, _outage)
    app.add_middleware(RequestDeadline, seconds=deadline)

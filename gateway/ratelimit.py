"""Rate limits of the API, counted in Redis so that every gateway counts alike.

Each limit is a fixed window of a minute, for one caller and one resource:

- `api`: every authenticated /api/v1 request (`requests_per_minute`, 400);
- `tickets`: new tickets, POST /tickets and POST /calls (`tickets_per_minute`, 30);
- `changes`, `dry_runs`: POST /changes, each costing an SSH exec on a host
  (`changes_per_minute`, `dry_runs_per_minute`, 30 each);
- `search`: GET /search, per user (`searches_per_minute`, 120).

The caller is a customer account (all its users and tokens share one budget) or, for staff,
one token (each log-in and each API token has its own). A request is counted in its limits by
one Lua script, atomic on the one Redis every gateway shares; refused requests count too. Every
answer of a limited route carries the headers of the limit closest to refusing it:

    X-RateLimit-Limit       requests the window allows
    X-RateLimit-Remaining   requests left in the window
    X-RateLimit-Reset       seconds until the window ends (a delta, like Retry-After; not an epoch)
    X-RateLimit-Resource    api, tickets, changes, dry_runs or search

and past a limit the answer is 429 `rate_limited` with `Retry-After` (the same seconds).
Windows start on the minute of the gateways' clocks (keep them on NTP).

While Redis is unreachable a read (GET, HEAD, OPTIONS) is served uncounted, with a log line at
most every 10 s per gateway; any other request answers 503 `rate_limits_unavailable` with
`Retry-After`: writes are what the stricter limits keep off the managed hosts.

Not counted here: health, docs and pages, log-in (gateway/login_guard.py has its own limits)
and the telephony webhook (signed by the provider); the batch API acts through the actors."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actors.principal import Principal
from gateway.errors import RetryLater, TooManyRequests
from gateway.settings import GatewaySettings
from store.repositories.user import token_digest

if TYPE_CHECKING:
    from gateway.platform import Platform

log = logging.getLogger(__name__)

PREFIX = "sitedesk:rate:"
WINDOW_SECONDS = 60
REDIS_TIMEOUT = 2.0  # seconds; a Redis slower than this counts as unreachable
UNAVAILABLE_RETRY_AFTER = 5
LOG_EVERY_SECONDS = 10.0
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# KEYS: one counter per limit (its window in the name); ARGV: each counter's lifetime in ms.
# Every counter goes up by one; a new one gets its lifetime. Returns the counts.
COUNT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then
    redis.call('PEXPIRE', key, ARGV[i])
  end
  counts[i] = n
end
return counts
"""


class Resource(StrEnum):
    api = "api"
    tickets = "tickets"
    changes = "changes"
    dry_runs = "dry_runs"
    search = "search"


WHAT = {
    Resource.api: "requests",
    Resource.tickets: "new tickets",
    Resource.changes: "change requests",
    Resource.dry_runs: "dry runs",
    Resource.search: "searches",
}
WHOSE = {"account": "this account", "token": "this token", "user": "this user"}


class RateLimitsUnavailable(RetryLater):
    code, status = "rate_limits_unavailable", 503


@dataclass(frozen=True)
class Limit:
    resource: Resource
    per_window: int
    window_seconds: int = WINDOW_SECONDS


def limits_of(settings: GatewaySettings) -> dict[Resource, Limit]:
    """The limits the settings ask for (a limit of 0 is none)."""
    per_minute = {
        Resource.api: settings.requests_per_minute,
        Resource.tickets: settings.tickets_per_minute,
        Resource.changes: settings.changes_per_minute,
        Resource.dry_runs: settings.dry_runs_per_minute,
        Resource.search: settings.searches_per_minute,
    }
    return {r: Limit(r, n) for r, n in per_minute.items() if n > 0}


@dataclass(frozen=True)
class Decision:
    """One limit's count for one request."""

    resource: Resource
    limit: int
    remaining: int
    reset: int  # seconds until the window ends, at least 1
    refused: bool
    window_seconds: int = WINDOW_SECONDS

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
            (b"x-ratelimit-resource", self.resource.value.encode()),
        ]


def binding(decisions: Iterable[Decision]) -> Decision:
    """The decision a caller should hear about: a refusal (the longest wait), else the limit
    with the fewest requests left (the stricter one on a tie)."""
    every = list(decisions)
    refused = [d for d in every if d.refused]
    if refused:
        return max(refused, key=lambda d: d.reset)
    return min(every, key=lambda d: (d.remaining, d.limit))


@dataclass
class _Answer:
    decision: Decision | None = None


# The request's answer-to-be, set by RateLimitHeaders: whatever counts the request (the app's
# dependency, a route, `Platform.count_search`) leaves its decision here for the headers.
_answer: ContextVar[_Answer | None] = ContextVar("sitedesk_rate_limit_answer", default=None)


def _record(decision: Decision) -> None:
    answer = _answer.get()
    if answer is not None:
        earlier = answer.decision
        answer.decision = decision if earlier is None else binding([earlier, decision])


class RateLimitHeaders:
    """ASGI middleware: the `X-RateLimit-*` headers on every answer of a request that was
    counted, successful or not (a 429 raised by a dependency included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answer = _Answer()
        reset = _answer.set(answer)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and answer.decision is not None:
                headers = [*message.get("headers", ()), *answer.decision.headers()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            _answer.reset(reset)


class RateLimiter:
    """Counts requests in Redis (the platform's `limits` pool), with `clock` for the windows."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: GatewaySettings,
        *,
        desk: str = "sitedesk",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limits = limits_of(settings)
        self.prefix = f"{PREFIX}{desk}:"  # one desk (SCDB) per Ray namespace
        self.clock = clock
        self._count = redis.register_script(COUNT)
        self._logged_at = -math.inf

    async def hit(self, subject: str, *resources: Resource, fail_open: bool) -> Decision | None:
        """Count one request of `subject` (`account:<id>`, `token:<digest>`, `user:<id>`) in
        each of the resources' limits; TooManyRequests past one of them. Redis unreachable:
        None when `fail_open`, else RateLimitsUnavailable."""
        limits = [self.limits[r] for r in resources if r in self.limits]
        if not limits:
            return None
        now = self.clock()
        windows = [int(now // limit.window_seconds) for limit in limits]
        keys = [
            f"{self.prefix}{limit.resource.value}:{subject}:{window}"
            for limit, window in zip(limits, windows, strict=True)
        ]
        lifetimes = [2000 * limit.window_seconds for limit in limits]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                counts = await self._count(keys=keys, args=lifetimes)
        except (RedisError, OSError, TimeoutError) as exc:
            self._unreachable(exc, fail_open=fail_open)
            return None
        decision = binding(
            Decision(
                resource=limit.resource,
                limit=limit.per_window,
                remaining=max(limit.per_window - int(count), 0),
                reset=max(1, math.ceil((window + 1) * limit.window_seconds - now)),
                refused=int(count) > limit.per_window,
                window_seconds=limit.window_seconds,
            )
            for limit, window, count in zip(limits, windows, counts, strict=True)
        )
        _record(decision)
        if decision.refused:
            whose = WHOSE.get(subject.split(":", 1)[0], "this caller")
            raise TooManyRequests(
                f"at most {decision.limit} {WHAT[decision.resource]} a minute for {whose}; "
                f"try again in {decision.reset} s",
                retry_after=decision.reset,
                detail={
                    "resource": decision.resource.value,
                    "limit": decision.limit,
                    "window_seconds": decision.window_seconds,
                },
            )
        return decision

    def _unreachable(self, exc: Exception, *, fail_open: bool) -> None:
        if not fail_open:
            raise RateLimitsUnavailable(
                "the rate limits can not be counted right now (Redis is unreachable); "
                "try again shortly",
                retry_after=UNAVAILABLE_RETRY_AFTER,
            ) from exc
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            self._logged_at = now
            log.warning("rate limits not counted, reads served anyway: Redis unreachable (%r)", exc)


# -- in the app: who is counted, and where ---------------------------------------------------
def bearer_token(request: Request) -> str | None:
    """The request's bearer token, read as OAuth2PasswordBearer reads it (without making every
    route declare the security scheme in the OpenAPI)."""
    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    return token if scheme.lower() == "bearer" and token else None


def subject_of(caller: Principal, token: str) -> str:
    """Whose budget a request spends: a customer's account, shared by all its users and
    tokens; for staff (or a customer log-in on no account) the token's own."""
    if caller.role == "customer" and caller.account_id is not None:
        return f"account:{caller.account_id}"
    return f"token:{token_digest(token)[:32]}"


async def rate_limit(request: Request, caller: Principal, resource: Resource) -> None:
    """Count the request in one of the caller's limits (the routes of the stricter limits call
    this; every authenticated route is counted in `api` by the app's dependency)."""
    platform: Platform = request.app.state.platform
    if platform.limiter is None:
        return
    await platform.limiter.hit(
        subject_of(caller, bearer_token(request) or ""),
        resource,
        fail_open=request.method in SAFE_METHODS,
    )


Resolve = Callable[..., Awaitable[Principal]]


def _calls(dependant: Dependant) -> Iterator[object]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def api_rate_limit(resolve: Resolve) -> Callable[[Request], Awaitable[None]]:
    """The app-wide dependency that counts every authenticated route (one that depends on
    `resolve`, the bearer-token check `gateway.auth.current_principal`) in the `api` limit;
    routes without it (health, docs, pages, log-in, the telephony webhook) are not counted."""
    authenticated: dict[str, bool] = {}  # by route id, worked out on a route's first request

    async def count_request(request: Request) -> None:
        route = request.scope.get("route")
        if not isinstance(route, APIRoute):
            return
        if route.unique_id not in authenticated:
            authenticated[route.unique_id] = resolve in _calls(route.dependant)
        token = bearer_token(request)
        if not authenticated[route.unique_id] or token is None:
            return  # not counted, or the route's own check answers 401
        platform: Platform = request.app.state.platform
        # The cached principal is enough to know whose budget this is; the route's own check
        # (which runs next) refuses a token revoked meanwhile.
        caller = platform.cached_principal(token_digest(token))
        if caller is None:
            caller = await resolve(platform, token)
        await rate_limit(request, caller, Resource.api)

    return count_request

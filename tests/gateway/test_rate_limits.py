"""The API's rate limits on the real gateway (uvicorn on loopback) and real Redis: the
`X-RateLimit-*` headers count down, past a limit a 429 with Retry-After; a customer account's
users share one budget, staff have one per token; gateways on one Redis share the count; the
window resets; new tickets, change requests and dry runs have stricter limits of their own.

The gateways here run on a clock the test moves (`Platform.clock`), starting in a window of
their own, so nothing waits for a real minute to pass."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select

from automation.loopback import free_port
from gateway.platform import Platform
from gateway.ratelimit import RateLimiter
from gateway.settings import GatewaySettings
from store.db import Database
from store.models import Account, ApiToken, Ticket, User
from store.repositories import AccountRepository, AgentRepository, TokenRepository, UserRepository
from store.repositories.user import token_digest
from tests.conftest import REDIS_URL
from tests.desk import PASSWORD, Desk, LiveServer

HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


class Clock:
    """The gateways' clock: 15 s into a minute of its own (no other test's windows)."""

    def __init__(self) -> None:
        self.now = 60.0 * (30_000_000 + secrets.randbelow(1_000_000)) + 15

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def counted(r: httpx.Response) -> tuple[int, int, int, str]:
    """The limit, remaining and reset an answer carries, and the limit's resource."""
    assert all(h in r.headers for h in HEADERS), (r.status_code, dict(r.headers))
    return (
        int(r.headers["x-ratelimit-limit"]),
        int(r.headers["x-ratelimit-remaining"]),
        int(r.headers["x-ratelimit-reset"]),
        r.headers["x-ratelimit-resource"],
    )


def refused(r: httpx.Response, resource: str, limit: int, wait: int) -> None:
    """A 429 of the `resource` limit, in the API's error shape, with Retry-After."""
    assert r.status_code == 429, r.text
    body = r.json()
    assert set(body) == {"error", "message", "detail"}
    assert body["error"] == "rate_limited" and f"at most {limit}" in body["message"]
    assert body["detail"] == {"resource": resource, "limit": limit, "window_seconds": 60}
    assert int(r.headers["Retry-After"]) == wait
    assert counted(r) == (limit, 0, wait, resource)


@dataclass
class Gateways:
    db: Database
    clock: Clock = field(default_factory=Clock)
    directory: Any = None
    servers: list[LiveServer] = field(default_factory=list)

    def start(self, **settings: Any) -> tuple[Platform, httpx.Client]:
        """A gateway with these settings, on the shared database, Redis and clock."""
        platform = Platform(
            db=self.db,
            redis_url=REDIS_URL,
            settings=GatewaySettings(**settings),
            uses_ray=self.directory is not None,
            directory=self.directory,
            clock=self.clock,
        )
        server = LiveServer(platform).start()
        self.servers.append(server)
        return platform, httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30)

    def account(self, users: int = 1, *, password: str | None = None) -> tuple[Account, list[str]]:
        """A new customer account with `users` users, a token each."""
        tag = uuid.uuid4().hex[:8]
        with self.db.write() as s:
            account = AccountRepository(s).create(
                code=f"R-{tag}", name=f"Limited {tag}", unix_user=f"r{tag}"
            )
            AccountRepository(s).add_service(account.id, kind="domain", name=f"{tag}.example.test")
            tokens = []
            for n in range(users):
                user = UserRepository(s).create(
                    email=f"user{n}.{tag}@example.test", display_name=f"User {n}",
                    role="customer", account_id=account.id, password=password,
                )  # fmt: skip
                tokens.append(TokenRepository(s).issue(user.id, name="login")[0])
        return account, tokens

    def agent(self, tokens: int = 1) -> list[str]:
        """A new level-1 agent with `tokens` tokens (a log-in and API tokens, say)."""
        tag = uuid.uuid4().hex[:8]
        with self.db.write() as s:
            user = UserRepository(s).create(
                email=f"agent.{tag}@sitedesk.test", display_name=f"Agent {tag}", role="agent"
            )
            AgentRepository(s).create(user_id=user.id, tier=1, skills=["general"])
            return [TokenRepository(s).issue(user.id, name=f"t{n}")[0] for n in range(tokens)]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def sqlite_db(sqlite_dir: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{sqlite_dir / f'limits-{uuid.uuid4().hex[:8]}.db'}")
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def gateways(sqlite_db: Database) -> Iterator[Gateways]:
    """Gateways without the desk's actors (the limits are the gateway's own)."""
    made = Gateways(sqlite_db)
    yield made
    made.stop()


@pytest.fixture
def desk_gateways(desk: Desk) -> Iterator[Gateways]:
    """Gateways of the running desk (its actors file the tickets), with limits of their own."""
    made = Gateways(desk.db, directory=desk.deployment.directory)
    yield made
    made.stop()


# -- the limit every authenticated request counts in --------------------------------------
def test_the_headers_count_down_then_429_until_the_window_resets(gateways: Gateways) -> None:
    _, c = gateways.start(requests_per_minute=5)
    _, (token,) = gateways.account()
    with c:
        seen = [counted(c.get("/api/v1/me", headers=bearer(token))) for _ in range(3)]
        assert seen == [(5, 4, 45, "api"), (5, 3, 45, "api"), (5, 2, 45, "api")]
        gateways.clock.advance(10)  # Reset is the seconds left until the window ends
        assert counted(c.get("/api/v1/tickets", headers=bearer(token))) == (5, 1, 35, "api")
        assert counted(c.get("/api/v1/me", headers=bearer(token))) == (5, 0, 35, "api")
        # The 6th request of the minute, whichever route: refused, and so is every one after.
        refused(c.get("/api/v1/me", headers=bearer(token)), "api", 5, 35)
        refused(c.post("/api/v1/auth/logout", headers=bearer(token)), "api", 5, 35)
        gateways.clock.advance(34)
        refused(c.get("/api/v1/tickets", headers=bearer(token)), "api", 5, 1)
        gateways.clock.advance(1)  # the next minute: a fresh window
        r = c.get("/api/v1/me", headers=bearer(token))
        assert r.status_code == 200 and counted(r) == (5, 4, 60, "api")
        assert "retry-after" not in r.headers


def test_a_customer_accounts_users_share_it_and_other_accounts_are_unaffected(
    gateways: Gateways,
) -> None:
    _, c = gateways.start(requests_per_minute=4)
    _, (ada, bob) = gateways.account(users=2)
    _, (other,) = gateways.account()
    with c:
        remaining = [
            counted(c.get("/api/v1/me", headers=bearer(t)))[1] for t in (ada, bob, ada, bob)
        ]
        assert remaining == [3, 2, 1, 0]
        refused(c.get("/api/v1/me", headers=bearer(bob)), "api", 4, 45)
        refused(c.get("/api/v1/me", headers=bearer(ada)), "api", 4, 45)
        r = c.get("/api/v1/me", headers=bearer(other))
        assert r.status_code == 200 and counted(r) == (4, 3, 45, "api")


def test_staff_are_counted_per_token(gateways: Gateways) -> None:
    _, c = gateways.start(requests_per_minute=3)
    console, script = gateways.agent(tokens=2)  # e.g. the console's log-in and an API token
    account, (customer,) = gateways.account()
    with c:
        for left in (2, 1, 0):  # the customer's tickets, read by staff: the agent's budget
            r = c.get("/api/v1/tickets", params={"account": account.id}, headers=bearer(console))
            assert r.status_code == 200 and counted(r) == (3, left, 45, "api")
        refused(c.get("/api/v1/me", headers=bearer(console)), "api", 3, 45)
        assert counted(c.get("/api/v1/me", headers=bearer(script))) == (3, 2, 45, "api")
        assert counted(c.get("/api/v1/me", headers=bearer(customer))) == (3, 2, 45, "api")


def test_gateways_on_one_redis_share_the_count(gateways: Gateways) -> None:
    _, a = gateways.start(requests_per_minute=4)
    _, b = gateways.start(requests_per_minute=4)
    _, (token,) = gateways.account()
    with a, b:
        remaining = [counted(gw.get("/api/v1/me", headers=bearer(token)))[1] for gw in (a, b, a, b)]
        assert remaining == [3, 2, 1, 0]
        refused(a.get("/api/v1/me", headers=bearer(token)), "api", 4, 45)
        refused(b.get("/api/v1/me", headers=bearer(token)), "api", 4, 45)


def test_what_needs_no_token_is_not_counted_and_log_in_has_its_own_guard(
    gateways: Gateways,
) -> None:
    _, c = gateways.start(requests_per_minute=1)
    _, (token,) = gateways.account(password=PASSWORD)
    with gateways.db.read() as s:
        email = s.scalars(select(User.email).where(User.id == ApiToken.user_id,
                          ApiToken.token_hash == token_digest(token))).one()  # fmt: skip
    with c:
        assert c.get("/api/v1/me", headers=bearer(token)).status_code == 200
        refused(c.get("/api/v1/me", headers=bearer(token)), "api", 1, 45)
        for path in ("/healthz", "/readyz", "/docs", "/portal", "/console"):
            r = c.get(path, headers=bearer(token))
            assert r.status_code == 200, (path, r.text)
            assert "x-ratelimit-limit" not in r.headers, path
        # Log-in works while the account is over its limit (a stale token sent along or not).
        r = c.post("/api/v1/auth/token", headers=bearer(token),
                   data={"username": email, "password": PASSWORD})  # fmt: skip
        assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        r = c.get("/api/v1/me", headers=bearer("sdt_not-a-token"))  # no caller, nothing counted
        assert r.status_code == 401 and "x-ratelimit-limit" not in r.headers


def test_searches_are_counted_per_user_by_the_same_limiter(gateways: Gateways) -> None:
    _, c = gateways.start(requests_per_minute=100, searches_per_minute=2)
    _, (ada, bob) = gateways.account(users=2)
    with c:
        for left in (1, 0):  # the tighter of the two limits is the one the headers show
            r = c.get("/api/v1/search", params={"q": "invoice"}, headers=bearer(ada))
            assert r.status_code == 200 and counted(r) == (2, left, 45, "search")
        refused(c.get("/api/v1/search", params={"q": "x"}, headers=bearer(ada)), "search", 2, 45)
        r = c.get("/api/v1/search", params={"q": "invoice"}, headers=bearer(bob))
        assert r.status_code == 200 and counted(r) == (2, 1, 45, "search")
        assert counted(c.get("/api/v1/me", headers=bearer(ada))) == (100, 95, 45, "api")


def test_while_redis_is_unreachable_reads_are_served_and_writes_wait(
    gateways: Gateways, caplog: pytest.LogCaptureFixture
) -> None:
    platform, c = gateways.start(requests_per_minute=5)
    _, (token,) = gateways.account()
    nobody = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    platform.limiter = RateLimiter(nobody, platform.settings, clock=gateways.clock)
    with c, caplog.at_level(logging.WARNING, logger="gateway.ratelimit"):
        for _ in range(7):  # past the limit: nothing is counted
            r = c.get("/api/v1/me", headers=bearer(token))
            assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers
        r = c.post("/api/v1/tickets", headers=bearer(token), json={"subject": "s", "body": "b"})
    assert r.status_code == 503 and r.json()["error"] == "rate_limits_unavailable", r.text
    assert set(r.json()) == {"error", "message", "detail"} and r.headers["Retry-After"] == "5"
    logged = [rec for rec in caplog.records if "rate limits not counted" in rec.getMessage()]
    assert len(logged) == 1  # one line, not one a request


def test_the_defaults_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = GatewaySettings()
    assert 200 <= defaults.requests_per_minute <= 700  # Zendesk's and Freshdesk's range
    stricter = (defaults.tickets_per_minute, defaults.changes_per_minute,
                defaults.dry_runs_per_minute)  # fmt: skip
    assert all(0 < n < defaults.requests_per_minute for n in stricter)
    monkeypatch.setenv("SITEDESK_REQUESTS_PER_MINUTE", "700")
    monkeypatch.setenv("SITEDESK_CHANGES_PER_MINUTE", "0")  # 0: no limit (a load generator)
    settings = GatewaySettings()
    assert (settings.requests_per_minute, settings.changes_per_minute) == (700, 0)


# -- the stricter limits, on the desk's actors -----------------------------------------------


def open_ticket(c: httpx.Client, token: str, **body: Any) -> httpx.Response:
    return c.post("/api/v1/tickets", headers=bearer(token),
                  json={"subject": "Site down", "body": "since 10:00", **body})  # fmt: skip


@pytest.mark.ray
def test_new_tickets_have_a_stricter_limit(desk_gateways: Gateways) -> None:
    _, c = desk_gateways.start(requests_per_minute=1000, tickets_per_minute=3)
    account, (ada, bob) = desk_gateways.account(users=2)
    other, (neighbour,) = desk_gateways.account()
    phone, api = desk_gateways.agent(tokens=2)
    with c:
        for token, left in ((ada, 2), (bob, 1), (ada, 0)):  # the account's users share it
            r = open_ticket(c, token)
            assert r.status_code == 201 and counted(r) == (3, left, 45, "tickets"), r.text
        refused(open_ticket(c, bob), "tickets", 3, 45)
        listed = c.get("/api/v1/tickets", headers=bearer(ada))  # reads count in `api` only
        assert listed.status_code == 200 and counted(listed) == (1000, 995, 45, "api")
        assert len(listed.json()["items"]) == 3
        assert open_ticket(c, neighbour).status_code == 201
        # Staff: per token; a ticket opened from a call counts as a new ticket too.
        for _ in range(3):
            assert open_ticket(c, phone, account_id=other.id).status_code == 201
        refused(open_ticket(c, phone, account_id=other.id), "tickets", 3, 45)
        call = {"number": "+41 44 123 45 67", "direction": "inbound", "duration_seconds": 60,
                "notes": "n", "account_id": other.id}  # fmt: skip
        refused(c.post("/api/v1/calls", headers=bearer(phone), json=call), "tickets", 3, 45)
        r = c.post("/api/v1/calls", headers=bearer(api), json=call)
        assert r.status_code == 201 and counted(r) == (3, 2, 45, "tickets"), r.text
        desk_gateways.clock.advance(45)
        r = open_ticket(c, bob)
        assert r.status_code == 201 and counted(r) == (3, 2, 60, "tickets")
    with desk_gateways.db.read() as s:
        filed = s.scalar(select(func.count()).where(Ticket.account_id == account.id))
    assert filed == 4  # nothing refused was filed


@pytest.mark.ray
def test_change_requests_and_dry_runs_have_stricter_limits_of_their_own(
    desk_gateways: Gateways,
) -> None:
    _, c = desk_gateways.start(requests_per_minute=1000, changes_per_minute=2,
                               dry_runs_per_minute=2)  # fmt: skip
    account, (ada, bob) = desk_gateways.account(users=2)
    _, (neighbour,) = desk_gateways.account()
    with desk_gateways.db.write() as s:
        zone = AccountRepository(s).add_service(
            account.id, kind="dns_zone", name=f"z{secrets.token_hex(4)}.test"
        )
    record = {"name": "www", "type": "A", "value": "192.0.2.10"}

    def change(token: str, **more: Any) -> httpx.Response:
        body = {"service_id": zone.id, "kind": "dns_record_add", "params": record, **more}
        return c.post("/api/v1/changes", headers=bearer(token), json=body)

    with c:
        # Each is answered (the zone is on no managed host yet) and counted in its own limit.
        for token, left in ((ada, 1), (bob, 0)):
            r = change(token)
            assert r.status_code != 429 and counted(r) == (2, left, 45, "changes"), r.text
        refused(change(ada), "changes", 2, 45)
        for token, left in ((bob, 1), (ada, 0)):  # dry runs: a budget of their own
            r = change(token, dry_run=True)
            assert r.status_code != 429 and counted(r) == (2, left, 45, "dry_runs"), r.text
        refused(change(bob, dry_run=True), "dry_runs", 2, 45)
        r = change(neighbour)  # Ada's zone: no such service to another account
        assert r.status_code == 404 and counted(r) == (2, 1, 45, "changes"), r.text
        desk_gateways.clock.advance(45)
        r = change(ada)
        assert r.status_code != 429 and counted(r) == (2, 1, 60, "changes")

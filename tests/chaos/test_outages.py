"""The outage answers of gateway/outages.py: every way a request meets a component that is down
(the database driver's connection errors, Redis's, an actor call Ray could not complete, those
errors raised inside an actor and handed back by Ray, a request that never finishes) is a 503
with Retry-After in the one error shape; what is not an outage keeps its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.exceptions
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ray.exceptions import RayTaskError
from sqlalchemy.exc import IntegrityError, OperationalError

from actors.errors import TicketNotFound
from gateway.errors import install_error_handlers
from gateway.outages import install_outage_handlers
from store.errors import DatabaseUnreachableError, NotFoundError


def from_actor(exc: Exception) -> Exception:
    """The exception as Ray hands it back from inside an actor."""
    wrapped: Exception = RayTaskError("method", "remote traceback", exc).as_instanceof_cause()
    return wrapped


PG_DOWN = OperationalError("SELECT 1", {}, Exception("connection refused"))
RAISED: dict[str, Exception] = {
    "pg": PG_DOWN,
    "pg-in-actor": from_actor(PG_DOWN),
    "unreachable": DatabaseUnreachableError("postgresql://x", "refused"),
    "redis": redis.exceptions.ConnectionError("Error 111 connecting"),
    "redis-timeout": redis.exceptions.TimeoutError("Timeout reading from socket"),
    "redis-in-actor": from_actor(redis.exceptions.ConnectionError("refused")),
    "desk-in-actor": from_actor(TicketNotFound("ticket TT-000009 not found")),
    "store-in-actor": from_actor(NotFoundError("ticket", 9)),
    "bug": ValueError("a bug"),
    "integrity": IntegrityError("INSERT", {}, Exception("duplicate key")),
}


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    install_outage_handlers(app, deadline=0.3)

    @app.get("/raise/{what}")
    async def boom(what: str) -> None:
        raise RAISED[what]

    @app.get("/hang")
    async def hang() -> None:
        await asyncio.Event().wait()  # never set: a call that never returns

    @app.get("/stream")
    async def stream() -> Any:
        from fastapi.responses import StreamingResponse

        async def body() -> Any:
            yield "a\n"
            await asyncio.sleep(0.6)  # past the deadline, once the answer has started
            yield "b\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("what", "code"),
    [
        ("pg", "database_unavailable"),
        ("pg-in-actor", "database_unavailable"),
        ("unreachable", "database_unavailable"),
        ("redis", "redis_unavailable"),
        ("redis-timeout", "redis_unavailable"),
        ("redis-in-actor", "redis_unavailable"),
    ],
)
def test_a_component_down_is_503_with_retry_after(client: TestClient, what: str, code: str) -> None:
    r = client.get(f"/raise/{what}")
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"] == code and r.json()["message"]


def test_what_is_not_an_outage_keeps_its_answer(client: TestClient) -> None:
    assert client.get("/raise/desk-in-actor").json()["error"] == "ticket_not_found"
    r = client.get("/raise/store-in-actor")
    assert (r.status_code, r.json()["error"]) == (404, "ticket_not_found")
    assert client.get("/raise/bug").status_code == 500  # a bug is not hidden as an outage
    assert client.get("/raise/integrity").status_code == 500


def test_a_request_that_never_finishes_is_503_not_a_hang(client: TestClient) -> None:
    r = client.get("/hang")
    assert (r.status_code, r.json()["error"]) == (503, "timeout")
    assert r.headers["Retry-After"]


def test_a_stream_that_has_started_runs_past_the_deadline(client: TestClient) -> None:
    r = client.get("/stream")
    assert (r.status_code, r.text) == (200, "a\nb\n")

"""Readiness tells the truth about the database and Redis it depends on."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.platform import Platform
from store.db import Database
from tests.conftest import REDIS_URL


def test_ready_when_database_and_redis_answer(db: Database) -> None:
    app = create_app(Platform(db=db, redis_url=REDIS_URL, uses_ray=False))
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"]["database"] == {"ok": True, "detail": db.dialect}


def test_not_ready_names_the_missing_redis(db: Database) -> None:
    app = create_app(Platform(db=db, redis_url="redis://127.0.0.1:1/0", uses_ray=False))
    with TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["redis"]["ok"] is False
    assert r.json()["checks"]["database"]["ok"] is True


def test_not_ready_on_an_unmigrated_database(tmp_path: object) -> None:
    empty = Database(f"sqlite:///{tmp_path}/empty.db")
    app = create_app(Platform(db=empty, redis_url=REDIS_URL, uses_ray=False))
    with TestClient(app) as client:
        r = client.get("/readyz")
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert "sitedesk db upgrade" in r.json()["checks"]["database"]["detail"]


def test_unknown_path_gets_the_error_shape(db: Database) -> None:
    app = create_app(Platform(db=db, redis_url=REDIS_URL, uses_ray=False))
    with TestClient(app) as client:
        r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "message": "Not Found", "detail": None}


def test_a_refusal_from_inside_an_actor_keeps_its_code_detail_and_retry_after() -> None:
    """Ray hands an actor's error back as a wrapper whose class defaults hide what was given
    at raise time; the one error handler renders what was raised."""
    from ray.exceptions import RayTaskError

    from actors.errors import DeskError, InvalidChange, RateLimited
    from gateway.errors import desk_response

    def through_ray(exc: DeskError) -> DeskError:
        wrapped = RayTaskError("request_change", "Traceback ...", exc).as_instanceof_cause()
        assert isinstance(wrapped, type(exc))
        return wrapped

    invalid = desk_response(through_ray(InvalidChange("bad zone", ["zone: must be 'a.test'"])))
    assert invalid.status_code == 422
    assert json.loads(invalid.body) == {
        "error": "invalid_change",
        "message": "bad zone",
        "detail": [{"field": "zone", "problem": "zone: must be 'a.test'"}],
    }
    limited = desk_response(through_ray(RateLimited("slow down", retry_after=42)))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "42"
    named = desk_response(through_ray(DeskError("no such box", code="mailbox_not_found")))
    assert json.loads(named.body)["error"] == "mailbox_not_found"

"""Readiness tells the truth about the database and Redis it depends on."""

from __future__ import annotations

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
    assert r.status_code == 503
    assert "sitedesk db upgrade" in r.json()["checks"]["database"]["detail"]


def test_unknown_path_gets_the_error_shape(db: Database) -> None:
    app = create_app(Platform(db=db, redis_url=REDIS_URL, uses_ray=False))
    with TestClient(app) as client:
        r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.json() == {"error": "not_found", "message": "Not Found", "detail": None}

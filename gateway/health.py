"""Liveness and readiness: is the process up, and can it reach the database, Redis and Ray;
beside them, which managed hosts the change executors can not work on."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cluster.ray_runtime import ray_ready
from gateway.errors import ErrorBody
from gateway.platform import Platform
from store.errors import StoreError

router = APIRouter(tags=["health"])


class Check(BaseModel):
    ok: bool
    detail: str


class UnhealthyHost(BaseModel):
    state: str = Field(description="`down`, `host_key_mismatch`, `lock_busy`, `stopped` ...")
    detail: str | None = Field(description="The last error, in words.")


class HostsSummary(BaseModel):
    up: int = Field(description="Managed hosts the executors work on.")
    unhealthy: dict[str, UnhealthyHost] = Field(description="The others, by name.")


class Readiness(BaseModel):
    """What /readyz answers, ready (200) or not (503)."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Check] = Field(description="`database`, `redis` and, with Ray, `ray`.")
    hosts: HostsSummary | None = Field(
        default=None, description="Present while Ray answers: the managed hosts' health."
    )


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


READY_RETRY_AFTER = 5


@router.get(
    "/readyz",
    responses={
        200: {"model": Readiness, "description": "Ready."},
        503: {
            "model": Readiness | ErrorBody,
            "description": "A dependency is not ready (see `checks`); `timeout` (ErrorBody): "
            "the checks took over 30 s.",
            "headers": {
                "Retry-After": {
                    "description": "Seconds until it is worth asking again.",
                    "schema": {"type": "integer"},
                }
            },
        },
    },
)
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database is reachable and migrated, Redis and Ray answer. `hosts`
    lists the managed hosts that are not up (unreachable, a client key the executors can not
    use, a host key that does not match ...) with the reason; they do not make the gateway
    unready: it serves everything else, and their changes wait for them."""
    platform: Platform = request.app.state.platform
    checks: dict[str, dict[str, Any]] = {}

    def database() -> None:
        platform.db.check_migrated()

    try:
        await asyncio.to_thread(database)
        checks["database"] = {"ok": True, "detail": platform.db.dialect}
    except StoreError as exc:
        checks["database"] = {"ok": False, "detail": str(exc)}

    try:
        assert platform.redis is not None
        await asyncio.wait_for(platform.redis.ping(), timeout=2)
        checks["redis"] = {"ok": True, "detail": "PONG"}
    except Exception as exc:  # any failure of the ping is "not ready"
        checks["redis"] = {"ok": False, "detail": str(exc) or type(exc).__name__}

    if platform.uses_ray:
        ok, detail = await asyncio.to_thread(ray_ready)
        checks["ray"] = {"ok": ok, "detail": detail}

    ready = all(c["ok"] for c in checks.values())
    body: dict[str, Any] = {"status": "ready" if ready else "not_ready", "checks": checks}
    if platform.uses_ray and checks["ray"]["ok"]:
        health = await platform.host_health()
        body["hosts"] = {
            "up": sum(1 for h in health.values() if h.state == "up"),
            "unhealthy": {
                name: {"state": h.state, "detail": h.last_error}
                for name, h in sorted(health.items())
                if h.state != "up"
            },
        }
    if ready:
        return JSONResponse(body)
    # Not ready is for now: a load balancer or client asks again after this many seconds.
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(READY_RETRY_AFTER)})

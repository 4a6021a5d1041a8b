"""Start a local Ray or join a cluster, with the settings this 2-core box needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray

from cluster.errors import RayUnavailableError
from cluster.settings import ClusterSettings


def ray_env_defaults() -> None:
    """Environment Ray reads at start: no usage reporting, no token auth for local use,
    workers at normal priority."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Ray starts its workers at niceness 15, as background work; our actors are the service
    # itself, and on a small box the gateway and the database would otherwise starve them.
    os.environ.setdefault("RAY_worker_niceness", "0")


def start_ray(settings: ClusterSettings, *, dashboard: bool | None = None) -> dict[str, Any]:
    """Join SITEDESK_RAY_ADDRESS if set, else start a local Ray; return its context info."""
    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "joined": True}
    ray_env_defaults()
    try:
        if settings.ray_address:
            ctx = ray.init(
                address=settings.ray_address,
                namespace=settings.ray_namespace,
                logging_level="WARNING",
                log_to_driver=False,
            )
        else:
            want_dashboard = settings.ray_dashboard if dashboard is None else dashboard
            ctx = ray.init(
                namespace=settings.ray_namespace,
                _node_ip_address="127.0.0.1",  # a local Ray talks over loopback only
                include_dashboard=want_dashboard,
                dashboard_host="127.0.0.1",
                object_store_memory=settings.ray_object_store_mb * 1024 * 1024,
                logging_level="WARNING",
                log_to_driver=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = settings.ray_address or "a local Ray"
        raise RayUnavailableError(f"cannot start or join {where}: {exc}") from exc
    address = ctx.address_info.get("gcs_address")
    if not settings.ray_address and address:
        # Batch jobs on this machine join this Ray, not another one that happens to run.
        path = address_file(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(address + "\n")
        _written.append(path)
    return {"address": address, "dashboard": ctx.dashboard_url}


_written: list[Path] = []


def address_file(settings: ClusterSettings) -> Path:
    """Where `sitedesk up` leaves the address of the local Ray it started."""
    return settings.data_dir / "ray-address"


def local_ray_address(settings: ClusterSettings) -> str | None:
    """SITEDESK_RAY_ADDRESS, else the Ray that `sitedesk up` started in this data dir."""
    if settings.ray_address:
        return settings.ray_address
    path = address_file(settings)
    return path.read_text().strip() if path.exists() else None


def ray_ready() -> tuple[bool, str]:
    if not ray.is_initialized():
        return False, "Ray is not started"
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
    except Exception as exc:  # any Ray failure means not ready
        return False, f"Ray does not answer: {exc}"
    return bool(nodes), f"{len(nodes)} node(s) alive"


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
    while _written:
        _written.pop().unlink(missing_ok=True)

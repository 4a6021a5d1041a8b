"""Start a private local Ray or join a cluster, with the settings this 2-core box needs.

Ray is the most dangerous thing we run: whoever can join the cluster runs code inside the
executors, which hold the root SSH keys of every managed host. So:

- the embedded Ray is private and on loopback only: `address="local"` (a `/tmp/ray` file left
  by some earlier `ray start` is never joined), its node IP 127.0.0.1, and every listener of
  every Ray process on 127.0.0.1 (a test lists them);
- it requires a token (`RAY_AUTH_MODE=token`): a random 256-bit token generated into the data
  directory (`ray-token`, 0600), which `sitedesk up`, the batch API and the tests read;
- joining a cluster (`SITEDESK_RAY_ADDRESS`) needs that cluster's token too
  (`SITEDESK_RAY_TOKEN_FILE`); there is no way to join without one.

A `kill -9` of the process that started the local Ray takes its GCS, raylet, monitors and
workers along (Ray starts them with a parent-death signal), but not the raylet's two agents
(`ray::DashboardAgent`, `ray::RuntimeEnvAgent`): they notice the raylet is gone, then hang
telling the dead GCS about it. So the local Ray has a pid file (`pid_file` of `start_ray`)
naming its session directory, and whatever still writes below it once its starter has ended
is stopped (automation.processes: by the guardian of `sitedesk up`, else by the next start).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError

from automation.processes import write_record
from cluster.errors import RayUnavailableError
from cluster.settings import ClusterSettings

LOOPBACK = "127.0.0.1"
TOKEN_FILE = "ray-token"  # noqa: S105 - a file name, not a secret


def ray_env_defaults() -> None:
    """Environment Ray reads at start: no usage reporting, workers at normal priority."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray starts its workers at niceness 15, as background work; our actors are the service
    # itself, and on a small box the gateway and the database would otherwise starve them.
    os.environ.setdefault("RAY_worker_niceness", "0")


def token_path(settings: ClusterSettings) -> Path:
    """The Ray token this process uses: SITEDESK_RAY_TOKEN_FILE, else the data dir's own."""
    return settings.ray_token_file or settings.data_dir / TOKEN_FILE


def ensure_token(path: Path) -> Path:
    """The token file at `path`, created (256 random bits, 0600, in a 0700 folder) if absent.
    An existing file that others may read is refused, not silently used."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise RayUnavailableError(
            f"the Ray token {path} is readable by others (mode {mode:o}): chmod 600 it"
        )
    return path


def use_token(path: Path) -> None:
    """Make this process (and the Ray processes it starts) speak Ray with the token in `path`."""
    if not path.is_file():
        raise RayUnavailableError(
            f"no Ray token at {path}: set SITEDESK_RAY_TOKEN_FILE to the cluster's token file"
        )
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path.resolve())
    os.environ.pop("RAY_AUTH_TOKEN", None)  # it would win over the file
    # Ray's C++ config and token loader read these once; a process that imported Ray before
    # they were set must have them re-read (Ray's own `_enable_token_auth` does the same).
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _loopback_only() -> None:
    """Keep a local Ray's node IP on 127.0.0.1.

    `ray.init(_node_ip_address="127.0.0.1")` alone does not: Ray replaces a loopback address
    by the machine's outward one (`resolve_ip_for_localhost`), and its servers then listen
    there. Ray keeps loopback only where clusters are switched off (its Windows/macOS switch,
    read at import, so it is set both for child processes and in this one)."""
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_ray(
    settings: ClusterSettings, *, dashboard: bool | None = None, pid_file: Path | None = None
) -> dict[str, Any]:
    """Join SITEDESK_RAY_ADDRESS if set, else start a private local Ray (its session named in
    `pid_file`, when given); return its info."""
    if ray.is_initialized():
        return {"address": ray.get_runtime_context().gcs_address, "joined": True}
    ray_env_defaults()
    try:
        if settings.ray_address:
            use_token(token_path(settings))
            if _is_loopback(settings.ray_address):
                _loopback_only()  # else Ray swaps 127.0.0.1 for this machine's outward address
            ctx = ray.init(
                address=settings.ray_address,
                namespace=settings.ray_namespace,
                logging_level="WARNING",
                log_to_driver=False,
            )
        else:
            use_token(ensure_token(token_path(settings)))
            _loopback_only()
            want_dashboard = settings.ray_dashboard if dashboard is None else dashboard
            ctx = ray.init(
                address="local",  # never a cluster some earlier `ray start` left behind
                namespace=settings.ray_namespace,
                _node_ip_address=LOOPBACK,
                include_dashboard=want_dashboard,
                dashboard_host=LOOPBACK,
                object_store_memory=settings.ray_object_store_mb * 1024 * 1024,
                logging_level="WARNING",
                log_to_driver=False,
            )
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:
        where = settings.ray_address or "a local Ray"
        raise RayUnavailableError(f"cannot start or join {where}: {exc}") from exc
    address = ctx.address_info.get("gcs_address")
    if not settings.ray_address:
        node_ip = ctx.address_info.get("node_ip_address")
        if node_ip != LOOPBACK or not str(address).startswith(f"{LOOPBACK}:"):
            ray.shutdown()
            raise RayUnavailableError(
                f"the local Ray registered on {node_ip} ({address}), not on loopback only"
            )
        if pid_file is not None:
            session = Path(ray._private.worker._global_node.get_session_dir_path())
            write_record(pid_file, "local Ray", 0, "ray", session=False, writes_under=session)
        # Batch jobs on this machine join this Ray, not another one that happens to run.
        path = address_file(settings)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.write_text(f"{address}\n")
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


def join_ray(settings: ClusterSettings, address: str | None = None) -> None:
    """Join a running Sitedesk Ray (a batch job): `address`, SITEDESK_RAY_ADDRESS, or the
    local one `sitedesk up` started in this data dir, with that Ray's token."""
    if ray.is_initialized():
        return
    target = address or local_ray_address(settings)
    if target is None:
        raise RayUnavailableError(
            f"no running Sitedesk found in {settings.data_dir} (start it with `sitedesk up`) "
            "and SITEDESK_RAY_ADDRESS is not set"
        )
    ray_env_defaults()
    use_token(token_path(settings))
    if _is_loopback(target):
        _loopback_only()  # else Ray swaps 127.0.0.1 for this machine's outward address
    try:
        ray.init(
            address=target,
            namespace=settings.ray_namespace,
            logging_level="ERROR",
            log_to_driver=False,
        )
    except (ConnectionError, RuntimeError, ValueError, RayError) as exc:
        raise RayUnavailableError(f"cannot join the Ray at {target}: {exc}") from exc


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

"""The embedded Ray is private: loopback listeners only, and no way in without its token."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import ray

from cluster.errors import RayUnavailableError
from cluster.ray_runtime import ensure_token
from tests.desk import Desk

pytestmark = pytest.mark.ray

RAY_PROCESS_NAMES = ("gcs_server", "raylet")


def listening_addresses(root: psutil.Process) -> dict[str, set[str]]:
    """Every listening TCP/UDP address of `root`'s descendants, by process name."""
    found: dict[str, set[str]] = {}
    for proc in root.children(recursive=True):
        try:
            name = proc.name()
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM:
                found.setdefault(name, set()).add(c.laddr.ip)
    return found


def off_loopback(addresses: dict[str, set[str]]) -> dict[str, set[str]]:
    def loopback(ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return addr.is_loopback

    bad = {name: {ip for ip in ips if not loopback(ip)} for name, ips in addresses.items()}
    return {name: ips for name, ips in bad.items() if ips}


def test_every_ray_listener_is_on_loopback(desk: Desk) -> None:
    addresses = listening_addresses(psutil.Process())
    assert any(n in addresses for n in RAY_PROCESS_NAMES), addresses  # Ray's servers were seen
    assert any(n.startswith("ray::") for n in addresses), addresses  # and its actor workers
    assert off_loopback(addresses) == {}
    node = next(n for n in ray.nodes() if n["Alive"])
    assert node["NodeManagerAddress"] == "127.0.0.1"


def join(address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = f"import ray; ray.init(address={address!r}, logging_level='ERROR'); print('JOINED')"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_joining_needs_the_token(desk: Desk, tmp_path: Path) -> None:
    address = ray.get_runtime_context().gcs_address
    plain = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}

    no_token = join(address, {**plain, "RAY_AUTH_MODE": "disabled"})
    assert "JOINED" not in no_token.stdout, no_token.stdout

    wrong = tmp_path / "wrong-token"
    wrong.write_text("0" * 64)
    bad_token = join(
        address, {**plain, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(wrong)}
    )
    assert "JOINED" not in bad_token.stdout, bad_token.stdout

    # A process of ours, started with none of the Ray settings this one has, joins with the
    # data dir's token (a bare `ray.init` with the token alone is sent to the outward address).
    data_dir = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).parent
    code = (
        "from cluster.ray_runtime import join_ray; from cluster.settings import ClusterSettings;"
        f"join_ray(ClusterSettings(), {address!r}); print('JOINED')"
    )
    clean = {k: v for k, v in plain.items() if not k.startswith(("RAY_", "SITEDESK_"))}
    ours = subprocess.run(
        [sys.executable, "-c", code], env={**clean, "SITEDESK_DATA_DIR": str(data_dir)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert "JOINED" in ours.stdout, ours.stderr[-2000:]


def test_token_file_is_private_and_refused_when_not(tmp_path: Path) -> None:
    path = ensure_token(tmp_path / "data" / "ray-token")
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
    assert len(path.read_text().strip()) == 64  # 256 bits, hex
    assert ensure_token(path).read_text() == path.read_text()  # kept, not regenerated
    path.chmod(0o644)
    with pytest.raises(RayUnavailableError, match="readable by others"):
        ensure_token(path)

"""Free loopback ports for the daemons this machine starts for itself: the demo and test hosts
(sshd, named, nginx), the private Redis, the tests' and benchmarks' own servers."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (also free for UDP in practice: named uses both)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])

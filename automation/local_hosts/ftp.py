"""A real pure-ftpd on loopback for a local host: virtual users from the host's PureDB.

GDCAS keeps the FTP users in ``ftp/passwd`` under the host root; its reload step
(``plan.reload_command``, ``("ftpdb", ...)``) builds ``ftp/pureftpd.pdb`` from it, which this
server reads at every log-in (``-l puredb:``), so a new database takes effect without a restart.

Password hashes: the Debian pure-ftpd 1.0.50 here is built with libsodium and verifies the
``$argon2id$v=19$m=...,t=...,p=1$...`` hashes argon2-cffi makes (``changes.base.hash_secret``)
as they are: GDCAS stores Argon2id, tried for real by tests/automation/test_ftp_service.py.

Run in the foreground with its options on the command line (not Debian's wrapper and conf dir):
bound to 127.0.0.1 on a free port, passive data ports in a small range of its own on loopback,
every user chrooted to their home (``-A``), no anonymous log-in (``-E``), no uid 0 (``-u 1``).
Its transfer log is ``<directory>/transfer.log``, its output ``<directory>/pure-ftpd.out``;
session messages go to syslog, which this machine may not run.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from automation.changes.ftp import FTP_PDB
from automation.local_hosts.daemon import Daemon, wait_port
from automation.loopback import free_port

PURE_FTPD = "/usr/sbin/pure-ftpd"
PASSIVE_PORTS = 8  # data connections open at once (one per client conversation)


def _free_range(count: int, tries: int = 200) -> tuple[int, int]:
    """``count`` consecutive TCP ports free on 127.0.0.1 now, below the ephemeral range (so
    the other daemons' ``free_port`` picks do not land in it)."""
    for _ in range(tries):
        first = 20000 + secrets.randbelow(12000 - count)
        try:
            for port in range(first, first + count):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first, first + count - 1
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


class LocalFtp(Daemon):
    """A real pure-ftpd on a loopback port; its users are the host root's PureDB."""

    name = "pure-ftpd"

    def __init__(self, root: Path, directory: Path) -> None:
        super().__init__()
        self.root = root.resolve()
        self.dir = directory.resolve()
        self.port = free_port()
        self.passive = _free_range(PASSIVE_PORTS)
        self.pure_pw = shutil.which("pure-pw") or "/usr/bin/pure-pw"

    def _argv(self) -> list[str]:
        low, high = self.passive
        return [
            PURE_FTPD,
            "-S", f"127.0.0.1,{self.port}",
            "-l", f"puredb:{self.root / FTP_PDB}",
            "-A",  # every user chrooted to their home
            "-E",  # no anonymous log-in
            "-u", "1",  # no uid 0
            "-H",  # no reverse DNS look-ups of clients
            "-p", f"{low}:{high}",
            "-P", "127.0.0.1",  # the passive address announced
            "-c", "50", "-C", "20",  # clients in all, from one address
            "-I", "5",  # minutes idle
            "-O", f"clf:{self.dir / 'transfer.log'}",
        ]  # fmt: skip

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        wait_port(self.port, 15, proc)

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._spawn(self.dir / "pure-ftpd.out")

    def layout(self) -> dict[str, Any]:
        return {"ftp_port": self.port, "pure_pw": (self.pure_pw,)}

"""A real, private MariaDB server for a local host: its own data directory, socket, pid file and
log under the service's directory, on a free loopback port.

The machine's own MariaDB (port 3306, /var/lib/mysql, /run/mysqld) is never used or touched:
the server is started with ``--defaults-file`` naming only this directory's configuration, so
no /etc/mysql file is read. The data directory is made once (``mariadb-install-db``, without
the test database) and kept across restarts. Root logs in over the socket only (``unix_socket``
authentication, as Debian sets it up): the client configuration ``layout()`` names is what the
host's scripts run as MariaDB's administrator. Memory is kept small (a few MB of buffers, no
performance schema): several hosts may run at once on a small machine.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from automation.local_hosts.daemon import Daemon
from automation.loopback import free_port

MARIADBD = "/usr/sbin/mariadbd"
READY_TIMEOUT = 30.0  # seconds for a fresh server to answer (it takes well under one here)
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; a longer path goes to a short directory


def _server_user() -> str | None:
    """Who the server runs as: Debian's ``mysql`` when we are root (never root itself), else
    whoever we are (None: no ``--user``)."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam("mysql").pw_name
    return "root"


class LocalMariaDB(Daemon):
    """A private mariadbd on 127.0.0.1:``port`` (see the module docstring)."""

    name = "mariadb"

    def __init__(self, root: Path, directory: Path) -> None:
        super().__init__()
        self.root = root.resolve()
        self.dir = directory.resolve()
        self.port = free_port()
        self.datadir = self.dir / "data"
        self.run_dir = self.dir / "run"  # the server's own: socket, pid file, error log
        self.server_conf = self.dir / "server.cnf"
        self.client_conf = self.dir / "client.cnf"
        self.user = _server_user()
        self._socket_dir: Path | None = None

    @property
    def socket(self) -> Path:
        if self._socket_dir is not None:
            return self._socket_dir / "mysqld.sock"
        return self.run_dir / "mysqld.sock"

    def client_argv(self) -> list[str]:
        """The ``mariadb`` client as MariaDB's administrator (root over the socket)."""
        return ["mariadb", f"--defaults-file={self.client_conf}"]

    def layout(self) -> dict[str, Any]:
        return {"database_port": self.port, "mariadb": tuple(self.client_argv())}

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        if len(str(self.run_dir / "mysqld.sock")) > SOCKET_PATH_MAX and self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="gdcas-db-"))
        owned = [self.run_dir] + ([self._socket_dir] if self._socket_dir else [])
        if self.user is not None:
            for path in owned:
                shutil.chown(path, self.user, self.user)
        self.server_conf.write_text(
            f"""[mariadbd]
datadir = {self.datadir}
socket = {self.socket}
pid-file = {self.run_dir}/mariadbd.pid
log-error = {self.run_dir}/error.log
bind-address = 127.0.0.1
port = {self.port}
skip-name-resolve
skip-log-bin
performance_schema = OFF
innodb_buffer_pool_size = 8M
innodb_log_file_size = 4M
innodb_log_buffer_size = 1M
innodb_use_native_aio = 0
key_buffer_size = 1M
aria_pagecache_buffer_size = 1M
query_cache_size = 0
max_connections = 40
table_open_cache = 200
thread_cache_size = 4
"""
        )
        self.client_conf.write_text(f"[client]\nsocket = {self.socket}\nuser = root\n")
        self.server_conf.chmod(0o644)

    def _install(self) -> None:
        """The data directory, once (its system tables; no test database, no anonymous user)."""
        if (self.datadir / "mysql").is_dir():
            return
        argv = ["mariadb-install-db", f"--defaults-file={self.server_conf}",
                "--auth-root-authentication-method=socket", "--skip-test-db",
                "--skip-name-resolve"]  # fmt: skip
        if self.user is not None:
            argv.append(f"--user={self.user}")
        with (self.dir / "install.log").open("ab") as log:
            done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: see {self.dir / 'install.log'}")

    def _argv(self) -> list[str]:
        argv = [MARIADBD, f"--defaults-file={self.server_conf}"]
        return argv + ([f"--user={self.user}"] if self.user is not None else [])

    def ping(self) -> bool:
        """Whether the server answers its administrator over the socket."""
        done = subprocess.run(
            ["mariadb-admin", f"--defaults-file={self.client_conf}", "--connect-timeout=1",
             "ping"],
            capture_output=True, check=False, timeout=10,
        )  # fmt: skip
        return done.returncode == 0

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited with {proc.returncode}: see {self.run_dir / 'error.log'}"
                )
            if self.ping():
                return
            time.sleep(0.05)
        raise TimeoutError(f"mariadbd did not answer on {self.socket} after {READY_TIMEOUT}s")

    def start(self) -> None:
        self._write_config()
        self._install()
        self._spawn(self.dir / "mariadbd.out")

    def stop(self) -> None:
        """A clean shutdown (SIGTERM: mariadbd flushes and exits); the whole tree is killed
        if it does not end in time (``Daemon.stop``)."""
        super().stop()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

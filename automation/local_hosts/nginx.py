"""A real nginx on loopback for a local host (HTTP and HTTPS), and the unprivileged user its
workers run as."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import subprocess
from pathlib import Path

from automation.local_hosts.daemon import Daemon, wait_port
from automation.loopback import free_port

# nginx workers read customers' files: never as root, as Debian's web user where there is one.
NGINX_WORKER_USERS = ("www-data", "nobody")


def nginx_worker_user() -> pwd.struct_passwd:
    for name in NGINX_WORKER_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError(f"none of the users {NGINX_WORKER_USERS} exists for nginx's workers")


def can_reach(user: pwd.struct_passwd, path: Path) -> bool:
    """Whether ``user`` may search ``path`` (every directory above it too), asked as them."""
    if os.geteuid() != 0:  # nginx can not switch users: its workers run as we do
        return os.access(path, os.X_OK)
    argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]
    return subprocess.run([*argv, "test", "-x", str(path)], check=False).returncode == 0


class LocalNginx(Daemon):
    """A real nginx with its own prefix, including the host's sites dir: HTTP on ``port`` and
    HTTPS on ``https_port`` (both loopback).

    On each port a default server answers the names no site has: 404 over HTTP; over HTTPS it
    refuses the handshake (``ssl_reject_handshake``), so an unknown or absent SNI name never
    gets a certificate of some customer's site. A site serves HTTPS when its TLS file
    (``nginx/tls/<domain>.conf``, see automation.changes.tls) is included in its server block.
    """

    name = "nginx"

    def __init__(self, root: Path, directory: Path) -> None:
        super().__init__()
        self.root = root.resolve()
        self.dir = directory.resolve()
        self.port = free_port()
        self.https_port = free_port()
        self.conf = self.dir / "nginx.conf"
        self.worker = nginx_worker_user()

    def nginx_argv(self) -> list[str]:
        return ["nginx", "-p", f"{self.dir}/", "-c", str(self.conf)]

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        sites = self.root / "nginx" / "sites"
        sites.mkdir(parents=True, exist_ok=True)
        temp = "\n".join(
            f"    {k}_temp_path {self.dir}/{k}_temp;"
            for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        group = grp.getgrgid(self.worker.pw_gid).gr_name
        self.conf.write_text(
            f"""user {self.worker.pw_name} {group};
daemon off;
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temp}
    server {{
        listen 127.0.0.1:{self.port} default_server;
        server_name _;
        return 404;
    }}
    server {{
        listen 127.0.0.1:{self.https_port} ssl default_server;
        server_name _;
        ssl_reject_handshake on;
    }}
    include {sites}/*.conf;
}}
"""
        )

    def _argv(self) -> list[str]:
        return self.nginx_argv()

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        wait_port(self.port, 15, proc)
        wait_port(self.https_port, 15, proc)

    def start(self) -> None:
        if not can_reach(self.worker, self.root):
            raise RuntimeError(
                f"nginx's workers run as {self.worker.pw_name} and cannot reach {self.root}: "
                "put the host in a directory every user may search (o+x on each one above it)"
            )
        self._write_config()
        self._spawn(self.dir / "nginx.out")

"""Real managed hosts on this machine: an OpenSSH sshd, a BIND named and an nginx on loopback.

Used by the tests and the demo. Each host has its own directory with its own keys and configs and
a ``root`` holding the files the automation manages, so nothing under /etc is touched.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import os
import pwd
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from automation.host import HostLayout, HostSpec
from automation.loopback import free_port

SSHD = "/usr/sbin/sshd"
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


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _descendants(pid: int) -> list[int]:
    """pid and all its descendants, from /proc (sshd's per-connection children leave its group)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class _Daemon:
    """A foreground daemon process we own: start, stop, freeze/thaw (SIGSTOP/SIGCONT)."""

    name = "daemon"

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        raise NotImplementedError

    def _spawn(self, log: Path) -> None:
        self._log = log
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                self._argv(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._ready(self._proc)
        except Exception:
            self.stop()
            raise

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _signal_tree(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        for pid in _descendants(self._proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def freeze(self) -> None:
        """SIGSTOP the daemon and its children: the host hangs, connections stay open."""
        self._signal_tree(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_tree(signal.SIGCONT)

    def stop(self) -> None:
        """Kill the daemon and every child (open sessions drop)."""
        proc = self._proc
        if proc is None:
            return
        pids = _descendants(proc.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=5)
        for pid in pids[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError


class LocalNamed(_Daemon):
    """A real BIND ``named -g`` on a loopback port serving the zones under a host root."""

    name = "named"

    def __init__(self, root: Path, directory: Path) -> None:
        super().__init__()
        self.root = root.resolve()
        self.dir = directory.resolve()
        self.port = free_port()
        self.rndc_port = free_port()
        self.conf = self.dir / "named.conf"
        self.rndc_conf = self.dir / "rndc.conf"

    @property
    def zones_conf(self) -> Path:
        return self.root / "named" / "zones.conf"

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zones_conf.parent.mkdir(parents=True, exist_ok=True)
        if not self.zones_conf.exists():
            self.zones_conf.write_text("")
        if not self.rndc_conf.exists():
            secret = base64.b64encode(secrets.token_bytes(32)).decode()
            key = f'key "rndc-key" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'
            self.rndc_conf.write_text(
                key + 'options { default-key "rndc-key"; default-server 127.0.0.1; '
                f"default-port {self.rndc_port}; }};\n"
            )
            (self.dir / "rndc.key").write_text(key)
        self.conf.write_text(
            f"""options {{
    directory "{self.dir}";
    pid-file "{self.dir}/named.pid";
    session-keyfile "{self.dir}/session.key";
    managed-keys-directory "{self.dir}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-transfer {{ 127.0.0.1; }};
    notify no;
}};
include "{self.dir}/rndc.key";
controls {{ inet 127.0.0.1 port {self.rndc_port} allow {{ 127.0.0.1; }} keys {{ "rndc-key"; }}; }};
include "{self.zones_conf}";
"""
        )

    def add_zone(self, zone: str, *, ns_address: str = "127.0.0.1") -> None:
        """Create an empty zone (SOA, NS) under the root and declare it; reconfig if running."""
        zone_file = self.root / "zones" / f"{zone}.zone"
        zone_file.parent.mkdir(parents=True, exist_ok=True)
        if not zone_file.exists():
            zone_file.write_text(
                f"$ORIGIN {zone}.\n$TTL 300\n"
                f"@ 3600 IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 1209600 300\n"
                f"@ 3600 IN NS ns1.{zone}.\nns1 3600 IN A {ns_address}\n"
            )
        self.zones_conf.parent.mkdir(parents=True, exist_ok=True)
        line = f'zone "{zone}" {{ type primary; file "{zone_file}"; }};\n'
        existing = self.zones_conf.read_text() if self.zones_conf.exists() else ""
        if line not in existing:
            self.zones_conf.write_text(existing + line)
            if self.running:
                self._rndc("reconfig")

    def _rndc(self, *command: str, attempts: int = 10) -> None:
        """Run an rndc command; named refuses one while a reload is still under way, so a
        refusal is tried again a few times before it counts."""
        for attempt in range(attempts):
            result = subprocess.run(
                [*self.rndc_argv(), *command], capture_output=True, text=True, check=False
            )
            if result.returncode == 0:
                return
            if attempt < attempts - 1:
                time.sleep(0.2)
        raise subprocess.CalledProcessError(
            result.returncode, result.args, result.stdout, result.stderr
        )

    def rndc_argv(self) -> list[str]:
        return ["rndc", "-c", str(self.rndc_conf)]

    def _argv(self) -> list[str]:
        return ["named", "-g", "-c", str(self.conf), "-n", "1"]

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        _wait_port(self.port, 15, proc)
        _wait_port(self.rndc_port, 15, proc)

    def start(self) -> None:
        self._write_config()
        self._spawn(self.dir / "named.log")


class LocalNginx(_Daemon):
    """A real nginx on a loopback port with its own prefix, including the host's sites dir."""

    name = "nginx"

    def __init__(self, root: Path, directory: Path) -> None:
        super().__init__()
        self.root = root.resolve()
        self.dir = directory.resolve()
        self.port = free_port()
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
    include {sites}/*.conf;
}}
"""
        )

    def _argv(self) -> list[str]:
        return self.nginx_argv()

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        _wait_port(self.port, 15, proc)

    def start(self) -> None:
        if not can_reach(self.worker, self.root):
            raise RuntimeError(
                f"nginx's workers run as {self.worker.pw_name} and cannot reach {self.root}: "
                "put the host in a directory every user may search (o+x on each one above it)"
            )
        self._write_config()
        self._spawn(self.dir / "nginx.out")


class LocalSshd(_Daemon):
    """A real OpenSSH sshd on a loopback port, root login with one generated client key."""

    name = "sshd"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.dir = directory.resolve()
        self.port = free_port()
        self.conf = self.dir / "sshd_config"
        self.host_key_file = self.dir / "ssh_host_ed25519_key"
        self.client_key_file = self.dir / "client_ed25519"

    def _keys(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in (self.host_key_file, self.client_key_file):
            if not path.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                    check=True,
                )
        (self.dir / "authorized_keys").write_text(Path(f"{self.client_key_file}.pub").read_text())
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory

    @property
    def host_key_line(self) -> str:
        """The host's public key as an OpenSSH line (what a caller pins)."""
        return Path(f"{self.host_key_file}.pub").read_text().strip()

    def _write_config(self) -> None:
        self._keys()
        self.conf.write_text(
            f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key_file}
AuthorizedKeysFile {self.dir}/authorized_keys
PidFile {self.dir}/sshd.pid
UsePAM no
StrictModes no
MaxSessions 100
MaxStartups 200:30:400
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# root's own ~/.bashrc on this box is slow (pyenv); a managed host's shell starts clean
SetEnv HOME={self.dir}
LogLevel ERROR
Subsystem sftp internal-sftp
"""
        )

    def _argv(self) -> list[str]:
        return [SSHD, "-D", "-e", "-f", str(self.conf)]

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        _wait_port(self.port, 15, proc)

    def start(self) -> None:
        self._write_config()
        self._spawn(self.dir / "sshd.log")


class LocalHost:
    """One managed host on this machine: sshd plus (optionally) named and nginx, one root dir.

    ``start()`` starts all three, ``stop()`` kills them; ``stop_ssh()``/``start_ssh()`` take only
    the SSH door down and up again (same port and host key), ``freeze()``/``thaw()`` hang it.
    """

    def __init__(
        self,
        base: Path | str,
        host_id: str,
        *,
        with_named: bool = True,
        with_nginx: bool = True,
        zones: tuple[str, ...] = (),
    ) -> None:
        self.host_id = host_id
        self.base = Path(base).resolve() / host_id  # configs name absolute paths
        self.root = self.base / "root"
        self.sshd = LocalSshd(self.base / "sshd")
        self.named = LocalNamed(self.root, self.base / "named") if with_named else None
        self.nginx = LocalNginx(self.root, self.base / "nginx") if with_nginx else None
        self._zones = zones

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if self.named is not None:
                self.named._write_config()
                for zone in self._zones:
                    self.named.add_zone(zone)
                self.named.start()
            if self.nginx is not None:
                self.nginx.start()
            self.sshd.start()
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for daemon in (self.sshd, self.nginx, self.named):
            if daemon is not None:
                daemon.stop()

    def stop_ssh(self) -> None:
        self.sshd.stop()

    def start_ssh(self) -> None:
        self.sshd.start()

    def freeze(self) -> None:
        self.sshd.freeze()

    def thaw(self) -> None:
        self.sshd.thaw()

    def add_zone(self, zone: str) -> None:
        if self.named is None:
            raise RuntimeError("this host has no named")
        self.named.add_zone(zone)

    def layout(self) -> HostLayout:
        named, nginx = self.named, self.nginx
        return HostLayout(
            root=str(self.root),
            dns_port=named.port if named is not None else 53,
            rndc=tuple(named.rndc_argv()) if named is not None else ("rndc",),
            nginx=tuple(nginx.nginx_argv()) if nginx is not None else ("nginx",),
            http_port=nginx.port if nginx is not None else 80,
        )

    def spec(self) -> HostSpec:
        """What a caller registers: address, port, user, pinned host key, client key, layout."""
        return HostSpec(
            host_id=self.host_id,
            address="127.0.0.1",
            port=self.sshd.port,
            user="root",
            host_key=self.sshd.host_key_line,
            private_key_path=str(self.sshd.client_key_file),
            layout=self.layout(),
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

"""The platform the chaos run strikes, each piece a real process of its own that a fault can
kill: a private PostgreSQL (initdb in a temp dir), a private Redis with a password, a private Ray
head (`ray start --head`, token auth, its own temp dir, loopback), the managed hosts (sshd, named,
nginx, Dovecot and Postfix on loopback), and the gateway as `sitedesk up --no-demo` joining them
all, restarted after a kill as systemd would.

Used by bench/chaos.py and tests/chaos/test_chaos_short.py; nothing here is the desk's code."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from automation.local_hosts.host import LocalHost
from cluster.demo_hosts import demo_host_of
from store.demo import CUSTOMERS, DemoHost, demo_domains_by_host

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)


def free_port(low: int, high: int, taken: set[int]) -> int:
    """A port in [low, high] that nobody listens on now (and that this run has not given out)."""
    for port in range(low, high + 1):
        if port in taken:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError(f"no free port in {low}-{high}")


@dataclass
class PortRange:
    """The ports this run may use: HTTP, SMTP, and the private servers' (PostgreSQL, Redis, Ray)."""

    http: tuple[int, int] = (8111, 8119)
    smtp: tuple[int, int] = (2611, 2619)
    private: tuple[int, int] = (15500, 15599)
    taken: set[int] = field(default_factory=set)

    def take(self, which: str) -> int:
        low, high = getattr(self, which)
        return free_port(low, high, self.taken)


def wait_port(
    port: int, timeout: float, what: str, proc: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:.0f} s")


def _pids_with(marker: str) -> list[int]:
    """Processes whose command line names `marker` (this run's own temp dir): ours alone."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmd:
            out.append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (by parent pid), parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo += children.get(p, [])
    return out


def command_line(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def kill_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb in a temp dir, loopback, trust auth), restarted
    with `pg_ctl restart -m immediate`: a crash and its recovery."""

    def __init__(self, base: Path, port: int) -> None:
        if PG_BIN is None:
            raise RuntimeError("PostgreSQL's server programs are not installed (postgresql)")
        self.dir = base / "pg"
        self.data = self.dir / "data"
        self.port = port
        self.as_user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / argv[0]), *argv[1:]]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/sitedesk"

    def start(self) -> PrivatePostgres:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            user = pwd.getpwnam(self.as_user)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        conf = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.dir}'\nmax_connections = 200\n"
            "shared_buffers = 64MB\nlogging_collector = off\n"
        )
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(conf)
        self._ctl("start")
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "sitedesk")
        return self

    def _ctl(self, *action: str) -> None:
        log = self.dir / "server.log"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-w", "-t", "60", *action)

    def restart_immediate(self) -> None:
        self._ctl("restart", "-m", "immediate")

    def stop_immediate(self) -> None:
        """The first half of `pg_ctl restart -m immediate`: every backend killed, no checkpoint."""
        self._ctl("stop", "-m", "immediate")

    def start_again(self) -> None:
        """The second half: started again, recovering from its WAL."""
        self._ctl("start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._ctl("stop", "-m", "immediate")


class PrivateRedis:
    """A redis-server of its own on loopback with a password (in its config file, never on a
    command line); restarted by kill -9 and a new start: what it held in memory is gone."""

    def __init__(self, base: Path, port: int) -> None:
        self.dir = base / "redis"
        self.port = port
        self.password = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nrequirepass {self.password}\n"
            f'dir {self.dir}\nsave ""\nappendonly no\nprotected-mode yes\n'
        )
        conf.chmod(0o600)
        with (self.dir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["redis-server", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_port(self.port, 20, "redis-server", self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        self.kill()


class PrivateRay:
    """A Ray head of its own (`ray start --head --block`): token auth, loopback, its own temp
    dir, every port in this run's range; never `ray stop` (that stops every Ray of the machine):
    its processes are found by the temp dir their command lines name."""

    def __init__(self, base: Path, ports: PortRange) -> None:
        self.dir = base / "ray"
        self.token = base / "ray-token"
        self.ports = {
            name: ports.take("private")
            for name in (
                "port",
                "node-manager-port",
                "object-manager-port",
                "metrics-export-port",
                "dashboard-agent-listen-port",
                "dashboard-agent-grpc-port",
                "runtime-env-agent-port",
                "ray-client-server-port",
            )
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.ports['port']}"

    def env(self) -> dict[str, str]:
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token),
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep 127.0.0.1 (cluster/ray_runtime.py)
            "RAY_worker_niceness": "0",
            "TMPDIR": str(self.dir),
        }

    def start(self) -> PrivateRay:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.token.write_text(secrets.token_hex(32) + "\n")
        self.token.chmod(0o600)
        argv = [
            str(VENV_BIN / "ray"),
            "start",
            "--head",
            "--block",
            "--disable-usage-stats",
            "--node-ip-address=127.0.0.1",
            f"--temp-dir={self.dir}",
            "--include-dashboard=false",
            "--num-cpus=2",
            f"--object-store-memory={200 * 1024 * 1024}",
            f"--min-worker-port={self.ports['ray-client-server-port'] + 1}",
            "--max-worker-port=15599",
            *(f"--{name}={port}" for name, port in self.ports.items()),
        ]
        with (self.dir.parent / "ray-start.log").open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env()},
                start_new_session=True,
            )
        wait_port(self.ports["port"], 90, "the Ray head", self.proc)
        return self

    def processes(self) -> list[int]:
        """Every process of this head: `ray start`, the GCS, the raylet, agents, workers."""
        return descendants(self.proc.pid) if self.proc is not None else []

    def stop(self) -> None:
        pids = self.processes()
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            self.proc = None
        kill_pids([p for p in pids if Path(f"/proc/{p}").exists()])
        kill_pids(_pids_with(str(self.dir)))  # anything left that names this head's temp dir


def _kill_daemon(daemon: Any) -> None:
    """kill -9 of one daemon of a host (its whole tree), as a crash would; then its own stop()
    forgets it (nothing is left to stop)."""
    if daemon.pid is not None:
        kill_pids(descendants(daemon.pid))
    daemon.stop()


class Hosts:
    """The managed hosts: the demo's two (sshd, named, nginx, Dovecot and Postfix), each
    serving the zones of the accounts placed on it."""

    def __init__(self, base: Path, zones: list[list[str]]) -> None:
        self.base = base / "hosts"
        self.hosts = [
            LocalHost(self.base, f"demo-host-{i + 1}", zones=tuple(z), services=("mail",))
            for i, z in enumerate(zones)
        ]

    def start(self) -> Hosts:
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o711)  # nginx's unprivileged workers pass through
        for host in self.hosts:
            host.start()
        return self

    def demo_hosts(self) -> list[DemoHost]:
        return [demo_host_of(host) for host in self.hosts]

    def by_name(self, name: str) -> LocalHost:
        return next(h for h in self.hosts if h.host_id == name)

    # -- faults ------------------------------------------------------------------------------
    def kill_restart(self, host: LocalHost, which: str) -> None:
        daemon = {"sshd": host.sshd, "named": host.named, "nginx": host.nginx}[which]
        _kill_daemon(daemon)
        return None

    def restart(self, host: LocalHost, which: str) -> None:
        daemon = {"sshd": host.sshd, "named": host.named, "nginx": host.nginx}[which]
        assert daemon is not None
        daemon.start()

    def freeze(self, host: LocalHost) -> None:
        for daemon in self._daemons(host):
            daemon.freeze()

    def thaw(self, host: LocalHost) -> None:
        for daemon in self._daemons(host):
            daemon.thaw()

    @staticmethod
    def _daemons(host: LocalHost) -> list[Any]:
        out: list[Any] = [host.sshd, host.named, host.nginx]
        mail = host.services.get("mail")
        if mail is not None:
            out += [getattr(mail, n) for n in ("dovecot", "postfix") if hasattr(mail, n)]
        return [d for d in out if d is not None]

    def stop(self) -> None:
        for host in self.hosts:
            with contextlib.suppress(Exception):
                self.thaw(host)
            host.stop()


class Gateway:
    """`sitedesk up --no-demo` joining the private PostgreSQL, Redis and Ray: killed with
    kill -9 and started again as systemd would (Restart=always)."""

    def __init__(self, base: Path, env: dict[str, str], http_port: int, smtp_port: int) -> None:
        self.data_dir = base / "data"
        self.http_port, self.smtp_port = http_port, smtp_port
        self.env = {
            **os.environ,
            **env,
            "SITEDESK_DATA_DIR": str(self.data_dir),
            "SITEDESK_HTTP_PORT": str(http_port),
            "SITEDESK_SMTP_PORT": str(smtp_port),
            "PYTHONUNBUFFERED": "1",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log = base / "gateway.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 180) -> float:
        """Start it; returns the seconds until it answered /healthz."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with self.log.open("ab") as log:
            log.write(f"\n--- start {self.starts + 1} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(VENV_BIN / "sitedesk"), "up", "--no-demo"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=str(REPO),
                start_new_session=True,
            )
        self.starts += 1
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"sitedesk up exited with {self.proc.returncode}:\n{tail}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"sitedesk up did not answer within {timeout:.0f} s")

    def kill(self) -> None:
        """kill -9 of the gateway process alone (not its group: children must cope)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then kill -9 past `grace` (uvicorn waits for open streams to end)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def demo_zones(hosts: int) -> list[list[str]]:
    return demo_domains_by_host(hosts)


DEMO_DOMAINS = tuple(c[6] for c in CUSTOMERS)


@contextlib.contextmanager
def timed(what: str, out: list[tuple[str, float]]) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    out.append((what, time.monotonic() - t0))


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str))


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

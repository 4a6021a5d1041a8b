"""What the back-pressure tests share: another writer holding the SCDB's write lock (so that
work piles up behind a commit that can not finish), and a Redis server of a test's own."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import text

from automation.loopback import free_port
from store.db import Database
from store.files import free_bytes


@contextmanager
def holding_the_write_lock(db: Database) -> Iterator[None]:
    """Another writer's long transaction: SQLite's one write lock (BEGIN IMMEDIATE), or on
    PostgreSQL the tickets table locked against writers. Every ticket commit waits for it."""
    with db.write() as s:
        if db.is_sqlite:
            s.execute(text("SELECT 1"))  # the write engine begins IMMEDIATE: the lock is ours
        else:
            s.execute(text("LOCK TABLE tickets IN EXCLUSIVE MODE"))
        yield
        s.rollback()


class RedisServer:
    """A private redis-server on a loopback port, started and stopped by the test (an outage
    of the desk's Redis without touching the one the other tests use)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        assert exe, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


# The desk's API rate limits out of the way (a gateway of a test's own meets its own bounds).
NO_RATE_LIMITS: dict[str, Any] = {
    "requests_per_minute": 0,
    "tickets_per_minute": 0,
    "changes_per_minute": 0,
    "dry_runs_per_minute": 0,
}


@contextmanager
def gateway_of_its_own(desk: Any, **settings: Any) -> Iterator[str]:
    """Another gateway in front of the session's desk (its actors, SCDB and Redis), with
    these settings; yields its base URL."""
    from gateway.platform import Platform
    from gateway.settings import GatewaySettings
    from tests.conftest import REDIS_URL
    from tests.desk import LiveServer

    platform = Platform(
        db=desk.db,
        redis_url=REDIS_URL,
        directory=desk.deployment.directory,
        config=desk.deployment.config,
        settings=GatewaySettings(**{**NO_RATE_LIMITS, **settings}),
    )
    server = LiveServer(platform).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


@contextmanager
def small_disk(size_mb: int = 8) -> Iterator[Path]:
    """A file system of its own, `size_mb` MiB (tmpfs, mounted here: the tests run as root),
    to fill without touching the machine's disk."""
    # The suite runs as root (Unix users, private Postfix); a missing root fails, not skips.
    assert os.geteuid() == 0, "mounting a small file system needs root: run the tests as root"
    base = Path(tempfile.mkdtemp(prefix="sitedesk-disk-", dir=os.environ.get("SITEDESK_TEST_TMP")))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0711", "tmpfs",
                    str(base)], check=True)  # fmt: skip
    try:
        yield base
    finally:
        subprocess.run(["umount", "-l", str(base)], check=False)
        base.rmdir()


def fill(disk: Path, leave: int) -> Path:
    """Fill the disk but for about `leave` bytes (to the page) with one file; returns it."""
    filler = disk / "filler"
    filler.unlink(missing_ok=True)
    size = max(0, free_bytes(disk) - leave)
    with filler.open("wb") as f:
        chunk = b"\0" * (1024 * 1024)
        while size > 0:
            size -= f.write(chunk[: min(size, len(chunk))])
    return filler

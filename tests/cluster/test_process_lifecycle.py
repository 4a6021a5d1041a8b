"""`sitedesk up` starts and stops like a service: a `kill -9` of it leaves nothing of what it
started running, the next start stops what an earlier killed one left (and nothing else), and
it speaks systemd's notify protocol (READY=1 once /readyz is ready, then the watchdog).

One real start (demo hosts, private Redis, private Ray) serves every case."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from automation.local_hosts.sshd import LocalSshd
from automation.loopback import free_port
from automation.processes import Ident, alive, start_time, write_record
from cluster.processes import run_dir
from cluster.redis_server import LocalRedis

SITEDESK = [sys.executable, "-m", "gateway.cli"]
START_TIMEOUT = 150.0  # seconds for `up --demo` on a loaded 2-core box (~30 s alone)
GONE_TIMEOUT = 30.0  # seconds for what a killed `up` started to end


def gone(procs: list[psutil.Process]) -> list[str]:
    """The processes of `procs` that still run (a zombie no one reaped has ended)."""
    left = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid} {p.name()}")
        except psutil.Error:
            continue
    return left


def ended_ident() -> Ident:
    """The (pid, start time) of a process that has ended: the owner of an earlier start."""
    proc = subprocess.Popen(["sleep", "30"])
    start = start_time(proc.pid)
    assert start is not None
    proc.kill()
    proc.wait()
    return (proc.pid, start)


def receive(
    sock: socket.socket, wanted: str, timeout: float, proc: subprocess.Popen[bytes], log: Path
) -> str:
    """Read notify messages until one has the line `wanted`; fail (with the end of `log`)
    when `proc` ends first."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        seen.append(message)
        if wanted in message.splitlines():
            return message
    raise AssertionError(
        f"no {wanted} within {timeout}s (exit {proc.poll()}): {seen[-5:]}\n"
        + log.read_text(errors="replace")[-3000:]
    )


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder every user may pass through (nginx's workers reach the demo hosts in it)."""
    parent = os.environ.get("SITEDESK_TEST_TMP")
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="sdlife-", dir=parent))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def owned_by(path: Path, owner: Ident, **fields: object) -> None:
    """Make the pid file `path` say it was written by `owner` (and whatever else `fields` say)."""
    record = json.loads(path.read_text())
    record.update(owner_pid=owner[0], owner_start=owner[1], **fields)
    path.write_text(json.dumps(record))


def ident(pid: int | None) -> Ident:
    start = start_time(pid or 0)
    assert pid and start is not None
    return (pid, start)


@pytest.mark.ray
def test_up_cleans_up_after_a_killed_start_and_leaves_nothing_after_kill_9(base: Path) -> None:
    data = base / "data"
    pids = run_dir(data)
    # What an earlier start, killed together with its guardian, left running: its private
    # Redis, a demo host's sshd and one of its Ray's agents (still writing to the session's
    # logs); with a reader of those logs (someone's `less`) that is no part of it, and a pid
    # file whose pid another program has taken since.
    earlier = ended_ident()
    redis = LocalRedis(base / "old-redis", pid_file=pids / "redis-server.json").start()
    owned_by(redis.pid_file, earlier)
    sshd = LocalSshd(base / "old-sshd")
    sshd.pid_file = pids / "demo-host-1.sshd.json"
    sshd.start()
    owned_by(sshd.pid_file, earlier)
    logs = base / "old-ray-session" / "logs"
    logs.mkdir(parents=True)
    with (logs / "dashboard_agent.log").open("ab") as out:
        agent = subprocess.Popen(["sleep", "300"], stdout=out, start_new_session=True)
    with (logs / "dashboard_agent.log").open("rb") as agent_log:
        reader = subprocess.Popen(["sleep", "300"], stdin=agent_log, start_new_session=True)
    write_record(pids / "ray.json", "local Ray", 0, "ray", session=False,
                 writes_under=logs.parent, owner=earlier)  # fmt: skip
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    record = write_record(pids / "demo-host-2.named.json", "demo-host-2 named", stranger.pid,
                          "sleep", owner=earlier)  # fmt: skip
    owned_by(pids / "demo-host-2.named.json", earlier, start=record.start - 1)
    left = {"redis": ident(redis.process.pid if redis.process else None),
            "sshd": ident(sshd.pid), "agent": ident(agent.pid)}  # fmt: skip
    spared = [ident(reader.pid), ident(stranger.pid)]

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(base / "notify"))
    notify.settimeout(0.5)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SITEDESK_", "RAY_AUTH"))}
    env.update(SITEDESK_DATA_DIR=str(data), SITEDESK_HTTP_PORT=str(port),
               SITEDESK_SMTP_PORT=str(free_port()), SITEDESK_RAY_DASHBOARD="false",
               RAY_USAGE_STATS_ENABLED="0", NOTIFY_SOCKET=str(base / "notify"),
               WATCHDOG_USEC="2000000")  # fmt: skip
    log = base / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*SITEDESK, "up", "--demo"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=base)  # fmt: skip
    tree: list[psutil.Process] = []
    try:
        receive(notify, "READY=1", START_TIMEOUT, proc, log)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text  # READY=1 came only once it was ready

        # The earlier start's leftovers were stopped; the stranger and the reader were not.
        assert [what for what, i in left.items() if alive(i)] == []
        assert all(alive(i) for i in spared)
        said = log.read_text()
        assert "stopped what an earlier start left running" in said, said
        assert all(f"{name} (" in said for name in ("redis-server", "sshd", "local Ray")), said

        receive(notify, "WATCHDOG=1", 10, proc, log)  # every second while /healthz answers

        root = psutil.Process(proc.pid)
        tree = [root, *root.children(recursive=True)]
        names = {p.name() for p in tree}
        assert {"redis-server", "sshd", "named", "nginx", "raylet", "gcs_server"} <= names, names
        assert any("automation.processes" in " ".join(p.cmdline()) for p in tree)  # guardian
        assert len(list(pids.glob("*.json"))) >= 10  # redis, Ray and each host's servers

        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + GONE_TIMEOUT
        while gone(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gone(tree) == [], log.read_text()[-2000:]
        assert list(pids.glob("*.json")) == []  # the guardian took its pid files away
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        for p in tree:
            with_kill(p)
        for child in (agent, reader, stranger):
            child.kill()
            child.wait()
        sshd.stop()
        redis.stop()
        notify.close()


def with_kill(p: psutil.Process) -> None:
    try:
        if p.is_running():
            p.kill()
    except psutil.Error:
        pass


STARTER = """
import sys, threading, time
from pathlib import Path
from automation.processes import spawn
started = []
def ask():
    started.append(spawn(["sleep", "300"], record=None, name="sleep"))
    cmdline = Path(f"/proc/{started[0].pid}/cmdline")
    while not cmdline.read_bytes().startswith(b"sleep"):  # its parent-death signal is set
        time.sleep(0.01)
worker = threading.Thread(target=ask)
worker.start()
worker.join()  # the thread that asked for it has ended
# Were the signal that thread's, the kernel would send it as the thread exits: nothing to wait
# for but the kill's delivery, so a moment passes before the test looks whether it lives.
time.sleep(0.2)
print(started[0].pid, flush=True)
sys.stdin.read()
"""


def test_a_program_started_from_a_thread_that_ends_lives_until_its_starter_dies() -> None:
    """The parent-death signal is the forking thread's: spawn() forks from a thread that lives
    as long as the process, so a program outlives the thread that asked for it, not the
    process."""
    starter = subprocess.Popen([sys.executable, "-c", STARTER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert starter.stdout is not None
        child = psutil.Process(int(starter.stdout.readline()))
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE
        assert child.ppid() == starter.pid
    finally:
        starter.kill()
        starter.wait()
    deadline = time.monotonic() + 10
    while gone([child]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone([child]) == []

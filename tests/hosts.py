"""Real managed hosts for the tests (sshd + named, nginx if asked, on loopback), and what a test
asks them: one way to start a set of hosts for a fixture, one `dig` at a host's named, and the
host's automation lock (free? held by a test, so that a batch waits on the host?)."""

from __future__ import annotations

import fcntl
import os
import pwd
import secrets
import shlex
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from actors.changes.dto import NewHost
from automation.host import HostSpec
from automation.local_hosts.host import LocalHost
from automation.zonefile import Record, parse_zone


@contextmanager
def running_hosts(hosts: Iterable[LocalHost]) -> Iterator[list[LocalHost]]:
    """Start each host in turn; all that started are stopped on the way out (also when a later
    one fails to start)."""
    with ExitStack() as stack:
        yield [stack.enter_context(host) for host in hosts]


# The Unix users `unix_user` made in this session; `remove_unix_users` takes them away at its end.
_MADE_USERS: list[str] = []


def new_host(host: LocalHost, name: str | None = None) -> NewHost:
    """The registration of a running local host (by default under a fresh name of its own, so
    that tests sharing one SCDB never meet each other's hosts)."""
    spec = host.spec()
    return NewHost(
        name=name or f"{spec.host_id}-{secrets.token_hex(3)}",
        address=spec.address,
        ssh_port=spec.port,
        host_key=spec.host_key,
        credentials_ref=spec.private_key_path,
        root_dir=spec.layout.root,
        layout=spec.layout.model_dump(mode="json", exclude={"root"}),
    )


def unix_user(name: str, *homes_on: LocalHost) -> pwd.struct_passwd:
    """The machine's Unix user `name`, an account's user on the local hosts (they share this
    machine's users and crontabs: FTP gives an account's FTP users its uid, cron installs its
    crontab). Made if missing (a system user without a home of its own or a login shell; the
    tests run as root) and remembered, so that the session's end removes it and its crontab.
    Its home ``home/<name>`` on each host of `homes_on` is made and given to it: pure-ftpd
    chroots its FTP users there, and GDCAS writes below it only as its owner."""
    if name not in {u.pw_name for u in pwd.getpwall()}:
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if made.returncode == 0:
            _MADE_USERS.append(name)
        elif made.returncode != 9:  # 9: made meanwhile by another session: use it
            raise RuntimeError(f"useradd {name}: {made.stderr.strip()}")
    user = pwd.getpwnam(name)
    for host in homes_on:
        home = host.root / "home" / name
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, user.pw_uid, user.pw_gid)
    return user


def remove_unix_users() -> None:
    """Remove the Unix users `unix_user` made, each with its crontab (the session's end).
    With SITEDESK_TEST_KEEP_UNIX_USERS=1 they are kept: several test sessions sharing a
    machine would otherwise remove the users another session still uses."""
    if os.environ.get("SITEDESK_TEST_KEEP_UNIX_USERS") == "1":
        _MADE_USERS.clear()
        return
    while _MADE_USERS:
        name = _MADE_USERS.pop()
        subprocess.run(["crontab", "-u", name, "-r"], capture_output=True, check=False)
        subprocess.run(["userdel", name], capture_output=True, check=False)


def dig(host: LocalHost, name: str, rtype: str = "TXT") -> list[str]:
    """What the host's named answers for `name` (sorted, one line an answer)."""
    assert host.named is not None
    out = subprocess.run(
        ["dig", "+short", "+norec", "-p", str(host.named.port), "@127.0.0.1", name, rtype],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    return sorted(line for line in out.splitlines() if line)


def _lock_file(host: LocalHost) -> Path:
    return host.root / ".gdcas" / "lock"


def lock_free(host: LocalHost) -> bool:
    """No script holds the host's automation lock (none runs there now)."""
    with _lock_file(host).open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(f, fcntl.LOCK_UN)
        return True


@contextmanager
def holding_the_lock(host: LocalHost) -> Iterator[None]:
    """Hold the host's automation lock as another administrator's tool would: every script
    sent meanwhile waits for it on the host (a batch running, nothing of it applied yet)."""
    with _lock_file(host).open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def waiting_for_the_lock(host: LocalHost) -> bool:
    """Whether a script waits for the host's automation lock (a blocked entry in /proc/locks)."""
    inode = _lock_file(host).stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if "->" in parts and parts[parts.index("->") + 5].endswith(f":{inode}"):
            return True
    return False


def edit_zone_by_hand(host: LocalHost, zone: str, name: str, address: str) -> None:
    """Add an A record to a zone on the host behind GDCAS's back, as an administrator editing
    the file would: the file written, named told to reload it, and back once named answers."""
    zone_file = host.root / "zones" / f"{zone}.zone"
    edited = parse_zone(zone_file.read_text(), zone)
    edited.records.append(Record(f"{name}.{zone}.", 300, "A", address))
    edited.bump_serial(0)
    zone_file.write_text(edited.render())
    assert host.named is not None
    subprocess.run([*host.named.rndc_argv(), "reload", zone], check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while dig(host, f"{name}.{zone}", "A") != [address]:
        assert time.monotonic() < deadline, f"named does not serve the hand edit of {zone}"
        time.sleep(0.05)


class HeldTool:
    """One of a host's tools (a ``HostLayout`` argv field such as ``postmap``) wrapped so that,
    while ``hold()`` is on, every script that runs it stops there: the change's files are in
    place and journaled, its reload not finished. ``reached`` appears once a script waits."""

    def __init__(self, directory: Path, host: LocalHost, field: str) -> None:
        self.flag, self.reached = directory / f"hold-{field}", directory / f"reached-{field}"
        self.field, self.host = field, host
        self.command = directory / f"held-{field}"
        real = " ".join(shlex.quote(a) for a in getattr(host.layout(), field))
        self.command.write_text(
            "#!/bin/sh\n"
            f"if [ -e {self.flag} ]; then touch {self.reached}\n"
            f"  while [ -e {self.flag} ]; do sleep 0.01; done\nfi\n"
            f'exec {real} "$@"\n'
        )
        self.command.chmod(0o755)

    def spec(self) -> HostSpec:
        layout = self.host.layout().model_copy(update={self.field: (str(self.command),)})
        return self.host.spec().model_copy(update={"layout": layout})

    def hold(self) -> None:
        self.reached.unlink(missing_ok=True)
        self.flag.touch()

    def release(self) -> None:
        self.flag.unlink(missing_ok=True)

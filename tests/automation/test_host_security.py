"""What a customer with a login on a managed host can do to it, done as a real local user.

The host is a real local host (sshd, named, nginx) whose ``home/cust`` belongs to the local user
``sitedesk-cust``; every attacker step runs as that user (``runuser``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from automation.changes import Change
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.local_hosts.daemon import descendants
from automation.local_hosts.host import LocalHost
from tests.automation.conftest import (
    CUSTOMER,
    ZONE,
    as_customer,
    change,
    dns_add,
    http_get,
    journal,
    request,
)
from tests.automation.test_apply import apply

ACCOUNT = CUSTOMER  # the account name is its Unix user on the host


@pytest.fixture(scope="module")
def host(hosts_base: Path, customer: pwd.struct_passwd) -> Iterator[LocalHost]:
    name = f"sec-{uuid.uuid4().hex[:6]}"
    with LocalHost(hosts_base, name, zones=(ZONE,), services=("mail", "ftp")) as h:
        # The account's home as provisioning leaves it: owned by the account's local user.
        (h.root / "home").mkdir(mode=0o755, exist_ok=True)
        home = h.root / "home" / ACCOUNT
        home.mkdir(mode=0o755)
        os.chown(home, customer.pw_uid, customer.pw_gid)
        yield h


@pytest.fixture
def outside(hosts_base: Path) -> Path:
    """Files outside the host root: one only root may read, one anyone may read."""
    d = hosts_base / f"outside-{uuid.uuid4().hex[:6]}"
    d.mkdir(mode=0o755)
    (d / "root-only.txt").write_text("root's secret\n")
    (d / "root-only.txt").chmod(0o600)
    (d / "public.txt").write_text("a system file\n")
    (d / "public.txt").chmod(0o644)
    return d


@pytest.fixture
def ex(host: LocalHost) -> Iterator[tuple[Executor, OutcomeCollector]]:
    col = OutcomeCollector()
    executor = Executor(col, exec_timeout=5.0, connect_timeout=2.0, backoff_max=0.3)
    executor.add_host(host.spec())
    yield executor, col
    executor.close()


def home(host: LocalHost) -> Path:
    return host.root / "home" / ACCOUNT


def vhost(domain: str, document_root: str) -> Change:
    return change("vhost_create", account=ACCOUNT, domain=domain, document_root=document_root)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# --- item 6: root never writes through a customer's link ----------------------------------------


def test_link_planted_in_the_web_root_fails_only_that_change_and_touches_nothing_outside(
    host: LocalHost, outside: Path, ex: tuple[Executor, OutcomeCollector]
) -> None:
    executor, col = ex
    secret = outside / "root-only.txt"
    docroot = home(host) / "planted"
    as_customer("mkdir", str(docroot))
    # The temporary name GDCAS used to write the placeholder page: a link to root's file.
    as_customer("ln", "-s", str(secret), str(docroot / "index.html.gdcas-new"))
    as_customer("ln", "-s", str(outside), str(home(host) / "linked"))

    planted = request(host, vhost("planted.example.com", "planted"))
    linked = request(host, vhost("linked.example.com", "linked/site"))
    beside = request(host, dns_add("beside", "TXT", "applies beside the refused ones"))
    assert apply(executor, col, [planted, linked, beside]) == ["failed", "failed", "applied"]

    error = col.last(planted.change_id).error or ""  # type: ignore[union-attr]
    assert "index.html.gdcas-new is a symbolic link" in error, error
    error = col.last(linked.change_id).error or ""  # type: ignore[union-attr]
    assert f"{home(host)}/linked is a symbolic link" in error, error
    assert secret.read_text() == "root's secret\n"
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.stat().st_uid == 0
    assert sorted(p.name for p in outside.iterdir()) == ["public.txt", "root-only.txt"]
    assert not (host.root / "nginx/sites/planted.example.com.conf").exists()
    assert http_get(host, "planted.example.com")[0] == 404


def test_files_in_a_home_are_written_as_its_owner(
    host: LocalHost, customer: pwd.struct_passwd, ex: tuple[Executor, OutcomeCollector]
) -> None:
    executor, col = ex
    assert apply(executor, col, [request(host, vhost("owned.example.com", "owned/www"))]) == [
        "applied"
    ]
    for path in (
        home(host) / "owned",
        home(host) / "owned/www",
        home(host) / "owned/www/index.html",
    ):
        assert path.stat().st_uid == customer.pw_uid, path
    assert oct(home(host).joinpath("owned/www/index.html").stat().st_mode & 0o777) == "0o644"
    status, body = http_get(host, "owned.example.com")
    assert status == 200 and "owned.example.com" in body


# --- item 7: secrets are never readable by others, not even while rewritten -------------------

_POLLER = """
import sys, os
stop, paths = sys.argv[1], sys.argv[2:]
print("READY", flush=True)
while not os.path.exists(stop):
    for p in paths:
        try:
            with open(p, "rb") as f:
                f.read(1)
            print("HIT", p, flush=True)
        except OSError:
            pass
"""


def test_secret_files_are_never_readable_while_they_are_rewritten(
    host: LocalHost, hosts_base: Path, ex: tuple[Executor, OutcomeCollector]
) -> None:
    executor, col = ex
    address = f"poll-{uuid.uuid4().hex[:6]}@example.com"
    ftp_user = f"poll{uuid.uuid4().hex[:6]}"
    first = [
        request(host, change("mailbox_create", address=address, password="first password 1")),
        request(
            host,
            change(
                "ftp_account_create", account=ACCOUNT, username=ftp_user, password="ftp password 1"
            ),
        ),
    ]
    assert apply(executor, col, first) == ["applied", "applied"]
    secrets = [host.root / "mail/passwd", host.root / "ftp/passwd"]
    watched = [str(p) + suffix for p in secrets for suffix in ("", ".gdcas-new", ".gdcas-old")]

    # Two pollers: the customer's own process trying to read, and root looking at the modes.
    stop = hosts_base / f"stop-{uuid.uuid4().hex[:6]}"
    poller = subprocess.Popen(
        ["runuser", "-u", CUSTOMER, "--", "/usr/bin/python3", "-c", _POLLER, str(stop), *watched],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert poller.stdout is not None and poller.stdout.readline() == "READY\n"
    seen: dict[str, set[int]] = {}
    done = threading.Event()

    def watch_modes() -> None:
        while not done.is_set():
            for p in watched:
                with contextlib.suppress(FileNotFoundError):
                    seen.setdefault(p, set()).add(os.stat(p).st_mode & 0o777)

    watcher = threading.Thread(target=watch_modes)
    watcher.start()
    try:
        for i in range(15):
            rewrites = [
                request(
                    host,
                    change("mailbox_password", address=address, password=f"mail pw {i:02} abcdef"),
                ),
                request(
                    host,
                    change("ftp_password", username=ftp_user, password=f"ftp pw {i:02} abcdef"),
                ),
            ]
            assert apply(executor, col, rewrites) == ["applied", "applied"]
    finally:
        done.set()
        watcher.join()
        stop.touch()
        out, _ = poller.communicate(timeout=15)
        stop.unlink()
    assert out == "", f"the customer read a secret file: {out}"
    assert seen[str(secrets[0])] == {0o600} and seen[str(secrets[1])] == {0o600}
    assert all(modes <= {0o600} for modes in seen.values()), seen
    for d in ("mail", "ftp"):
        assert (host.root / d).stat().st_mode & 0o777 == 0o700


# --- item 8: the lock and the journal are root's; a held lock shows on the host's health -------


def test_customer_cannot_take_the_lock_and_a_held_lock_shows_on_health(
    host: LocalHost, ex: tuple[Executor, OutcomeCollector]
) -> None:
    executor, col = ex
    first = request(host, dns_add("lock1", "TXT", "one"))
    assert apply(executor, col, [first]) == ["applied"]
    gdcas = host.root / ".gdcas"
    lock = gdcas / "lock"
    assert gdcas.stat().st_mode & 0o777 == 0o700
    assert journal(host).stat().st_mode & 0o777 == 0o700
    assert lock.stat().st_mode & 0o777 == 0o600
    assert (journal(host) / first.change_id).stat().st_mode & 0o777 == 0o600
    refused = as_customer("flock", "-s", "-n", str(lock), "true", check=False)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr

    # Someone (here root: an operator's stuck tool) holds the lock: the host says so.
    holder = subprocess.Popen(["flock", "-x", str(lock), "cat"], stdin=subprocess.PIPE)
    try:
        wait_for(
            lambda: subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode,
            "the holder to take the lock",
        )
        waiting = request(host, dns_add("lock2", "TXT", "two"))
        executor.submit(waiting)
        lane = executor.lane(host.host_id)
        wait_for(lambda: lane.status().state == "lock_busy", "the host to report its busy lock")
        status = lane.status()
        assert status.lock_busy_since is not None and status.queued == 1
        assert f"pid {holder.pid} (root)" in (status.last_error or ""), status.last_error
        assert col.last(waiting.change_id) is None  # held, not failed
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert col.wait([waiting.change_id])[waiting.change_id].status == "applied"
    wait_for(lambda: lane.status().state == "up", "the host to be up again")
    assert lane.status().lock_busy_since is None


def test_a_lock_opened_before_the_upgrade_holds_nothing(
    host: LocalHost, ex: tuple[Executor, OutcomeCollector]
) -> None:
    executor, col = ex
    assert apply(executor, col, [request(host, dns_add("old1", "TXT", "one"))]) == ["applied"]
    gdcas, lock = host.root / ".gdcas", host.root / ".gdcas" / "lock"
    # As an older GDCAS left it: 0644 in a 0755 directory, and the customer holds it open.
    gdcas.chmod(0o755)
    lock.chmod(0o644)
    holder = subprocess.Popen(
        ["runuser", "-u", CUSTOMER, "--", "flock", "-s", str(lock), "cat"], stdin=subprocess.PIPE
    )
    try:
        wait_for(
            lambda: subprocess.run(["flock", "-n", str(lock), "true"], check=False).returncode,
            "the customer to hold the lock",
        )
        later = request(host, dns_add("old2", "TXT", "two"))
        assert apply(executor, col, [later], timeout=15) == ["applied"]
        assert gdcas.stat().st_mode & 0o777 == 0o700 and lock.stat().st_mode & 0o777 == 0o600
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)


# --- item 14: a customer's website shows only the customer's own files -------------------------


def test_links_in_a_site_reach_only_the_owners_files_and_workers_are_not_root(
    host: LocalHost, outside: Path, ex: tuple[Executor, OutcomeCollector]
) -> None:
    executor, col = ex
    assert apply(executor, col, [request(host, vhost("links.example.com", "links"))]) == ["applied"]
    www = home(host) / "links"
    as_customer("ln", "-s", str(outside / "root-only.txt"), str(www / "secret.txt"))
    as_customer("ln", "-s", str(outside / "public.txt"), str(www / "system.txt"))
    as_customer("sh", "-c", f"echo mine > {www}/own.txt")
    as_customer("ln", "-s", str(www / "own.txt"), str(www / "alias.txt"))

    assert http_get(host, "links.example.com", "/secret.txt")[0] in (403, 404)
    assert http_get(host, "links.example.com", "/system.txt")[0] in (403, 404)
    assert http_get(host, "links.example.com", "/alias.txt") == (200, "mine\n")

    assert host.nginx is not None and host.nginx.pid is not None
    workers = [p for p in descendants(host.nginx.pid) if p != host.nginx.pid]
    assert workers
    for pid in workers:
        uid_line = next(
            line
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
        assert all(int(u) != 0 for u in uid_line.split()[1:]), uid_line

"""Real managed hosts for the automation tests: sshd + named + nginx per host, on loopback."""

from __future__ import annotations

import os
import pwd
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from automation.changes import Change, parse_change
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.local_hosts.host import LocalHost
from tests.hosts import running_hosts, unix_user

ZONE = "example.com"
CUSTOMER = "sitedesk-cust"  # a real unprivileged local user: the customer on the demo host


@pytest.fixture(scope="session")
def customer() -> pwd.struct_passwd:
    """The local user a customer logs in as (made if missing, removed at the session's end)."""
    return unix_user(CUSTOMER)


def as_customer(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command as the customer's local user (what the customer's own code could do)."""
    return subprocess.run(
        ["runuser", "-u", CUSTOMER, "--", *argv], capture_output=True, text=True, check=check
    )


@pytest.fixture(scope="session")
def hosts(hosts_base: Path, customer: pwd.struct_passwd) -> Iterator[list[LocalHost]]:
    """Three hosts with sshd, named and nginx; the third also runs Dovecot, Postfix and
    pure-ftpd, and has the customer's home (``home/<CUSTOMER>``, the account's own)."""
    made = (
        LocalHost(hosts_base, f"host{i}", zones=(ZONE, f"site{i}.test"),
                  services=("mail", "ftp") if i == 2 else ())
        for i in range(3)
    )  # fmt: skip
    with running_hosts(made) as started:
        home = started[2].root / "home" / CUSTOMER
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, customer.pw_uid, customer.pw_gid)
        yield started
        subprocess.run(["crontab", "-u", CUSTOMER, "-r"], capture_output=True, check=False)


@pytest.fixture
def collector() -> OutcomeCollector:
    return OutcomeCollector()


@pytest.fixture
def executor(hosts: list[LocalHost], collector: OutcomeCollector) -> Iterator[Executor]:
    ex = Executor(collector, exec_timeout=5.0, connect_timeout=2.0, backoff_max=0.5)
    for host in hosts:
        ex.add_host(host.spec())
    yield ex
    ex.close()


def change(kind: str, **params: Any) -> Change:
    return parse_change(kind, params)


def request(host: LocalHost, ch: Change, change_id: str | None = None) -> ChangeRequest:
    return ChangeRequest(change_id=change_id or str(uuid.uuid4()), host_id=host.host_id, change=ch)


def dns_add(name: str, rtype: str, value: str, zone: str = ZONE, **extra: Any) -> Change:
    return change(
        "dns_record_add", zone=zone, record={"name": name, "type": rtype, "value": value, **extra}
    )


def http_get(host: LocalHost, domain: str, path: str = "/") -> tuple[int, str]:
    import httpx

    assert host.nginx is not None
    r = httpx.get(f"http://127.0.0.1:{host.nginx.port}{path}", headers={"Host": domain}, timeout=5)
    return r.status_code, r.text


def journal(host: LocalHost) -> Path:
    return host.root / ".gdcas" / "journal"

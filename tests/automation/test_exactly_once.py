"""Exactly once with kinds that are not idempotent by themselves (a second mailbox create, cron
add or forwarder add is refused as "already exists"): an executor killed mid-batch, and a host
killed mid-batch, then every change resent; each is applied once, checked on the real service.
(A connection dropped before the host answered: test_mail_service, test_database_service.)"""

from __future__ import annotations

import imaplib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.local_hosts.host import LocalHost
from tests.automation.conftest import CUSTOMER, change, journal, request
from tests.desk import wait_until
from tests.hosts import HeldTool, lock_free

PW = "correct horse battery"


@pytest.fixture
def mailhost(hosts_base: Path, customer: object) -> Iterator[LocalHost]:
    host = LocalHost(
        hosts_base, f"once-{uuid.uuid4().hex[:6]}", with_named=False, with_nginx=False,
        services=("mail",),
    )  # fmt: skip
    with host:
        yield host
    subprocess.run(["crontab", "-u", CUSTOMER, "-r"], capture_output=True, check=False)


def batch(host: LocalHost, tag: str) -> list[ChangeRequest]:
    """Per round: a mailbox, a forwarder to it, a cron entry: none may be applied twice."""
    out = []
    for i in range(3):
        box, alias = f"box{tag}{i}@once.test", f"alias{tag}{i}@once.test"
        out += [
            request(host, change("mailbox_create", address=box, password=PW)),
            request(host, change("mail_forwarder_add", source=alias, destination=box)),
            request(host, change("cron_add", account=CUSTOMER, name=f"job{tag}{i}",
                                 schedule="@daily", command=f"echo {tag}{i}")),
        ]  # fmt: skip
    return out


def assert_once_on_the_services(host: LocalHost, reqs: list[ChangeRequest]) -> None:
    passwd = (host.root / "mail/passwd").read_text().splitlines()
    tab = subprocess.run(
        ["crontab", "-l", "-u", CUSTOMER], capture_output=True, text=True, check=True
    ).stdout
    virtual = (host.root / "mail-maps/virtual").read_text()
    port = host.layout().imap_port
    assert port is not None
    for r in reqs:
        params = r.change.model_dump()
        if r.change.kind == "mailbox_create":
            assert [line.split(":")[0] for line in passwd].count(params["address"]) == 1
            with imaplib.IMAP4("127.0.0.1", port, timeout=5) as imap:
                imap.login(params["address"], PW)  # the mailbox is live at Dovecot
        elif r.change.kind == "mail_forwarder_add":
            assert virtual.count(params["source"] + " ") == 1
            query = subprocess.run(
                [*host.layout().postmap, "-q", params["source"],
                 f"hash:{host.root / 'mail-maps/virtual'}"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            assert params["destination"] in query  # Postfix resolves it
        else:
            assert tab.count(f"# gdcas:{params['name']}\n") == 1
        assert (journal(host) / r.change_id).read_text().startswith("applied")


def wire(r: ChangeRequest) -> dict[str, object]:
    """The request as JSON with its password itself (JSON dumps a SecretStr masked)."""
    data = r.model_dump(mode="json")
    if "password" in data["change"]:
        data["change"]["password"] = PW
    return data


_CHILD = """
import json, sys, threading
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.host import HostSpec
spec = HostSpec.model_validate_json(sys.argv[1])
reqs = [ChangeRequest.model_validate(r) for r in json.loads(sys.stdin.read())]
ex = Executor(OutcomeCollector())
ex.add_host(spec)
ex.submit_many(reqs)
print("submitted", flush=True)
threading.Event().wait()
"""


def test_executor_killed_mid_batch(mailhost: LocalHost, tmp_path: Path) -> None:
    held = HeldTool(tmp_path, mailhost, "postmap")
    reqs = batch(mailhost, "k")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, held.spec().model_dump_json()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    held.hold()
    child.stdin.write(json.dumps([wire(r) for r in reqs]))
    child.stdin.close()
    assert child.stdout.readline().strip() == "submitted"
    wait_until(held.reached.exists, what="the batch held in its reload on the host")
    os.kill(child.pid, signal.SIGKILL)  # files in place and journaled, Postfix not reloaded
    child.wait()
    held.release()  # the orphaned script runs to its end (it ignores the lost connection)
    wait_until(lambda: lock_free(mailhost), what="the orphaned batch finished")
    col = OutcomeCollector()
    ex = Executor(col)
    ex.add_host(mailhost.spec())
    try:  # the caller's outbox resends everything to a new executor
        ex.submit_many([ChangeRequest.model_validate(r.model_dump()) for r in reqs])
        got = col.wait([r.change_id for r in reqs], timeout=60)
    finally:
        ex.close()
    assert {o.status for o in got.values()} <= {"applied", "already_applied"}, got
    assert_once_on_the_services(mailhost, reqs)


def test_host_killed_mid_batch(mailhost: LocalHost, tmp_path: Path) -> None:
    """The host dies in the middle (its sshd and the script with it): files in place and
    journaled, Postfix never told. After it is back the resend finds the journal, makes the
    service live and checks it before it says "applied"."""
    held = HeldTool(tmp_path, mailhost, "postmap")
    reqs = batch(mailhost, "h")
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=5.0, connect_timeout=1.0, backoff_max=0.3)
    ex.add_host(held.spec())
    try:
        held.hold()
        ex.submit_many(reqs)
        wait_until(held.reached.exists, what="the batch held in its reload on the host")
        mailhost.stop_ssh()  # kills the script too
        held.release()
        mailhost.start_ssh()
        got = col.wait([r.change_id for r in reqs], timeout=60)
    finally:
        held.release()
        ex.close()
    assert {o.status for o in got.values()} == {"applied"}, got
    assert all(o.output.startswith("journal: applied") for o in got.values())
    assert_once_on_the_services(mailhost, reqs)
